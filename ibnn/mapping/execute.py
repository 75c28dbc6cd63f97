"""Running a mapped network: each layer one classify cycle on the array, weights stationary; and the exact
integer reference an ideal chip must equal."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..circuit.chip import Chip
from ..validate import check_int


@dataclass
class RunResult:
    """What a run returns. labels int64 (n_chips, B) (for `reference`: (B,)); activations: per layer the +-1
    outputs int8 (n_chips, B, fan_out) (reference: (B, fan_out)), when asked for; dv: per layer the differential
    bit-line voltages float32 (n_chips, B, fan_out) in volts, when asked for; drops: per layer how far BL and BLB of
    every column fell, float32 (n_chips, B, cols, 2) in volts (the chip's own line sums, what the energy model
    needs), when asked for."""
    labels: torch.Tensor
    activations: list | None = None
    dv: list | None = None
    drops: list | None = None


def reference(mapping, codes, layers: bool = False) -> RunResult:
    """What an ideal array computes: per cycle +1 iff (row codes @ W)[col] >= theta_ref, exactly (int64).

    codes (B, n_features). Returns labels (B,) (and, with layers, the per-layer +-1 activations)."""
    codes = mapping.check_codes(codes)
    if codes.dim() != 2:
        raise ValueError(f"codes shape={tuple(codes.shape)}: reference takes (B, {mapping.n_features})")
    W = mapping.weights.to(torch.int64)
    a, acts = codes, []
    for L in mapping.layers:
        dot = mapping.layer_codes(L.index, a).to(torch.int64) @ W[:, L.cols]
        # theta_ref is integer or half-integer by construction: compare exactly in 2x units
        a = torch.where(2 * dot >= torch.round(2 * L.theta_ref).to(torch.int64), 1, -1).to(torch.int8)
        acts.append(a)
    return RunResult(predict(mapping.readout, acts[-1]), acts if layers else None)


def run(mapping, chip, codes, *, theta=None, noise_seed: int | None = None, layers: bool = False,
        dv: bool = False, drops: bool = False, batch: int | None = None, program: bool = True) -> RunResult:
    """Run the mapped network on every chip of `chip` for every input.

    Args:
        codes: (B, n_features) (the same images on every chip) or (n_chips, B, n_features), ints 0..2**bits-1.
        theta: comparator references (cols,) or (n_chips, cols) in LSB (default: the mapping's `theta`;
            per-chip calibration passes its trimmed references).
        noise_seed: base seed of the temporal noise; each cycle and image batch gets its own derived seed.
        layers, dv, drops: also return the per-layer activations / differential bit-line voltages / line drops.
        batch: images per `Chip.evaluate` call (default: about 2**21 / n_chips, bounded memory).
        program: write the weight image into the chips first.
    Returns:
        RunResult with labels (n_chips, B).
    """
    codes = mapping.check_codes(codes)
    n_chips = int(getattr(chip, "n_chips", 1))
    if n_chips <= 0:
        raise ValueError(f"n_chips={n_chips} is out of range; accepted: integer in [1, inf)")
    if codes.dim() == 3 and codes.shape[0] != n_chips:
        raise ValueError(f"codes shape={tuple(codes.shape)}: leading dimension must be n_chips={n_chips}")
    theta = _theta_for(mapping, theta, n_chips)
    if program:
        mapping.program(chip)
    B = codes.shape[-2]
    if batch is None:   # word-line codes, decisions (and dV) of one batch stay within a few 100 MB
        batch = max(256, (1 << 21) // max(n_chips, 1) // (4 if dv else 1) // (16 if drops else 1))
    batch = check_int("batch", batch, 1)
    out = RunResult(torch.empty(n_chips, B, dtype=torch.int64),
                    [torch.empty(n_chips, B, L.fan_out, dtype=torch.int8) for L in mapping.layers]
                    if (layers or dv) else None,
                    [torch.empty(n_chips, B, L.fan_out, dtype=torch.float32) for L in mapping.layers] if dv else None,
                    [torch.empty(n_chips, B, mapping.cols, 2, dtype=torch.float32) for _ in mapping.layers]
                    if drops else None)
    for bi, start in enumerate(range(0, B, batch)):
        stop = min(B, start + batch)
        a = _run_batch(mapping, chip, codes[..., start:stop, :], theta, noise_seed, bi, out, start, stop)
        out.labels[:, start:stop] = predict(mapping.readout, a.reshape(-1, a.shape[-1]).to("cpu")).reshape(
            n_chips, stop - start)
    if not layers:
        out.activations = None
    return out


def run_streamed(mapping, params, codes, n_chips: int, *, seed: int = 0, nonideal=None, device=None,
                 chips_per_group: int = 25, batch: int = 2048, noise_seed: int | None = None) -> RunResult:
    """The mapped network on n_chips chips of `seed`, drawn `chips_per_group` at a time and run `batch` images
    per cycle, so memory is bounded by one group (its draws, tables and one batch) whatever n_chips and B are;
    only the labels, int64 (n_chips, B), grow with them.

    Chip k is `Chip(params, seed=seed, first_chip=k)` and every evaluation gets the noise it gets unstreamed, so
    the labels equal `run(mapping, Chip(params, n_chips, seed, nonideal), codes, noise_seed=noise_seed,
    batch=batch)` (tested)."""
    n_chips = check_int("n_chips", n_chips, 1)
    group = check_int("chips_per_group", chips_per_group, 1)
    codes = mapping.check_codes(codes)
    if codes.dim() != 2:
        raise ValueError(f"codes shape={tuple(codes.shape)}: run_streamed takes (B, {mapping.n_features})")
    labels = torch.empty(n_chips, codes.shape[0], dtype=torch.int64)
    for k0 in range(0, n_chips, group):
        k1 = min(n_chips, k0 + group)
        chip = Chip(params, n_chips=k1 - k0, seed=seed, nonideal=nonideal, device=device, first_chip=k0)
        labels[k0:k1] = run(mapping, chip, codes, noise_seed=noise_seed, batch=batch).labels
        del chip
    return RunResult(labels)


def _run_batch(mapping, chip, a, theta, noise_seed, bi, out: RunResult, start: int, stop: int):
    """Every layer's cycle for one batch of images; fills out.activations / dv / drops; returns the last outputs."""
    device = getattr(chip, "device", None)
    if device is not None:
        a = a.to(device)
    for L in mapping.layers:
        wl = mapping.layer_codes(L.index, a)
        seed = None if noise_seed is None else derive_seed(noise_seed, L.index, bi)
        res = chip.evaluate(wl, theta=theta, noise_seed=seed, dv=out.dv is not None, drops=out.drops is not None)
        a = _columns(res.decisions, L.cols)
        if a.dim() == 2:  # a single chip given (B, cols) back: make it (1, B, cols)
            a = a[None]
        if out.activations is not None:
            out.activations[L.index][:, start:stop] = a.to("cpu", torch.int8)
        if out.dv is not None:
            out.dv[L.index][:, start:stop] = _columns(res.dv, L.cols).reshape(a.shape).to(
                "cpu", torch.float32)
        if out.drops is not None:
            out.drops[L.index][:, start:stop] = res.drops.reshape(a.shape[0], stop - start, -1, 2).to(
                "cpu", torch.float32)
    return a


def _columns(t: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """t[..., cols]: a view where cols is one ascending run of columns (a layer's usual place), else a copy (for
    many chips' decisions a gather is a sizeable part of a run: benchmarks/bench_mapping.py)."""
    n = len(cols)
    first = int(cols[0]) if n else 0
    if n and torch.equal(cols.cpu(), torch.arange(first, first + n, dtype=cols.dtype)):
        return t.narrow(-1, first, n)
    return t[..., cols.to(t.device)]


def _theta_for(mapping, theta, n_chips: int) -> torch.Tensor:
    """The mapping's references, or the given ones checked: (cols,) or (n_chips, cols), finite."""
    if theta is None:
        return mapping.theta
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.shape not in ((mapping.cols,), (n_chips, mapping.cols)):
        raise ValueError(f"theta shape={tuple(theta.shape)} must be ({mapping.cols},) or ({n_chips}, {mapping.cols})")
    if not torch.isfinite(theta).all():
        raise ValueError("theta must be finite")
    return theta


def derive_seed(base: int, layer: int, batch_index: int) -> int:
    """The temporal-noise seed of one layer's cycle for one image batch, from the run's base seed."""
    return (int(base) * 1_000_003 + 7919 * (layer + 1) + 104_729 * batch_index) % (2 ** 62)


def predict(readout, a: torch.Tensor) -> torch.Tensor:
    """Labels int64 (B,) of the digital readout for the last layer's +-1 outputs a (B, n_last)."""
    return torch.as_tensor(readout.predict(a)).to(torch.int64).reshape(-1)
