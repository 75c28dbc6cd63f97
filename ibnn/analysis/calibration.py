"""Per-chip calibration, chip in the loop, on training images only: the guard against test data, what a correction
writes into each chip (`ChipCorrection`), running the mapped network with it, and the one search every
array-side knob uses (`calibrate_layers`).

Each chip's layers are driven with calibration images from the TRAINING split (layer l > 0 with the software
activations of layer l-1, which the digital controller can drive onto the word lines). Only comparator outputs are
observed, as on silicon. A knob is a grid of settings per column (bias sums for the bias-row rewrite, comparator
references for a trim, `ibnn.analysis.corrections`), indexed so that a larger index gives (nominally) more +1
decisions. Per chip and column the index is bisected until the column outputs +1 as often as the software neuron
on the calibration images, then moved within +-`fine` steps (and back to "no change") to where its decisions
disagree least with the software network's; ties go to the smallest change. Constant neurons (realised with
margin by the mapping) are left as mapped. A calibration set drawn from the test set is rejected
(`check_calibration_set`); evaluation is always on HELD-OUT chips. Costs are counted in classify cycles per chip
(one image through one layer is one cycle).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..repro.device import as_tensor
from ..validate import check_choice, check_int

CAL_SPLITS = ("train", "val")


def _row_keys(codes: torch.Tensor) -> set:
    c = np.ascontiguousarray(np.asarray(torch.as_tensor(codes).to(torch.uint8).cpu()))
    return {row.tobytes() for row in c}


def check_calibration_set(split: str, codes=None, test_codes=None, max_overlap: float = 0.5) -> None:
    """ValueError unless the calibration images come from the training split.

    split: where the images were drawn ("train" or "val", the held-back part of the training split); "test" is
    rejected: calibrating on test images would fit the chip to the very images the accuracy is measured on.
    With `test_codes`, a set of which more than `max_overlap` of the images are test images is rejected too
    (some identical 9x9 images occur in both MNIST splits, so a small overlap is tolerated)."""
    if split == "test":
        raise ValueError("calibration split='test' is not accepted: calibration images must come from the "
                         "training split ('train' or 'val'), never from the test set the accuracy is measured on")
    check_choice("split", split, CAL_SPLITS)
    if codes is not None and test_codes is not None:
        keys = _row_keys(test_codes)
        c = np.ascontiguousarray(np.asarray(torch.as_tensor(codes).to(torch.uint8).cpu()))
        if c.shape[0]:
            frac = sum(row.tobytes() in keys for row in c) / c.shape[0]
            if frac > max_overlap:
                raise ValueError(f"calibration set: {frac:.0%} of its images are test images (accepted: at most "
                                 f"{max_overlap:.0%}); it was drawn from the test set: draw it from the training split")


@dataclass
class ChipCorrection:
    """What a correction writes into each chip: cell weights, comparator references, a readout per chip."""
    name: str
    theta: torch.Tensor                     # (n_chips, cols) float64 comparator references (LSB)
    weights: torch.Tensor | None = None     # (n_chips, rows, cols) int8; None: the mapping's weights
    readout: object | None = None           # per-chip readout (predict((n_chips, B, n)) -> (n_chips, B)); None: mapped
    cycles: int = 0                         # classify cycles per chip spent on calibration
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Name, cost and what the correction changed, JSON-ready."""
        return {"name": self.name, "cycles_per_chip": self.cycles, **self.info}


def run_corrected(mapping, chip, codes, correction: ChipCorrection | None = None, noise_seed: int | None = 0,
                  layers: bool = False):
    """`ArrayMapping.run` with a correction applied (None: the naive mapping): its weights programmed, its
    references used, its per-chip readout applied to the last layer's outputs. Returns the RunResult."""
    if correction is None or correction.weights is None:
        mapping.program(chip)
    else:
        chip.program(correction.weights)
    theta = None if correction is None else correction.theta
    need = layers or (correction is not None and correction.readout is not None)
    out = mapping.run(chip, codes, theta=theta, noise_seed=noise_seed, layers=need, program=False)
    if correction is not None and correction.readout is not None:
        out.labels = correction.readout.predict(out.activations[-1])
    if not layers:
        out.activations = None
    return out


def correct_matrix(mapping, chip, codes, labels, correction: ChipCorrection | None = None,
                   noise_seed: int | None = 0) -> torch.Tensor:
    """bool (n_chips, B): chip i classifies image j correctly (the input of `ibnn.analysis.bootstrap`)."""
    labels = as_tensor(labels).long()
    return run_corrected(mapping, chip, codes, correction, noise_seed).labels == labels[None]


@dataclass
class Knob:
    """One layer's knob: per column a grid of settings, index increasing -> more +1 decisions (nominally)."""
    lo: torch.Tensor          # (fan_out,) int64 first valid index
    hi: torch.Tensor          # (fan_out,) int64 last valid index
    start: torch.Tensor       # (fan_out,) int64 the mapping's setting (no correction)
    apply: Callable           # idx (n_chips, fan_out) -> theta (n_chips, cols); programs the chip where needed
    describe: Callable        # idx (n_chips, fan_out) -> dict of what the chosen settings are


def _search(knob: Knob, measure: Callable, want: torch.Tensor, fine: int, steps: int):
    """Bisection of the index until the +1 count reaches `want`, then the fewest mismatches within +-fine of it
    (and the start), ties to the index nearest the start. Returns (idx, mismatches at start, at idx, calls)."""
    n_chips = want.shape[0]
    lo = knob.lo[None].expand(n_chips, -1).clone()
    hi = knob.hi[None].expand(n_chips, -1).clone()
    calls = 0
    for _ in range(steps):                         # smallest index with +1 count >= want
        mid = torch.div(lo + hi, 2, rounding_mode="floor")
        up = measure(mid)[1] >= want
        calls += 1
        hi = torch.where(up, mid, hi)
        lo = torch.where(up, lo, torch.minimum(mid + 1, hi))
    start = knob.start[None].expand(n_chips, -1)
    cands = [start] + [torch.minimum(torch.maximum(lo + d, knob.lo[None]), knob.hi[None])
                       for d in range(-fine, fine + 1)]
    ms = [measure(c)[0] for c in cands]
    calls += len(cands)
    allc, allm = torch.stack(cands), torch.stack(ms)
    best = (allm.double() * 1e6 + (allc - start[None]).abs().double()).argmin(0)
    return torch.gather(allc, 0, best[None])[0], ms[0], torch.gather(allm, 0, best[None])[0], calls


def _layer_inputs(mapping, codes, split, test_codes):
    check_calibration_set(split, codes, test_codes)
    codes = mapping.check_codes(codes)
    if codes.dim() != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes shape={tuple(codes.shape)} must be (N >= 1, {mapping.n_features})")
    return codes, mapping.reference(codes, layers=True).activations


def calibrate_layers(mapping, chip, codes, split: str, make_knob: Callable, name: str, fine: int = 3,
                     noise_seed: int = 12345, test_codes=None) -> ChipCorrection:
    """Calibrate one knob per layer, layer by layer, with the search of the module docstring.

    make_knob(L, state) -> Knob, with state {"weights": (n_chips, rows, cols) int8, "theta": (n_chips, cols)}
    that the knob's `apply` edits in place. codes: (N, n_features) calibration images, from the training split
    (`split` says so; "test" and a set drawn from `test_codes` are refused). Every measurement is one classify
    cycle of the layer over the calibration images with its own temporal-noise seed."""
    codes, acts = _layer_inputs(mapping, codes, split, test_codes)
    fine = check_int("fine", fine, 0, 1000)
    n_chips, N = int(chip.n_chips), int(codes.shape[0])
    dev = getattr(chip, "device", None) or torch.device("cpu")
    state = {"weights": mapping.weights.to(torch.int8)[None].expand(n_chips, -1, -1).clone(),
             "theta": mapping.theta.to(torch.float64)[None].repeat(n_chips, 1)}
    mapping.program(chip)
    info, cycles, seed = [], 0, [int(noise_seed)]
    for L in mapping.layers:
        inp = codes if L.index == 0 else acts[L.index - 1]
        wl = mapping.layer_codes(L.index, inp.to(torch.int64)).to(dev)
        target, cols = acts[L.index].to(dev), L.cols.to(dev)
        knob = make_knob(L, state)

        def measure(idx):
            seed[0] += 1
            d = chip.evaluate(wl, theta=knob.apply(idx).to(dev), noise_seed=seed[0]).decisions
            d = (d if d.dim() == 3 else d[None])[..., cols]
            return (d != target[None]).sum(1).cpu(), (d > 0).sum(1).cpu()

        want = (target > 0).sum(0).cpu()[None].expand(n_chips, -1)
        steps = int(math.ceil(math.log2(max(int((knob.hi - knob.lo).max()) + 1, 2)))) + 1
        idx, m0, m1, calls = _search(knob, measure, want, fine, steps)
        const = L.constant if L.constant is not None else torch.zeros(L.fan_out, dtype=torch.int8)
        idx = torch.where((const != 0)[None], knob.start[None], idx)
        knob.apply(idx)                                                  # commit this layer's choice
        cycles += calls * N
        n_dec = N * L.fan_out * n_chips
        info.append({"layer": L.index, "mismatch_before": float(m0.double().sum() / n_dec),
                     "mismatch_after": float(m1.double().sum() / n_dec),
                     "n_at_edge": int(((idx == knob.lo[None]) | (idx == knob.hi[None])).sum()),
                     "n_columns": int(n_chips * L.fan_out), **knob.describe(idx)})
    changed = not torch.equal(state["weights"], mapping.weights.to(torch.int8)[None].expand_as(state["weights"]))
    return ChipCorrection(name, state["theta"], state["weights"] if changed else None, None, cycles,
                          {"layers": info, "n_images": N})
