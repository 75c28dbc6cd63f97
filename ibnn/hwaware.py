"""Accuracy of the mapped BNN over many simulated chips, and two ways to lower the loss on chip.

(a) Per-chip threshold calibration (`calibrate_trim`): chip-in-the-loop, in the spirit of the prototype's
    error-adaptive training: for each chip, each layer is driven with a few hundred TRAINING images (layer l > 0
    with the software activations of layer l-1, which the digital controller can drive onto the word lines), the
    comparator reference of every column is swept over a grid of trims, and each column keeps the trim at which
    its decisions disagree least with the software network's (ties: the smallest trim). Only comparator outputs are
    observed, as on silicon. It removes each column's static threshold error (comparator offset, the mean effect of
    cell and DAC mismatch, the compression of the bias rows) but not temporal noise or input-dependent errors.
    A calibration set drawn from the test set is rejected (`check_calibration_set`).
(b) Noise-aware training (`train_noise_aware`): the classifier is trained with the column error of the chip model
    in the loop (`train_bnn(..., preact_noise=...)`): a Gaussian error whose standard deviation (in LSB, per layer,
    growing with the bit-line signal) is measured on chips that are never used for evaluation
    (`measure_column_error`).

Evaluation is always on HELD-OUT chips: `heldout_seed` chip seeds are disjoint from the seeds used to measure the
error model or to tune the calibration; per-chip calibration uses only that chip's responses to training images,
and fresh temporal noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .validate import check_choice, check_int, check_real

CAL_SPLITS = ("train", "val")


# ------------------------------------------------------------------------------------------------------------
# the trained network
# ------------------------------------------------------------------------------------------------------------
def find_checkpoint(profile: str = "full", name: str | None = None):
    """Path of the trained BNN checkpoint in results/checkpoints: `name` if given, else bnn_<profile>.pt,
    bnn.pt (full) / bnn_fast.pt (fast), else the only bnn*.pt there. FileNotFoundError says what to run."""
    from . import io
    d = io.checkpoints_dir()
    if name:
        p = d / name if not str(name).startswith("/") else __import__("pathlib").Path(name)
        if not p.exists():
            raise FileNotFoundError(f"checkpoint={name!r}: {p} does not exist; run notebook 03 first (make figures)")
        return p
    order = [f"bnn_{profile}.pt"] + (["bnn_fast.pt", "bnn.pt"] if profile == "fast" else ["bnn.pt"])
    for n in order:
        if (d / n).exists():
            return d / n
    cands = [p for p in sorted(d.glob("bnn*.pt"))] if d.exists() else []
    if profile != "fast":
        cands = [p for p in cands if "fast" not in p.name]
    if len(cands) == 1:
        return cands[0]
    raise FileNotFoundError(f"no trained checkpoint for profile {profile!r} in {d} (looked for {order}, found "
                            f"{[p.name for p in cands]}): run notebooks 01-03 first (make figures)")


def load_network(path, expect: dict | None = None):
    """The FoldedBNN in `path`, recorded as an input of the current notebook (provenance)."""
    from . import classifier, io
    folded = classifier.load_checkpoint(path, expect=expect)
    io.record_input(path)
    return folded


# ------------------------------------------------------------------------------------------------------------
# chips and accuracy
# ------------------------------------------------------------------------------------------------------------
def make_chips(n_chips: int, seed: int = 0, nonideal=None, params=None, device=None):
    """`n_chips` simulated chips (ibnn.chip.Chip); n_chips <= 0 is a ValueError before any work."""
    n_chips = check_int("n_chips", n_chips, 1)
    seed = check_int("seed", seed, 0)
    from .chip import Chip
    return Chip(params=params, n_chips=n_chips, seed=seed, nonideal=nonideal, device=device)


def chip_accuracies(mapping, chip, codes, labels, theta=None, noise_seed: int | None = 0,
                    return_layers: bool = False, batch: int | None = None):
    """Accuracy of the mapped network on every chip: float64 (n_chips,) (and the per-layer activations)."""
    labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).to(torch.int64)
    codes = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes)
    if labels.shape != (codes.shape[-2],):
        raise ValueError(f"labels shape={tuple(labels.shape)} must be ({codes.shape[-2]},) like the codes")
    out = mapping.run(chip, codes, return_layers=return_layers, theta=theta, noise_seed=noise_seed, batch=batch)
    pred = out[0] if return_layers else out
    acc = (pred == labels[None]).double().mean(1)
    return (acc, out[1]) if return_layers else acc


@dataclass
class DropStats:
    software: float
    accuracies: list
    mean_drop: float
    std_drop: float
    median_drop: float
    interval95: tuple          # 2.5 and 97.5 percentiles of the per-chip drop (spread over chips)
    mean_ci95: tuple           # 95% confidence interval of the mean drop (t interval)
    worst_drop: float
    n_chips: int

    def as_dict(self) -> dict:
        return {"software_accuracy": self.software, "chip_accuracies": list(self.accuracies),
                "mean_drop": self.mean_drop, "std_drop": self.std_drop, "median_drop": self.median_drop,
                "drop_interval95": list(self.interval95), "mean_drop_ci95": list(self.mean_ci95),
                "worst_drop": self.worst_drop, "n_chips": self.n_chips}


def drop_stats(accuracies, software: float) -> DropStats:
    """Accuracy drop (software - chip, in accuracy units, 0.004 = 0.4 points) over chips."""
    acc = np.asarray(torch.as_tensor(accuracies).double().cpu(), dtype=np.float64)
    if acc.ndim != 1 or acc.size == 0:
        raise ValueError(f"accuracies shape={acc.shape} must be a non-empty 1-D array (one per chip)")
    d = software - acc
    n = d.size
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if n > 1:
        from scipy import stats
        h = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    else:
        h = float("inf")
    lo, hi = np.percentile(d, [2.5, 97.5])
    m = float(d.mean())
    ci = (m - h, m + h) if math.isfinite(h) else (m, m)
    return DropStats(float(software), acc.tolist(), m, sd, float(np.median(d)), (float(lo), float(hi)),
                     (float(ci[0]), float(ci[1])), float(d.max()), n)


def layer_flip_rates(acts_chip: Sequence[torch.Tensor], acts_ref: Sequence[torch.Tensor]) -> list[dict]:
    """Per layer: the fraction of neuron outputs that differ from the ideal chip's, mean and per chip.

    acts_chip[l]: (n_chips, B, n_l); acts_ref[l]: (B, n_l) or (n_chips, B, n_l). Later layers see the flips of
    earlier ones (end-to-end, as on the chip)."""
    out = []
    for l, (a, r) in enumerate(zip(acts_chip, acts_ref)):
        if r.dim() == 2:
            r = r[None]
        flips = (a != r).double()
        out.append({"layer": l, "flip_rate": float(flips.mean()),
                    "flip_rate_per_chip": flips.mean((1, 2)).tolist(),
                    "flip_rate_per_column": flips.mean((0, 1)).tolist()})
    return out


# ------------------------------------------------------------------------------------------------------------
# (a) per-chip threshold calibration
# ------------------------------------------------------------------------------------------------------------
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
    theta: torch.Tensor             # (n_chips, cols) float64 calibrated comparator references (LSB)
    trim: torch.Tensor              # (n_chips, cols) the trim added to the mapping's references
    mismatch_before: list           # per layer: fraction of calibration decisions != software, at trim 0
    mismatch_after: list            # per layer: same, at the chosen trims
    n_images: int
    n_evaluations: int


def _mismatch(chip, wl, theta, cols, target, noise_seed):
    dec = chip.evaluate(wl, theta=theta, noise_seed=noise_seed)
    if dec.dim() == 2:
        dec = dec[None]
    return (dec[..., cols] != target[None]).sum(1)          # (n_chips, fan_out)


def calibrate_trim(mapping, chip, codes, split: str, trims: tuple | None = None, noise_seed: int = 12345,
                   test_codes=None, program: bool = True) -> Calibration:
    """Per-chip comparator trims from the chip's decisions on calibration (training) images.

    codes: (N, n_features) calibration images from the training split (`split` says so; "test" is rejected).
    trims: (coarse, fine) LSB grids (default `default_trims()`): every column is first swept over the coarse grid,
    then over the fine offsets around its coarse optimum. Each sweep point is one classify cycle per image.
    Returns a `Calibration` whose `theta` goes to `ArrayMapping.run(..., theta=...)`."""
    check_calibration_set(split, codes, test_codes)
    codes = mapping._check_codes(codes)
    if codes.dim() != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes shape={tuple(codes.shape)} must be (N >= 1, {mapping.n_features})")
    n_chips = int(chip.n_chips)
    coarse, fine = default_trims() if trims is None else (torch.as_tensor(trims[0], dtype=torch.float64),
                                                           torch.as_tensor(trims[1], dtype=torch.float64))
    if program:
        mapping.program(chip)
    dev = getattr(chip, "device", None) or torch.device("cpu")
    _, acts = mapping.reference(codes, return_layers=True)
    base = mapping.theta.to(torch.float64)
    trim = torch.zeros(n_chips, mapping.cols, dtype=torch.float64)
    before, after = [], []
    n_eval = 0
    for L in mapping.layers:
        inp = codes if L.index == 0 else acts[L.index - 1]
        wl = mapping.layer_codes(L.index, inp.to(torch.int64)).to(dev)
        target = acts[L.index].to(dev)
        cols = L.cols.to(dev)
        seed = noise_seed + 1000 * L.index

        def sweep(grid_per_col):   # grid_per_col: (G, n_chips, fan_out) trims
            counts = []
            for g in range(grid_per_col.shape[0]):
                th = base[None].repeat(n_chips, 1)
                th[:, L.cols] += grid_per_col[g]
                counts.append(_mismatch(chip, wl, th.to(dev), cols, target, seed + g).cpu())
            return torch.stack(counts)                       # (G, n_chips, fan_out)

        zero = torch.zeros(1, n_chips, L.fan_out, dtype=torch.float64)
        c0 = sweep(zero)[0]
        g1 = coarse[:, None, None].expand(-1, n_chips, L.fan_out)
        m1 = sweep(g1)
        best1 = _argbest(m1, g1)
        g2 = best1[None] + fine[:, None, None]
        m2 = sweep(g2)
        # keep the coarse optimum in the running (fine grid excludes offset 0 only if fine lacks 0)
        allg = torch.cat([g1, g2, zero])
        allm = torch.cat([m1, m2, c0[None]])
        best = _argbest(allm, allg)
        n_eval += (1 + coarse.numel() + fine.numel()) * inp.shape[0]
        trim[:, L.cols] = best
        nimg = codes.shape[0] * L.fan_out
        before.append(float(c0.double().sum() / (nimg * n_chips)))
        chosen = torch.gather(allm, 0, _argbest_index(allm, allg)[None])[0]
        after.append(float(chosen.double().sum() / (nimg * n_chips)))
    return Calibration(theta=base[None] + trim, trim=trim, mismatch_before=before, mismatch_after=after,
                       n_images=int(codes.shape[0]), n_evaluations=n_eval)


def _argbest_index(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Index along dim 0 of the fewest mismatches; ties broken by the smallest |trim|."""
    key = m.double() * 1e6 + g.abs()
    return key.argmin(0)


def _argbest(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.gather(g, 0, _argbest_index(m, g)[None])[0]


# ------------------------------------------------------------------------------------------------------------
# (b) noise-aware training
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ColumnErrorModel:
    """Column error in LSB per layer: e = dV / volts_per_lsb - ideal dot ~ gain * dot + N(0, s0^2 + s1^2 * load)
    with load = the column's total driven code sum (signal on both bit-lines) / 1000."""
    gain: list          # per layer: relative gain error (compression: negative)
    sigma0: list        # per layer: LSB, load-independent part (comparator offset, ...)
    sigma1: list        # per layer: LSB per sqrt(load/1000 LSB) (cell/DAC mismatch, noise)
    n_chips: int
    seed: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def measure_column_error(mapping, chip, codes, split: str = "train", test_codes=None) -> ColumnErrorModel:
    """Fit `ColumnErrorModel` from the differential bit-line voltages of `chip` (chips used only for this)
    driven with training images (layer l > 0 with the software activations of layer l-1)."""
    check_calibration_set(split, codes, test_codes)
    codes = mapping._check_codes(codes)
    mapping.program(chip)
    vpl = float(chip.volts_per_lsb)
    _, acts = mapping.reference(codes, return_layers=True)
    W = mapping.weights.to(torch.int64)
    gain, s0, s1 = [], [], []
    for L in mapping.layers:
        inp = codes if L.index == 0 else acts[L.index - 1]
        wl = mapping.layer_codes(L.index, inp.to(torch.int64)).to(torch.int64)
        dec, dv = chip.evaluate(wl, theta=mapping.theta, return_dv=True, noise_seed=777 + L.index)
        if dv.dim() == 2:
            dv = dv[None]
        dot = (wl @ W[:, L.cols]).double()                  # (B, fan_out) ideal, incl. bias rows
        load = (wl.double().sum(1, keepdim=True) / 1000.0).expand_as(dot)
        meas = dv[..., L.cols.to(dv.device)].double().cpu() / vpl
        err = meas - dot[None]
        x = dot[None].expand_as(err).reshape(-1)
        e = err.reshape(-1)
        g = float((x * e).sum() / (x * x).sum().clamp_min(1e-12))
        r = e - g * x
        ld = load[None].expand_as(err).reshape(-1)
        # var(r) = s0^2 + s1^2 * load  (least squares on r^2)
        A = torch.stack([torch.ones_like(ld), ld], 1)
        sol = torch.linalg.lstsq(A, (r * r)[:, None]).solution[:, 0]
        gain.append(g)
        s0.append(float(sol[0].clamp_min(0).sqrt()))
        s1.append(float(sol[1].clamp_min(0).sqrt()))
    return ColumnErrorModel(gain, s0, s1, int(chip.n_chips), int(getattr(chip, "seed", -1)))


def preact_noise_from(model: ColumnErrorModel, mapping, scale: float = 1.0, seed: int = 0) -> Callable:
    """A `preact_noise(layer_index, z)` callable for `classifier.train_bnn`.

    z is the software pre-activation x @ W (layer 0: codes; layer l > 0: +-1 inputs). On the array layer l > 0
    sees c_h / 2 * (z + sum w) (unsigned drive), so its error in z units is divided by c_h / 2. The load is
    approximated by the mean drive of a typical image (sum of codes) - an error model, not the chip."""
    scale = check_real("scale", scale, 0.0)
    gen = torch.Generator().manual_seed(int(seed))
    conv = []
    for L in mapping.layers:
        conv.append(1.0 if L.input_kind == "codes" else L.input_code / 2.0)

    def noise(index: int, z: torch.Tensor) -> torch.Tensor:
        if index >= len(conv):
            return z
        c = conv[index]
        sig = math.sqrt(model.sigma0[index] ** 2 + model.sigma1[index] ** 2 * 0.5) / c
        eps = torch.randn(z.shape, generator=gen, dtype=z.dtype) * (scale * sig)
        return z * (1.0 + scale * model.gain[index]) + eps

    return noise
