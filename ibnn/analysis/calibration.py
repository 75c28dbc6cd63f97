"""Per-chip threshold calibration, chip in the loop, on training images (notebook 05).

Each chip's layers are driven with a few hundred TRAINING images (layer l > 0 with the software activations of
layer l-1, which the digital controller can drive onto the word lines); every column's comparator reference trim
is bisected until the column outputs +1 as often as the software neuron on those images, then moved within a few
LSB to where its decisions disagree least with the software network's (or, method "grid", swept over a grid).
Only comparator outputs are observed, as on silicon. It removes each column's static threshold error (comparator
offset, the mismatch of its bias cells, the mean effect of its data cells' mismatch) but not input-dependent
errors (each cell's own mismatch acts on its weight) or temporal noise. A calibration set drawn from the test set
is rejected (`check_calibration_set`). Evaluation is always on HELD-OUT chips.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..validate import check_choice, check_int, check_real

CAL_SPLITS = ("train", "val")


def _row_keys(codes: torch.Tensor) -> set:
    c = np.ascontiguousarray(np.asarray(torch.as_tensor(codes).to(torch.uint8).cpu()))
    return {row.tobytes() for row in c}


def check_calibration_set(split: str, codes=None, test_codes=None, max_overlap: float = 0.5) -> None:
    """ValueError unless the calibration images come from the training split.

    split: where the images were drawn ("train" or "val", the held-back part of the training split); "test" is
    rejected: calibrating on test images would fit the thresholds to the very images the accuracy is measured on.
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


def default_trims(step_coarse: float = 8.0, span: float = 96.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(coarse grid over +-span LSB, fine offsets around the coarse optimum), both float64."""
    coarse = torch.arange(-span, span + 1e-9, step_coarse, dtype=torch.float64)
    fine = torch.arange(-step_coarse + 1, step_coarse, 1.0, dtype=torch.float64)
    return coarse, fine


@dataclass
class Calibration:
    """Per-chip comparator references after calibration (theta: (n_chips, cols) LSB, trim: what was added to the
    mapping's references) and the calibration-set disagreement with the software network per layer, before and after."""
    theta: torch.Tensor             # (n_chips, cols) float64 calibrated comparator references (LSB)
    trim: torch.Tensor              # (n_chips, cols) the trim added to the mapping's references
    mismatch_before: list           # per layer: fraction of calibration decisions != software, at trim 0
    mismatch_after: list            # per layer: same, at the chosen trims
    n_images: int
    n_evaluations: int


def _counts(chip, wl, theta, cols, target, noise_seed):
    """(mismatches vs target, count of +1) per chip and column, each (n_chips, fan_out)."""
    dec = chip.evaluate(wl, theta=theta, noise_seed=noise_seed).decisions
    if dec.dim() == 2:
        dec = dec[None]
    d = dec[..., cols]
    return (d != target[None]).sum(1), (d > 0).sum(1)


def calibrate_trim(mapping, chip, codes, split: str, method: str = "bisect", trims: tuple | None = None,
                   span: float = 128.0, bisect_steps: int = 7, fine: int = 3, noise_seed: int = 12345,
                   test_codes=None, program: bool = True) -> Calibration:
    """Per-chip comparator trims from the chip's decisions on calibration (training) images.

    codes: (N, n_features) calibration images from the training split (`split` says so; "test" is rejected).
    method "bisect" (default): per column, bisection of the trim over +-span LSB (`bisect_steps` steps) until the
    chip's rate of +1 decisions matches the software network's on the calibration images, then the trim within
    +-`fine` LSB of it with the fewest disagreements (1 + bisect_steps + 2 fine + 1 classify cycles per image).
    method "grid": every column swept over a coarse grid, then fine offsets around its optimum (`trims` =
    (coarse, fine) LSB grids, default `default_trims()`), keeping the fewest disagreements.
    Ties go to the smallest trim. Returns a `Calibration` whose `theta` goes to `ArrayMapping.run(theta=...)`."""
    check_calibration_set(split, codes, test_codes)
    method = check_choice("method", method, ("bisect", "grid"))
    span = check_real("span", span, 0.0, lo_open=True)
    bisect_steps = check_int("bisect_steps", bisect_steps, 1, 40)
    fine = check_int("fine", fine, 0, 1000)
    codes = mapping.check_codes(codes)
    if codes.dim() != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes shape={tuple(codes.shape)} must be (N >= 1, {mapping.n_features})")
    if program:
        mapping.program(chip)
    dev = getattr(chip, "device", None) or torch.device("cpu")
    acts = mapping.reference(codes, layers=True).activations
    base = mapping.theta.to(torch.float64)
    trim = torch.zeros(int(chip.n_chips), mapping.cols, dtype=torch.float64)
    before, after, n_eval = [], [], 0
    for L in mapping.layers:
        inp = codes if L.index == 0 else acts[L.index - 1]
        measure = _measurer(chip, mapping.layer_codes(L.index, inp.to(torch.int64)).to(dev), base, L,
                            acts[L.index].to(dev), noise_seed + 1000 * L.index, dev)
        zero = torch.zeros(int(chip.n_chips), L.fan_out, dtype=torch.float64)
        c0, _ = measure(zero)
        if method == "bisect":
            allg, allm, n_cycles = _bisect(measure, zero, (acts[L.index] > 0).sum(0), span, bisect_steps, fine)
        else:
            allg, allm, n_cycles = _grid(measure, zero, trims)
        allg, allm = torch.cat([allg, zero[None]]), torch.cat([allm, c0[None]])
        n_eval += (1 + n_cycles) * codes.shape[0]
        trim[:, L.cols] = _argbest(allm, allg)
        n_dec = codes.shape[0] * L.fan_out * int(chip.n_chips)
        before.append(float(c0.double().sum() / n_dec))
        after.append(float(torch.gather(allm, 0, _argbest_index(allm, allg)[None])[0].double().sum() / n_dec))
    return Calibration(theta=base[None] + trim, trim=trim, mismatch_before=before, mismatch_after=after,
                       n_images=int(codes.shape[0]), n_evaluations=n_eval)


def _measurer(chip, wl, base, L, target, seed0: int, dev):
    """measure(trims (n_chips, fan_out)) -> (disagreements with target, +1 counts), each (n_chips, fan_out), cpu;
    every call one classify cycle of layer L over the calibration images with its own noise seed."""
    seed = [seed0]
    cols = L.cols.to(dev)

    def measure(t):
        th = base[None].repeat(int(chip.n_chips), 1)
        th[:, L.cols] += t
        seed[0] += 1
        m, p = _counts(chip, wl, th.to(dev), cols, target, seed[0])
        return m.cpu(), p.cpu()
    return measure


def _bisect(measure, zero, want, span: float, steps: int, fine: int):
    """Bisect each column's trim until its +1 count matches `want` (the software's), then try +-fine LSB around it.
    Returns (trials, disagreements, classify cycles used)."""
    want = want.cpu()[None].expand_as(zero)
    lo, hi = torch.full_like(zero, -span), torch.full_like(zero, span)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = measure(mid)[1] > want                                    # too many +1: raise the reference
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    centre = torch.round(0.5 * (lo + hi))
    grid = [centre + d for d in range(-fine, fine + 1)]
    return torch.stack(grid), torch.stack([measure(g)[0] for g in grid]), steps + len(grid)


def _grid(measure, zero, trims):
    """Every column over a coarse grid, then fine offsets around its optimum. Returns (trials, disagreements,
    classify cycles used)."""
    coarse, fgrid = default_trims() if trims is None else (torch.as_tensor(trims[0], dtype=torch.float64),
                                                           torch.as_tensor(trims[1], dtype=torch.float64))
    g1 = torch.stack([zero + c for c in coarse])
    m1 = torch.stack([measure(g)[0] for g in g1])
    g2 = torch.stack([_argbest(m1, g1) + f for f in fgrid])
    m2 = torch.stack([measure(g)[0] for g in g2])
    return torch.cat([g1, g2]), torch.cat([m1, m2]), len(g1) + len(g2)


def _argbest_index(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Index along dim 0 of the fewest mismatches; ties broken by the smallest |trim|."""
    key = m.double() * 1e6 + g.abs()
    return key.argmin(0)


def _argbest(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The trial with the fewest mismatches per column (ties: the smallest |trim|)."""
    return torch.gather(g, 0, _argbest_index(m, g)[None])[0]
