"""The steps of notebook 05's correction experiment: the training-split image pools, the choices made on tuning chips
x validation images (calibration size, readout training size, number of held-out chips), and each method run on the
held-out chips. The notebook calls these in order and explains each; the statistics are `ibnn.analysis.evaluation`.

Roles of the data, never mixed: calibration and readout-training images come from the training split (`Pools`,
disjoint from each other); choices are scored on validation images (the held-back part of the training split) with
tuning chips (their own seed); every reported drop is measured on held-out chips and the test images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..data import features
from ..validate import check_int
from . import bootstrap as B
from .calibration import ChipCorrection
from .corrections import calibrate_bias_rows, calibrate_trim
from .evaluation import Outcome, Resamples, TestBed, choose_design, compare, relabel, run_method, summarise
from .inverse import choose_on_validation
from .readout import chip_hidden, retrain_readout


@dataclass
class Pools:
    """Training-split images for the chip-in-the-loop corrections: calibration images (bias rows, trims, the column
    error model), readout-training images and held-back images for the readout's keep-if-better check; the three
    disjoint. Codes (N, n_features), labels int64."""
    cal: torch.Tensor
    readout: torch.Tensor
    readout_labels: torch.Tensor
    holdout: torch.Tensor
    holdout_labels: torch.Tensor


def training_pools(images, labels, train_idx, size: int, bits: int, n_cal: int, n_readout: int, n_holdout: int,
                   seed: int = 0) -> Pools:
    """Draw the pools from the training indices `train_idx` (never the test set): n_cal calibration images with
    numpy's default_rng(seed), then n_readout + n_holdout others with default_rng(seed + 1)."""
    train_idx = np.asarray(train_idx)
    n_cal = check_int("n_cal", n_cal, 1, train_idx.size)
    n_readout = check_int("n_readout", n_readout, 1)
    n_holdout = check_int("n_holdout", n_holdout, 1)
    cal_idx = np.random.default_rng(seed).choice(train_idx, size=n_cal, replace=False)
    rest = np.setdiff1d(train_idx, cal_idx)
    if n_readout + n_holdout > rest.size:
        raise ValueError(f"n_readout + n_holdout = {n_readout + n_holdout} exceeds the {rest.size} training images "
                         f"left after calibration")
    ro_idx = np.random.default_rng(seed + 1).choice(rest, size=n_readout + n_holdout, replace=False)
    code = lambda idx: torch.as_tensor(features(images[idx], size=size, bits=bits))  # noqa: E731
    lab = lambda idx: torch.as_tensor(np.asarray(labels)[idx]).long()               # noqa: E731
    return Pools(code(cal_idx), code(ro_idx[:n_readout]), lab(ro_idx[:n_readout]), code(ro_idx[n_readout:]),
                 lab(ro_idx[n_readout:]))


@dataclass
class Method:
    """One method on a set of chips: its outcome (correctness, last layer kept), the software correctness it is
    measured against (its own network's), and the correction it applied (None: the naive mapping)."""
    name: str
    outcome: Outcome
    soft: torch.Tensor
    correction: ChipCorrection | None = None

    @property
    def correct(self) -> torch.Tensor:
        """(n_chips, N) bool."""
        return self.outcome.correct


def naive(mapping, chip, bed: TestBed, noise_seed: int = 1, name: str = "naive") -> Method:
    """The mapping as written, every chip, the test bed's images (last layer kept for readout retraining)."""
    return Method(name, run_method(mapping, chip, bed, None, noise_seed, keep_last_layer=True), bed.soft)


def bias_rewrite(mapping, chip, bed: TestBed, cal_codes, noise_seed: int = 1, cal_noise_seed: int = 101,
                 test_codes=None, name: str = "bias_row_rewrite") -> Method:
    """Calibrate the bias rows of every chip on `cal_codes` (training split), then run on the test bed."""
    corr = calibrate_bias_rows(mapping, chip, cal_codes, "train", noise_seed=cal_noise_seed, test_codes=test_codes)
    return Method(name, run_method(mapping, chip, bed, corr, noise_seed, keep_last_layer=True), bed.soft, corr)


def trim(mapping, chip, bed: TestBed, cal_codes, noise_seed: int = 1, cal_noise_seed: int = 101, test_codes=None,
         name: str = "comparator_trim_hypothetical") -> Method:
    """The hypothetical comparator trim (`ibnn.analysis.corrections.TRIM_LABEL`), within the declared range."""
    corr = calibrate_trim(mapping, chip, cal_codes, "train", noise_seed=cal_noise_seed, test_codes=test_codes)
    return Method(name, run_method(mapping, chip, bed, corr, noise_seed), bed.soft, corr)


def _hidden(mapping, chip, pools: Pools, base: ChipCorrection | None, n: int, noise_seed: int, test_codes):
    """(training-image outputs (n_chips, n, n_last), held-back outputs) of every chip with `base` applied."""
    h = chip_hidden(mapping, chip, pools.readout[:n], "train", base, noise_seed, test_codes)
    vh = chip_hidden(mapping, chip, pools.holdout, "train", base, noise_seed + 1, test_codes)
    return h, vh


def readout_retrained(mapping, chip, bed: TestBed, base: Method, pools: Pools, n_images: int,
                      noise_seed: int = 4242, test_codes=None, **train) -> Method:
    """Retrain every chip's digital readout on its own outputs for `n_images` training images (with `base`'s
    correction applied), then score it on `base`'s test-bed run (the array run is the same; only the logic after
    the comparators changes). Name: base's name + "+readout_retraining" (or "readout_retraining" on naive)."""
    h, vh = _hidden(mapping, chip, pools, base.correction, n_images, noise_seed, test_codes)
    ro, info = retrain_readout(h, pools.readout_labels[:n_images], mapping.readout, val_hidden=vh,
                               val_labels=pools.holdout_labels, **train)
    cycles = len(mapping.layers) * (n_images + int(pools.holdout.shape[0]))
    b = base.correction
    theta = mapping.theta.to(torch.float64)[None].repeat(int(chip.n_chips), 1) if b is None else b.theta
    corr = ChipCorrection("readout_retraining" if b is None else b.name + "+readout_retraining", theta,
                          None if b is None else b.weights, ro, cycles + (0 if b is None else b.cycles),
                          {**({} if b is None else b.info), "readout": info})
    return Method(corr.name, relabel(base.outcome, ro, bed), bed.soft, corr)


def choose_calibration_size(mapping, chip, val: TestBed, cal_codes, sizes: Sequence[int], noise_seed: int = 1,
                            n_boot: int = 2000, test_codes=None):
    """Bias-row rewrite with each calibration size on the tuning chips, scored on validation images; the cheapest
    size not resolvably worse than the best (`choose_on_validation`). Returns (Choice, {size: Method})."""
    runs = {int(n): bias_rewrite(mapping, chip, val, cal_codes[:int(n)], noise_seed, test_codes=test_codes)
            for n in sizes}
    ch = choose_on_validation(list(runs), [m.correction.cycles for m in runs.values()],
                              [m.correct for m in runs.values()], [val.soft] * len(runs), n_boot)
    return ch, runs


def choose_readout_size(mapping, chip, val: TestBed, base: Method, pools: Pools, sizes: Sequence[int],
                        n_boot: int = 2000, noise_seed: int = 4242, test_codes=None, **train):
    """Readout retraining with each training size on the tuning chips (outputs computed once for the largest),
    scored on validation images; the cheapest size not resolvably worse than the best. Returns (Choice, runs)."""
    sizes = sorted(int(n) for n in sizes)
    h, vh = _hidden(mapping, chip, pools, base.correction, sizes[-1], noise_seed, test_codes)
    runs = {}
    for n in sizes:
        ro, _ = retrain_readout(h[:, :n], pools.readout_labels[:n], mapping.readout, val_hidden=vh,
                                val_labels=pools.holdout_labels, **train)
        runs[n] = Method(f"readout_retraining_{n}", relabel(base.outcome, ro, val), val.soft)
    ch = choose_on_validation(sizes, sizes, [m.correct for m in runs.values()], [val.soft] * len(sizes), n_boot)
    return ch, runs


def design(runs: dict, n_images: int, candidates: Sequence[int], tolerance: float, decide_on: Sequence[str]):
    """The number of held-out chips from the variance components of the tuning runs (`choose_design`), decided
    on the methods `decide_on`, predicted for all. runs: {name: Method} on the tuning chips."""
    comps = {k: B.variance_components(m.correct, m.soft) for k, m in runs.items()}
    chosen = choose_design({k: comps[k] for k in decide_on}, n_images, candidates, tolerance)
    info = choose_design(comps, n_images, sorted(set(candidates) | {50, 100}), tolerance)
    chosen.predicted, chosen.floor, chosen.components = info.predicted, info.floor, info.components
    return chosen


def report(methods: dict, naive_name: str = "naive", n_boot: int = 2000, seed: int = 0,
           resamples: Resamples | None = None) -> dict:
    """`summarise` for every method: its drop against its own software network with a two-level bootstrap
    interval, and (all but the naive one) its paired difference to the naive mapping on the common chips and
    images. methods: {name: Method}; one set of resamples for all (`Resamples`)."""
    rs = Resamples(n_boot, seed) if resamples is None else resamples
    nv = methods[naive_name]
    out = {naive_name: summarise(nv.correct, nv.soft, resamples=rs)}
    for name, m in methods.items():
        if name != naive_name:
            out[name] = summarise(m.correct, m.soft, naive=nv.correct, naive_soft=nv.soft, correction=m.correction,
                                  resamples=rs)
    return out


def comparisons(methods: dict, pairs: Sequence[tuple[str, str]], n_boot: int = 2000, seed: int = 0,
                resamples: Resamples | None = None) -> dict:
    """Paired differences drop_a - drop_b between methods (`compare`), for the pairs whose methods both ran."""
    have = [(a, b) for a, b in pairs if a in methods and b in methods]
    return compare({k: (m.correct, m.soft) for k, m in methods.items()}, have, n_boot, seed, resamples)
