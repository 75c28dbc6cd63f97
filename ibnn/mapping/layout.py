"""The mapped network as data: where each layer sits on the array (`LayerMap`), the whole weight image with its
thresholds and readout (`ArrayMapping`), and how it runs on simulated chips (the placement itself:
`ibnn.mapping.place`; running: `ibnn.mapping.execute`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..validate import check_codes
from . import execute as _execute
from .execute import RunResult


@dataclass
class LayerMap:
    """Where one layer sits and how its thresholds are realised. All index tensors are int64."""

    index: int
    fan_in: int
    fan_out: int
    data_rows: torch.Tensor          # (fan_in,) rows driven by the layer's inputs
    bias_rows: torch.Tensor          # (K + F,) rows driven with bias_codes in this layer's cycle
    cols: torch.Tensor               # (fan_out,) columns read (one neuron each)
    input_kind: str                  # "codes" (layer 0: 5-bit codes) | "binary" (+-1 -> 0 / input_code)
    input_code: int | None           # full-scale code for a +1 activation (binary layers)
    bias_codes: torch.Tensor         # (K + F,) int64 code of each bias row (K coarse at full scale, F fine)
    n_coarse: int                    # K coarse bias rows (code 2**bits - 1)
    threshold_sw: torch.Tensor       # (fan_out,) int64: the folded threshold (software domain)
    threshold: torch.Tensor          # (fan_out,) float64: threshold T' in the mapped domain (LSB)
    bias_sum: torch.Tensor           # (fan_out,) int64: B_j, signed sum of the bias rows' contribution (LSB)
    theta_ref: torch.Tensor          # (fan_out,) float64: comparator reference T' + B_j (LSB)
    n_clipped: int = 0               # columns whose threshold could not be realised exactly
    n_saturated: int = 0             # columns that are constant (+1 or -1) over every reachable input
    constant: torch.Tensor | None = None   # (fan_out,) int8: +1 / -1 for those constant columns, else 0

    @property
    def rows(self) -> torch.Tensor:
        """Every row driven (with a non-zero code possible) in this layer's cycle."""
        return torch.cat([self.data_rows, self.bias_rows])

    def summary(self) -> dict:
        """The layer's placement and threshold realisation as a JSON-ready dict (notebook 04's table)."""
        return {
            "layer": self.index, "fan_in": self.fan_in, "fan_out": self.fan_out,
            "data_rows": _span(self.data_rows), "bias_rows": _span(self.bias_rows),
            "n_bias_rows": int(self.bias_rows.numel()), "n_coarse_bias_rows": self.n_coarse,
            "bias_codes": self.bias_codes.tolist(),
            "cols": _span(self.cols), "input_kind": self.input_kind, "input_code": self.input_code,
            "theta_ref_max_abs": float(self.theta_ref.abs().max()) if self.fan_out else 0.0,
            "bias_range_lsb": [-int(self.bias_codes.sum()), int(self.bias_codes.sum())],
            "threshold_range_lsb": [float(self.threshold.min()), float(self.threshold.max())]
            if self.fan_out else [],
            "n_clipped": self.n_clipped, "n_saturated": self.n_saturated,
        }


def _span(idx: torch.Tensor) -> list[int]:
    if idx.numel() == 0:
        return []
    return [int(idx.min()), int(idx.max())]


@dataclass
class ArrayMapping:
    """The mapped network: the +-1 weight image, per-layer placement and thresholds, and the digital readout."""

    weights: torch.Tensor            # (rows, cols) int8 in {-1, +1}
    layers: list[LayerMap]
    readout: Any                     # object with predict(a (B, n_last) +-1) -> int64 (B,)
    bits: int
    n_features: int
    theta_max: float
    meta: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.weights.shape[0])

    @property
    def cols(self) -> int:
        return int(self.weights.shape[1])

    @property
    def theta(self) -> torch.Tensor:
        """Comparator references (cols,) float64 in LSB, 0 on columns no layer reads."""
        th = torch.zeros(self.cols, dtype=torch.float64)
        for L in self.layers:
            th[L.cols] = L.theta_ref
        return th

    # --- role map and description --------------------------------------------------------------------------
    def role_map(self) -> torch.Tensor:
        """(rows, cols) int8: 0 unused column, 1 filler cell in a layer's column (row not driven in its cycle),
        2 + 2 l data cell of layer l, 3 + 2 l bias cell of layer l."""
        role = torch.zeros(self.rows, self.cols, dtype=torch.int8)
        for L in self.layers:
            role[:, L.cols] = 1
            role[L.data_rows[:, None], L.cols[None, :]] = 2 + 2 * L.index
            if L.bias_rows.numel():
                role[L.bias_rows[:, None], L.cols[None, :]] = 3 + 2 * L.index
        return role

    def cycles(self) -> list[dict]:
        """Per classify cycle (one per layer): the rows it drives, the columns it reads, the bias code."""
        return [{"layer": L.index, "data_rows": L.data_rows.tolist(), "bias_rows": L.bias_rows.tolist(),
                 "cols": L.cols.tolist(), "bias_codes": L.bias_codes.tolist(), "input_code": L.input_code}
                for L in self.layers]

    def utilisation(self) -> dict:
        """Cells, columns and rows the mapping uses."""
        role = self.role_map()
        used = int((role >= 2).sum())
        return {"cells_used": used, "cells_total": self.rows * self.cols,
                "fraction_used": used / (self.rows * self.cols),
                "cols_used": int(sum(L.fan_out for L in self.layers)),
                "rows_used_max": int(max(int(L.rows.numel()) for L in self.layers))}

    @property
    def readout_logic(self) -> dict:
        """The digital logic the readout needs, from the readout object / network meta."""
        kind = str(self.meta.get("readout_kind", "unknown"))
        n_last = self.layers[-1].fan_out
        n_classes = int(self.meta.get("n_classes", 10))
        if "vote" in kind:
            per = n_last // max(n_classes, 1)
            desc = (f"{n_classes} popcounts of {per} comparator bits each (adders of "
                    f"{max(1, math.ceil(math.log2(per + 1)))} bits), then a {n_classes}-way argmax "
                    f"(lowest class index wins ties)")
        elif "linear" in kind or "digital" in kind or "dense" in kind:
            desc = (f"a digital layer: {n_classes} XNOR-popcounts over {n_last} comparator bits "
                    f"({n_classes * n_last} 1-b MACs) plus integer biases, then a {n_classes}-way argmax")
        else:
            desc = f"readout {kind!r} applied to the {n_last} comparator bits of the last layer"
        return {"kind": kind, "n_inputs": n_last, "n_classes": n_classes, "logic": desc}

    def describe(self) -> dict:
        """The whole mapping as a JSON-ready dict (results/04_map_to_array.json)."""
        return {"rows": self.rows, "cols": self.cols, "bits": self.bits, "n_features": self.n_features,
                "theta_max_lsb": self.theta_max, "layers": [L.summary() for L in self.layers],
                "utilisation": self.utilisation(), "readout": self.readout_logic}

    # --- compatibility --------------------------------------------------------------------------------------
    def check_compatible(self, folded) -> None:
        """ValueError naming the first field where `folded` (e.g. a loaded checkpoint) differs from this
        mapping: number of layers, layer shapes, weights, thresholds, feature settings."""
        layers = folded_layers(folded)
        if len(layers) != len(self.layers):
            raise ValueError(f"checkpoint has {len(layers)} array layers but the mapping has {len(self.layers)}")
        for L, (w, t) in zip(self.layers, layers):
            if tuple(w.shape) != (L.fan_in, L.fan_out):
                raise ValueError(f"layer {L.index}: checkpoint weight shape {tuple(w.shape)} does not match the "
                                 f"mapping's {(L.fan_in, L.fan_out)}")
            live = (L.constant == 0) if L.constant is not None else torch.ones(L.fan_out, dtype=torch.bool)
            if not torch.equal(w.to(torch.int8)[:, live], self.weights[L.data_rows[:, None], L.cols[live][None, :]]):
                raise ValueError(f"layer {L.index}: checkpoint weights differ from the mapped weights")
            if not torch.equal(t.to(torch.int64), L.threshold_sw):
                raise ValueError(f"layer {L.index}: checkpoint thresholds differ from the mapped thresholds")
        meta = getattr(folded, "meta", {}) or {}
        for key in ("size", "bits"):
            if key in meta and key in self.meta and meta[key] != self.meta[key]:
                raise ValueError(f"checkpoint meta {key}={meta[key]!r} does not match the mapping's "
                                 f"{key}={self.meta[key]!r}")

    # --- inputs -> word-line codes --------------------------------------------------------------------------
    def check_codes(self, codes) -> torch.Tensor:
        """codes int64, (B, n_features) or (n_chips, B, n_features) in 0..2**bits-1, or a ValueError."""
        codes = check_codes("codes", codes, 2 ** self.bits - 1)
        if codes.dim() not in (2, 3) or codes.shape[-1] != self.n_features:
            raise ValueError(f"codes shape={tuple(codes.shape)} must be (B, {self.n_features}) or "
                             f"(n_chips, B, {self.n_features}): the mapping takes {self.n_features} features")
        return codes.to(torch.int64)

    def layer_codes(self, layer: int, inputs: torch.Tensor) -> torch.Tensor:
        """Word-line codes (..., rows) (uint8 for bits <= 8) for one cycle. inputs: codes (..., fan_in) for layer 0, +-1
        activations (..., fan_in) for later layers. Rows not used by the layer are 0 (word line off)."""
        L = self.layers[layer]
        dt = torch.uint8 if self.bits <= 8 else torch.int32     # compact: (n_chips, B, rows) may be large
        out = torch.zeros(*inputs.shape[:-1], self.rows, dtype=dt, device=inputs.device)
        if L.input_kind == "codes":
            x = inputs.to(dt)
        else:
            x = (inputs > 0).to(dt) * L.input_code
        out[..., L.data_rows.to(inputs.device)] = x
        if L.bias_rows.numel():
            out[..., L.bias_rows.to(inputs.device)] = L.bias_codes.to(inputs.device, dt)
        return out

    # --- running ------------------------------------------------------------------------------------------
    def reference(self, codes, layers: bool = False) -> RunResult:
        """What an ideal array computes, exactly in integers (`ibnn.mapping.execute.reference`)."""
        return _execute.reference(self, codes, layers=layers)

    def program(self, chip) -> None:
        """Write the weight image into every chip (weights stationary: once, before any inference)."""
        chip.program(self.weights.to(torch.int8))

    def run(self, chip, codes, *, theta=None, noise_seed: int | None = None, layers: bool = False,
            dv: bool = False, drops: bool = False, batch: int | None = None, program: bool = True) -> RunResult:
        """The mapped network on every chip of `chip` for every input (`ibnn.mapping.execute.run`)."""
        return _execute.run(self, chip, codes, theta=theta, noise_seed=noise_seed, layers=layers, dv=dv,
                            drops=drops, batch=batch, program=program)




def folded_layers(folded) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(weight int64 (fan_in, fan_out) in {-1,+1}, theta int64 (fan_out,)), ...] of a folded network, checked
    (shapes, +-1 weights, integer thresholds, consecutive fan-ins), or a ValueError naming the layer."""
    layers = getattr(folded, "layers", None)
    if layers is None or len(layers) == 0:
        raise ValueError("folded network has no array layers (expected folded.layers: a non-empty list of "
                         "FoldedLayer(weight, theta))")
    out = []
    for i, L in enumerate(layers):
        w = torch.as_tensor(L.weight)
        t = torch.as_tensor(L.theta)
        if w.dim() != 2:
            raise ValueError(f"layer {i}: weight shape={tuple(w.shape)} must be (fan_in, fan_out)")
        if t.shape != (w.shape[1],):
            raise ValueError(f"layer {i}: theta shape={tuple(t.shape)} must be ({w.shape[1]},)")
        if w.numel() and not bool(((w == 1) | (w == -1)).all()):
            raise ValueError(f"layer {i}: weights must all be +-1")
        if t.dtype.is_floating_point and not bool((t == torch.round(t)).all()):
            raise ValueError(f"layer {i}: thresholds must be integers (folded theta int64)")
        out.append((w.to(torch.int64), t.to(torch.int64)))
    for i in range(1, len(out)):
        if out[i][0].shape[0] != out[i - 1][0].shape[1]:
            raise ValueError(f"layer {i}: fan_in={out[i][0].shape[0]} does not equal layer {i - 1}'s "
                             f"fan_out={out[i - 1][0].shape[1]}")
    return out
