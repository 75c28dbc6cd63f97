"""Noise-aware training: the column error measured on chips used for nothing else, then added to every
pre-activation while the BNN is retrained (notebook 05).

`measure_column_error` fits the column error (gain, and a Gaussian spread growing with the bit-line load); its
input-dependent part at the typical load (`noise_sigma_lsb`) is added to every pre-activation during a retraining
with the base recipe (`train_bnn(preact_noise=...)`); `preact_noise_from` gives a load-aware callable as well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..nn import checkpoint as ckpt
from ..nn.folded import fold
from ..nn.train import Recipe, train_bnn
from ..repro import io, provenance
from ..repro.device import as_tensor, torch_threads
from ..validate import check_int, check_real
from .calibration import check_calibration_set


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
        """The fields as plain JSON-ready values."""
        return dict(self.__dict__)


def measure_column_error(mapping, chip, codes, split: str = "train", test_codes=None) -> ColumnErrorModel:
    """Fit `ColumnErrorModel` from the differential bit-line voltages of `chip` (chips used only for this)
    driven with training images (layer l > 0 with the software activations of layer l-1)."""
    check_calibration_set(split, codes, test_codes)
    codes = mapping.check_codes(codes)
    mapping.program(chip)
    vpl = float(chip.volts_per_lsb)
    acts = mapping.reference(codes, layers=True).activations
    W = mapping.weights.to(torch.int64)
    gain, s0, s1 = [], [], []
    for L in mapping.layers:
        inp = codes if L.index == 0 else acts[L.index - 1]
        wl = mapping.layer_codes(L.index, inp.to(torch.int64)).to(torch.int64)
        dv = chip.evaluate(wl, theta=mapping.theta, noise_seed=777 + L.index, dv=True).dv
        if dv.dim() == 2:
            dv = dv[None]
        dot = (wl @ W[:, L.cols]).double()                  # (B, fan_out) ideal, incl. bias rows
        load = (wl.double().sum(1, keepdim=True) / 1000.0).expand_as(dot)
        meas = dv[..., L.cols.to(dv.device)].double().cpu() / vpl
        g, sol = _fit_error(meas - dot[None], dot, load)
        gain.append(g)
        s0.append(float(sol[0].clamp_min(0).sqrt()))
        s1.append(float(sol[1].clamp_min(0).sqrt()))
    return ColumnErrorModel(gain, s0, s1, int(chip.n_chips), int(getattr(chip, "seed", -1)))


def _fit_error(err: torch.Tensor, dot: torch.Tensor, load: torch.Tensor):
    """(gain, [s0^2, s1^2]) of the column error err (chips, B, fan_out) against the ideal dot (B, fan_out): the
    gain by least squares through 0, then var(r) = s0^2 + s1^2 load (least squares on r^2). On one thread: torch
    splits a long sum among its threads, so on two the last digits would depend on the thread count."""
    with torch_threads(1):
        x = dot[None].expand_as(err).reshape(-1)
        e = err.reshape(-1)
        g = float((x * e).sum() / (x * x).sum().clamp_min(1e-12))
        r = e - g * x
        ld = load[None].expand_as(err).reshape(-1)
        A = torch.stack([torch.ones_like(ld), ld], 1)
        return g, torch.linalg.lstsq(A, (r * r)[:, None]).solution[:, 0]


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


def noise_sigma_lsb(error: ColumnErrorModel, mapping, codes, layer: int = 0) -> float:
    """The input-dependent column error (LSB) at the typical drive of `codes`: sigma1 sqrt(load / 1000), with
    load = mean code sum of the images + the layer's bias-row codes (what a trim calibration cannot remove)."""
    codes = as_tensor(codes)
    load = float(codes.double().sum(1).mean()) + float(mapping.layers[layer].bias_codes.sum())
    return float(error.sigma1[layer] * math.sqrt(max(load, 0.0) / 1000.0))


def train_noise_aware(codes, labels, sigma_lsb: float, base_meta: dict, cache_path=None, epochs: int | None = None,
                      seed: int | None = None, noise_seed: int = 0):
    """Train the BNN again, with the recipe of the base checkpoint (`Recipe.from_meta(base_meta)`; `epochs` and
    `seed` override it), but with Gaussian noise of `sigma_lsb` added to every on-array pre-activation during
    training (`train_bnn(preact_noise=...)`), so the network learns margins against the column error.
    Layers after the first see +-1 inputs; their noise is the same in z units (a simplification).

    With `cache_path`, a checkpoint trained with the same base, sigma (to 0.01 LSB), epochs and seed is loaded
    instead of retrained (its metadata is checked). Returns (FoldedBNN, info dict)."""
    sigma_lsb = round(check_real("sigma_lsb", sigma_lsb, 0.0), 2)
    recipe = Recipe.from_meta(base_meta)
    if epochs is not None:
        recipe = recipe.replace(epochs=check_int("epochs", epochs, 1))
    readout, epochs = recipe.readout, recipe.epochs
    seed = check_int("seed", int(base_meta.get("seed", 0)) if seed is None else seed, 0)
    key = {"noise_sigma_lsb": sigma_lsb, "noise_epochs": epochs, "seed": seed,
           "base_topology": base_meta.get("topology"), "base_readout": readout}
    if cache_path is not None:
        cache_path = Path(cache_path)
        cached = io.input_path(cache_path)          # a hand run (or a staged one) reads the committed cache
        if cached.exists():
            try:
                folded = ckpt.load_checkpoint(cached, expect=key)
                provenance.record_input(cached)
                return folded, {"cached": True, **key, "train_seconds": None}
            except ValueError:
                pass
    gen = torch.Generator().manual_seed(noise_seed)

    def noise(index, z):
        return z + sigma_lsb * torch.randn(z.shape, generator=gen, dtype=z.dtype)

    r = train_bnn(codes, labels, recipe=recipe, seed=seed, preact_noise=noise)
    meta = {k: base_meta[k] for k in ("size", "bits", "data_checksums") if k in base_meta}
    meta.update(key)
    if cache_path is not None:
        ckpt.save_checkpoint(cache_path, r.model, meta)
        provenance.record_input(cache_path)
    return fold(r.model, meta), {"cached": False, **key, "train_seconds": round(r.seconds, 1)}
