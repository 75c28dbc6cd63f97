"""Accuracy of the mapped BNN over many simulated chips, and hardware-aware ways to lower the loss on chip.

(a) Per-chip threshold calibration (`calibrate_trim`), chip in the loop, in the spirit of the prototype's
    error-adaptive training: each chip's layers are driven with a few hundred TRAINING images (layer l > 0 with the
    software activations of layer l-1, which the digital controller can drive onto the word lines); every column's
    comparator reference trim is bisected until the column outputs +1 as often as the software neuron on those
    images, then moved within a few LSB to where its decisions disagree least with the software network's (or,
    method "grid", swept over a grid). Only comparator outputs are observed, as on silicon. It removes each
    column's static threshold error (comparator offset, the mismatch of its bias cells, the mean effect of its data
    cells' mismatch) but not input-dependent errors (each cell's own mismatch acts on its weight) or temporal noise.
    A calibration set drawn from the test set is rejected (`check_calibration_set`).
(b) Noise-aware training (`train_noise_aware`): `measure_column_error` fits the column error (gain, and a
    Gaussian spread growing with the bit-line load) on chips used for nothing else; its input-dependent part at the
    typical load (`noise_sigma_lsb`) is added to every pre-activation during a retraining with the base recipe
    (`classifier.train_bnn(preact_noise=...)`); `preact_noise_from` gives a load-aware callable as well.

Evaluation is always on HELD-OUT chips: the evaluation chips' seed is disjoint from the seeds used to tune the
calibration or measure the error model; per-chip calibration uses only that chip's responses to training images,
with fresh temporal noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .claims import PAPER
from .validate import check_choice, check_int, check_real

CAL_SPLITS = ("train", "val")

#: The paper's claim: 0.4% (0.004) lost on chip; the paper's figures live in ibnn.claims.PAPER.
PAPER_DROP = PAPER["accuracy_drop"]


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


def _counts(chip, wl, theta, cols, target, noise_seed):
    """(mismatches vs target, count of +1) per chip and column, each (n_chips, fan_out)."""
    dec = chip.evaluate(wl, theta=theta, noise_seed=noise_seed)
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
    n_chips = int(chip.n_chips)
    if program:
        mapping.program(chip)
    dev = getattr(chip, "device", None) or torch.device("cpu")
    _, acts = mapping.reference(codes, return_layers=True)
    base = mapping.theta.to(torch.float64)
    trim = torch.zeros(n_chips, mapping.cols, dtype=torch.float64)
    before, after = [], []
    n_eval = 0
    N = codes.shape[0]
    for L in mapping.layers:
        inp = codes if L.index == 0 else acts[L.index - 1]
        wl = mapping.layer_codes(L.index, inp.to(torch.int64)).to(dev)
        target = acts[L.index].to(dev)
        cols = L.cols.to(dev)
        seed = [noise_seed + 1000 * L.index]

        def measure(t):   # t: (n_chips, fan_out) trims -> (mismatches, +1 counts), cpu
            th = base[None].repeat(n_chips, 1)
            th[:, L.cols] += t
            seed[0] += 1
            m, p = _counts(chip, wl, th.to(dev), cols, target, seed[0])
            return m.cpu(), p.cpu()

        zero = torch.zeros(n_chips, L.fan_out, dtype=torch.float64)
        c0, p0 = measure(zero)
        if method == "bisect":
            want = (target > 0).sum(0).cpu()[None].expand(n_chips, -1)       # software +1 count per column
            lo = torch.full_like(zero, -span)
            hi = torch.full_like(zero, span)
            for _ in range(bisect_steps):
                mid = 0.5 * (lo + hi)
                _, p = measure(mid)
                up = p > want                                                  # too many +1: raise the reference
                lo = torch.where(up, mid, lo)
                hi = torch.where(up, hi, mid)
            centre = torch.round(0.5 * (lo + hi))
            grid = [centre + d for d in range(-fine, fine + 1)]
            ms = [measure(g)[0] for g in grid]
            allg = torch.stack(grid + [zero])
            allm = torch.stack(ms + [c0])
            n_eval += (1 + bisect_steps + len(grid)) * N
        else:
            coarse, fgrid = default_trims() if trims is None else (torch.as_tensor(trims[0], dtype=torch.float64),
                                                                   torch.as_tensor(trims[1], dtype=torch.float64))
            g1 = [zero + c for c in coarse]
            m1 = torch.stack([measure(g)[0] for g in g1])
            best1 = _argbest(m1, torch.stack(g1))
            g2 = [best1 + f for f in fgrid]
            m2 = torch.stack([measure(g)[0] for g in g2])
            allg = torch.cat([torch.stack(g1), torch.stack(g2), zero[None]])
            allm = torch.cat([m1, m2, c0[None]])
            n_eval += (1 + len(g1) + len(g2)) * N
        best = _argbest(allm, allg)
        trim[:, L.cols] = best
        nimg = N * L.fan_out
        before.append(float(c0.double().sum() / (nimg * n_chips)))
        chosen = torch.gather(allm, 0, _argbest_index(allm, allg)[None])[0]
        after.append(float(chosen.double().sum() / (nimg * n_chips)))
    return Calibration(theta=base[None] + trim, trim=trim, mismatch_before=before, mismatch_after=after,
                       n_images=int(N), n_evaluations=n_eval)


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
    codes = mapping.check_codes(codes)
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


# ------------------------------------------------------------------------------------------------------------
# one nonideality at a time
# ------------------------------------------------------------------------------------------------------------
NONIDEALITIES = ("cell_mismatch", "dac_mismatch", "comparator_offset", "noise", "compression")


def alone(name: str, scale: float = 1.0):
    """Nonidealities with only `name` on (at `scale`), everything else ideal."""
    from .chip import Nonidealities
    check_choice("name", name, NONIDEALITIES)
    scale = check_real("scale", scale, 0.0)
    kw = {n: 0.0 for n in NONIDEALITIES}
    kw[name] = scale
    return Nonidealities(**kw)


def physical_magnitude(name: str, scale: float, params=None) -> tuple[float, str]:
    """The physical magnitude a Nonidealities scale stands for, and its unit (for axes)."""
    from . import params as _p
    P = params if params is not None else _p.load()
    if name == "cell_mismatch":
        return 1e3 * P["sigma_vt_cell"] * scale, "cell sigma(Vt) (mV)"
    if name == "dac_mismatch":
        return 100 * P["sigma_dac_unit"] * scale, "WLDAC unit-source sigma (%)"
    if name == "comparator_offset":
        return 1e3 * P["comp_offset_sigma"] * scale, "comparator offset sigma (mV)"
    if name == "noise":
        return 1e3 * P["comp_noise_sigma"] * scale, "comparator noise sigma (mV rms)"
    if name == "compression":
        return float(scale), "compression scale (0 linear, 1 physical)"
    raise ValueError(f"name={name!r} is not accepted; choose one of {list(NONIDEALITIES)}")


def sweep_point(mapping, codes, labels, software: float, n_chips: int, seed: int, nonideal=None, params=None,
                noise_seed: int = 1) -> DropStats:
    """Drop statistics of `n_chips` chips (seed) with the given Nonidealities / ParamSet."""
    chip = make_chips(n_chips, seed, nonideal=nonideal, params=params)
    acc = chip_accuracies(mapping, chip, codes, labels, noise_seed=noise_seed)
    return drop_stats(acc, software)


def crossing(x: Sequence[float], y: Sequence[float], level: float) -> float | None:
    """First x at which the piecewise-linear y(x) (x increasing) reaches `level` from below; None if never."""
    x, y = list(map(float, x)), list(map(float, y))
    for i in range(1, len(x)):
        if y[i - 1] < level <= y[i]:
            return x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1])
    if y and y[0] >= level:
        return x[0]
    return None



def noise_sigma_lsb(error: ColumnErrorModel, mapping, codes, layer: int = 0) -> float:
    """The input-dependent column error (LSB) at the typical drive of `codes`: sigma1 sqrt(load / 1000), with
    load = mean code sum of the images + the layer's bias-row codes (what a trim calibration cannot remove)."""
    codes = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes)
    load = float(codes.double().sum(1).mean()) + float(mapping.layers[layer].bias_codes.sum())
    return float(error.sigma1[layer] * math.sqrt(max(load, 0.0) / 1000.0))


def train_noise_aware(codes, labels, sigma_lsb: float, base_meta: dict, cache_path=None, epochs: int | None = None,
                      seed: int | None = None, noise_seed: int = 0):
    """Train the BNN again, with the recipe of the base checkpoint (`base_meta`: on_array, readout, epochs, lr,
    batch_size, seed), but with Gaussian noise of `sigma_lsb` added to every on-array pre-activation during
    training (`classifier.train_bnn(preact_noise=...)`), so the network learns margins against the column error.
    Layers after the first see +-1 inputs; their noise is the same in z units (a simplification).

    With `cache_path`, a checkpoint trained with the same base, sigma (to 0.01 LSB), epochs and seed is loaded
    instead of retrained (its metadata is checked). Returns (FoldedBNN, info dict)."""
    from . import classifier as clf, io
    sigma_lsb = round(check_real("sigma_lsb", sigma_lsb, 0.0), 2)
    hidden = list(base_meta.get("on_array") or base_meta["topology"][1:-1])
    readout = base_meta.get("readout", "digital")
    epochs = check_int("epochs", int(base_meta.get("epochs", 60)) if epochs is None else epochs, 1)
    seed = check_int("seed", int(base_meta.get("seed", 0)) if seed is None else seed, 0)
    key = {"noise_sigma_lsb": sigma_lsb, "noise_epochs": epochs, "seed": seed, "base_topology": base_meta.get("topology"),
           "base_readout": readout}
    if cache_path is not None:
        from pathlib import Path
        cache_path = Path(cache_path)
        if cache_path.exists():
            try:
                folded = clf.load_checkpoint(cache_path, expect=key)
                io.record_input(cache_path)
                return folded, {"cached": True, **key, "train_seconds": folded.meta.get("train_seconds")}
            except ValueError:
                pass
    gen = torch.Generator().manual_seed(noise_seed)

    def noise(index, z):
        return z + sigma_lsb * torch.randn(z.shape, generator=gen, dtype=z.dtype)

    r = clf.train_bnn(codes, labels, hidden=hidden, readout=readout, bits=int(base_meta.get("bits", 5)),
                      epochs=epochs, batch_size=int(base_meta.get("batch_size", 512)),
                      lr=float(base_meta.get("lr", 1e-2)), seed=seed, preact_noise=noise)
    meta = {k: base_meta[k] for k in ("size", "bits", "data_checksums") if k in base_meta}
    meta.update(key)
    meta["train_seconds"] = round(r.seconds, 1)
    if cache_path is not None:
        clf.save_checkpoint(cache_path, r.model, meta)
        io.record_input(cache_path)
    return clf.fold(r.model, meta), {"cached": False, **key, "train_seconds": round(r.seconds, 1)}
