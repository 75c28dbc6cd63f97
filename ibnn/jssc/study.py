"""The JSSC 2017 study, software stages: the data and its subsets, the boosted classifier with ideal arithmetic,
standard training (closed-form boosting with more rounds, a linear classifier at each weight precision), and the
same boosting on all 784 pixels. Chips: `ibnn.jssc.onchip`; the cell-mismatch sweep: `ibnn.jssc.sweep`; energy:
`ibnn.jssc.costs`. Every stage returns a small dataclass whose `as_dict()` is JSON-ready.

Splits: chip-in-the-loop training and its paired software reference use a seeded random subset of the training
split; accuracies on chips are measured on a seeded random subset of the test split (the first half of MNIST's
test set is harder than the second, so a prefix would bias the number). The software baselines use the first
n_sw training images and the first n_sw_test test images (all of them in the full profile).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import data as _data
from ..analysis.bootstrap import accuracy_ci, resolution
from ..published import JSSC2017
from ..validate import check_int, check_real
from .baselines import train_linear
from .boost import BoostConfig, Boosted, boost
from .inloop import prefix_correct, rounds_needed
from .weak import pooled_covariance

EVAL_CHIP_SEED = 2017        # held-out evaluation chips (the prototype's development chips used seeds < 1000)


@dataclass(frozen=True)
class Sizes:
    """How much of everything one run uses (the notebook's parameters). n_loop: training images of
    chip-in-the-loop (and of its paired software reference); n_test: test images on chips; n_sw / n_sw_test: the
    software baseline's training / test images; sweep_*: the cell-mismatch sweep (chips, test images, scales)."""

    n_chips: int = 100
    n_loop: int = 1000
    n_test: int = 2000
    n_sw: int = 60000
    n_sw_test: int = 10000
    n_linear: int = 20000
    linear_iters: int = 40
    rounds_standard: int = 56
    n_784: int = 5000
    rounds_784: int = 16
    sweep_chips: int = 10
    sweep_test: int = 2000
    sweep_scales: tuple = (0.25, 0.5, 0.75)
    energy_images: int = 200
    n_boot: int = 2000
    seed: int = 0
    chip_seed: int = EVAL_CHIP_SEED

    def __post_init__(self):
        for name, lo, hi in (("n_chips", 1, 10000), ("n_loop", 10, 60000), ("n_test", 10, 10000),
                             ("n_sw", 10, 60000), ("n_sw_test", 10, 10000), ("n_linear", 10, 60000),
                             ("linear_iters", 1, 10000), ("rounds_standard", 1, 1000), ("n_784", 10, 60000),
                             ("rounds_784", 1, 1000), ("sweep_chips", 1, 10000), ("energy_images", 1, 10000),
                             ("n_boot", 100, 10 ** 6), ("seed", 0, None), ("chip_seed", 0, None)):
            check_int(name, getattr(self, name), lo, hi)
        check_int("sweep_test", self.sweep_test, 10, self.n_test)
        check_int("sweep_chips", self.sweep_chips, 1, self.n_chips)
        for i, s in enumerate(self.sweep_scales):
            check_real(f"sweep_scales[{i}]", s, 0.0, lo_open=True)
        if list(self.sweep_scales) != sorted(set(self.sweep_scales)) or any(s >= 1 for s in self.sweep_scales):
            raise ValueError(f"sweep_scales={list(self.sweep_scales)} must be increasing and below 1 (scale 1 is "
                             f"the main chip study)")


@dataclass
class Data:
    """Codes (n_features per image) and labels of both splits, the profile's subsets, the pooled covariance."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    loop_idx: torch.Tensor
    test_idx: torch.Tensor
    S_inv: torch.Tensor


def subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """Sorted seeded random subset of range(n_total) of size n (all of it when n >= n_total)."""
    if n >= n_total:
        return torch.arange(n_total)
    perm = np.random.Generator(np.random.PCG64(check_int("seed", seed, 0))).permutation(n_total)[:n]
    return torch.as_tensor(np.sort(perm))


def load_data(sizes: Sizes, config: BoostConfig) -> Data:
    """MNIST codes (`ibnn.data.features`, side sqrt(n_features), config.bits bits) of the images the run uses
    (the first max(n_sw, n_linear) training images, the chip-in-the-loop subset, the test images); rows of
    images it does not use stay zero. The pooled covariance comes from the first n_sw training images."""
    side = int(round(config.n_features ** 0.5))
    if side * side != config.n_features:
        raise ValueError(f"n_features={config.n_features} must be a square number of pixels")
    xtr, ytr = _data.load_mnist("train")
    xte, yte = _data.load_mnist("test")
    s = sizes.seed
    loop, test = subset(len(ytr), sizes.n_loop, s + 1), subset(len(yte), sizes.n_test, s + 2)
    n_first = min(len(ytr), max(sizes.n_sw, sizes.n_linear))
    use_tr = torch.unique(torch.cat([torch.arange(n_first), loop]))
    use_te = torch.unique(torch.cat([torch.arange(min(len(yte), sizes.n_sw_test)), test]))
    ftr = torch.zeros(len(ytr), config.n_features, dtype=torch.int64)
    fte = torch.zeros(len(yte), config.n_features, dtype=torch.int64)
    ftr[use_tr] = torch.as_tensor(_data.features(xtr[use_tr.numpy()], side, config.bits)).to(torch.int64)
    fte[use_te] = torch.as_tensor(_data.features(xte[use_te.numpy()], side, config.bits)).to(torch.int64)
    ytr, yte = torch.as_tensor(ytr).to(torch.int64), torch.as_tensor(yte).to(torch.int64)
    n = min(sizes.n_sw, len(ytr))
    S_inv = torch.linalg.inv(pooled_covariance(ftr[:n], ytr[:n], config.n_classes))
    return Data(ftr, ytr, fte, yte, loop, test, S_inv)


def curve(correct: torch.Tensor) -> list:
    """Mean accuracy per prefix (number of weak classifiers per class) of correct (R, ..., N)."""
    return [float(c.double().mean()) for c in correct]


def software_interval(correct: torch.Tensor, n_boot: int, seed: int) -> dict:
    """The accuracy of a software (ideal-arithmetic) classifier with its interval over test images: the two-level
    bootstrap of `ibnn.analysis.bootstrap` on a one-row matrix (no chips: only the images are resampled)."""
    ci = accuracy_ci(torch.as_tensor(correct).reshape(1, -1), n_boot=n_boot, seed=seed)
    return {"mean": ci.accuracy, "ci95": ci.ci95, "se": ci.se, "n_chips": 0, "n_images": ci.n_images,
            "ci_method": "bootstrap over test images (ideal arithmetic: no chips)",
            "resolution": resolution(ci).as_dict()}


@dataclass
class Software:
    """The boosted binary-weight classifier trained and run with ideal arithmetic."""

    accuracy: dict
    curve: list
    n_train: int
    n_weak_classifiers: int
    rounds_to_published: int | None
    mean_flips: float
    max_abs_threshold_lsb: int
    bias_reach_lsb: int
    classifier: Boosted = field(repr=False, default=None)

    def as_dict(self) -> dict:
        """JSON-ready fields (the classifier left out)."""
        return {k: v for k, v in self.__dict__.items() if k != "classifier"}


def software_baseline(D: Data, sizes: Sizes, config: BoostConfig, target: float = JSSC2017["accuracy_81"]) -> Software:
    """Boosting with ideal arithmetic on the first n_sw training images, tested on the first n_sw_test test
    images; `rounds_to_published`: weak classifiers per class to reach `target` (None: not within the config)."""
    sw = boost(D.x_train[:sizes.n_sw], D.y_train[:sizes.n_sw], config, D.S_inv)
    xt, yt = D.x_test[:sizes.n_sw_test], D.y_test[:sizes.n_sw_test]
    ok = prefix_correct(sw, sw.ideal_decisions(xt), yt)[:, 0]                              # (R, N)
    return Software(software_interval(ok[-1], sizes.n_boot, sizes.seed), curve(ok), min(sizes.n_sw, len(D.y_train)),
                    config.n_columns, rounds_needed(curve(ok), target), sw.meta["mean_flips"],
                    int(sw.T.abs().max()), config.bias.reach, sw)


def standard_boosting(D: Data, sizes: Sizes, config: BoostConfig, target: float) -> dict:
    """"Standard" boosting of the same 1-b columns: each weak learner is the sign of its Fisher direction with the
    best threshold (no binary-aware refinement, flips = 0), as many rounds as it takes (software, no 128-column
    limit, and no bias-row limit on the thresholds: a digital comparison can take any integer threshold): the curve
    and the weak classifiers needed to reach `target` (None: not within rounds_standard)."""
    cfg = replace(config, flips=0, n_per_class=sizes.rounds_standard, n_coarse=config.n_features)   # digital: any T
    B = boost(D.x_train[:sizes.n_sw], D.y_train[:sizes.n_sw], cfg, D.S_inv)
    xt, yt = D.x_test[:sizes.n_sw_test], D.y_test[:sizes.n_sw_test]
    c = curve(prefix_correct(B, B.ideal_decisions(xt), yt)[:, 0])
    r = rounds_needed(c, target)
    return {"curve": c, "target": target, "rounds_to_target": r,
            "n_weak_classifiers_to_target": None if r is None else r * cfg.n_classes}


def linear_baseline(D: Data, sizes: Sizes) -> dict:
    """Standard training of a linear classifier (`baselines.train_linear`) on the first n_linear training images;
    its test accuracy (first n_sw_test images) in float and with 1..8-bit weights."""
    n = min(sizes.n_linear, len(D.y_train))
    lin = train_linear(D.x_train[:n], D.y_train[:n], iters=sizes.linear_iters)
    xt, yt = D.x_test[:sizes.n_sw_test], D.y_test[:sizes.n_sw_test]
    acc = {"float": float((lin.predict(xt) == yt).double().mean())}
    for b in range(1, 9):
        acc[str(b)] = float((lin.predict(xt, bits=b) == yt).double().mean())
    return {"n_train": n, "accuracy_by_weight_bits": acc}


def software_784(sizes: Sizes, config: BoostConfig, target: float = JSSC2017["accuracy_784_at_least"]) -> dict:
    """The same boosting on all 28 x 28 pixels (codes of config.bits bits), software only (784 rows do not fit
    the array), the first n_784 training images, the first n_sw_test test images. Direction: the sign of the
    class-mean difference (method "mean": the pooled 784 x 784 covariance of a few thousand images is a poor
    estimate), any integer threshold (no bias-row limit), no flips (the run's time budget)."""
    xtr, ytr = _data.load_mnist("train")
    xte, yte = _data.load_mnist("test")
    n, nt = min(sizes.n_784, len(ytr)), min(sizes.n_sw_test, len(yte))
    ftr = torch.as_tensor(_data.features(xtr[:n], 28, config.bits)).to(torch.int64)
    fte = torch.as_tensor(_data.features(xte[:nt], 28, config.bits)).to(torch.int64)
    y, yt = torch.as_tensor(ytr[:n]).to(torch.int64), torch.as_tensor(yte[:nt]).to(torch.int64)
    cfg = replace(config, n_features=784, n_per_class=sizes.rounds_784, n_coarse=784, method="mean", flips=0)
    B = boost(ftr, y, cfg, None)
    ok = prefix_correct(B, B.ideal_decisions(fte), yt)[:, 0]
    c = curve(ok)
    return {"n_train": n, "n_test": nt, "curve": c, "accuracy": software_interval(ok[-1], sizes.n_boot, sizes.seed),
            "n_weak_classifiers": cfg.n_columns, "rounds_to_published": rounds_needed(c, target),
            "published_at_least": target}
