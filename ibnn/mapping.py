"""Map the folded BNN onto the one 128 x 128 array, weights stationary, and run it on simulated chips.

Decisions (notebook 04 explains and draws them):

Placement
    Every on-array layer of the `FoldedBNN` sits on the array at the same time; nothing is rewritten between
    inferences. Each layer is one classify cycle: its rows are driven, its columns read.
    * Columns: each column is one neuron, so the layers get disjoint column blocks, left to right in layer order
      (layer 0 in columns 0..n0-1, layer 1 next, ...). Columns left over are unused.
    * Rows: layers run in different cycles, so rows are shared: every layer's data rows start at row 0
      (layer 0: pixel i on row i; layer l > 0: hidden neuron i of layer l-1 on row i). Bias rows of every layer
      sit at the top of the array, rows 127, 126, ... (fine rows first, then coarse; shared the same way).
    * In a layer's cycle every row that is not one of its data or bias rows is driven with code 0 (word line
      off), so the cells of that layer's columns in those rows (which hold other layers' weights or the
      filler below) do not discharge the bit-lines.
    * Cells that belong to no layer (in a layer's columns, rows it does not use; unused columns) hold a
      checkerboard +1/-1 ((row + col) even -> +1): defined, balanced, and never driven while their column is read.

Thresholds
    A column decides +1 iff (dot product of its driven rows) >= theta_ref (the comparator reference in LSB units,
    `Chip.evaluate(theta=...)`). The layer's threshold T'_j (in the mapped, unsigned-input domain, below) is placed
    halfway between two reachable dot-product levels (layer 0: T - 1/2, the dot products being integers; hidden
    layers: c_h k* - c_h / 2) - the same function with the largest margin - and realised in two parts:
    * bias rows, driven in the layer's cycle with fixed codes, whose +-1 cells per column sum to B_j ~ -T'_j:
      K coarse rows at full scale (31) give c_b (2 m - K) (m cells at +1), and bits + 1 fine rows with codes
      16, 8, 4, 2, 1, 1 give any even number in [-32, 32]. Together they reach every even number in
      [-(31 K + 32), 31 K + 32] (and odd ones with the other parity of K). Bias rows discharge the bit-lines like
      data rows, so they compress and mismatch with the physics: with the whole threshold in the bias rows the
      comparator compares V_BL - V_BLB with ~0, and since both lines follow the same monotone discharge law,
      compression does not move the decision.
    * comparator reference trim: the residual theta_ref_j = T'_j + B_j, +-0.5 LSB (+-1.5 where the parity of K
      forbids 0.5); +-theta_max (default 31 LSB) is the trim range. Per-chip calibration (ibnn.hwaware) moves
      only this trim.
    K is the smallest count that brings every residual to the fine resolution (`bias_rows="auto"`), or given.
    A neuron whose folded threshold lies beyond the range its inputs can reach is constant; it is realised with
    margin (all its data and bias cells +1, or -1, reference -+0.5) instead of at the edge of its range.
    If a threshold is still out of reach (not enough free rows for the bias it needs) `on_unreachable="error"`
    raises a ValueError saying how many rows are missing; "clip" realises the nearest reachable threshold and
    counts the columns that changed (`LayerMap.n_clipped`). `fine_bias=False, bias_rows=0, theta_max=inf` is
    the theta-only mapping (the whole threshold in the comparator reference), for comparison.

Hidden activations
    +-1 outputs of layer l-1 drive layer l's word lines as unsigned codes x' = (a + 1) / 2 * c_h (+1 -> code c_h,
    -1 -> code 0 = word line off). Then w.a >= T <=> w.x' >= c_h ceil((T + sum w) / 2): the threshold is
    corrected by the column's weight sum. The dot product of a hidden layer only takes multiples of c_h, so the
    threshold is placed halfway between two levels, T' = c_h k* - c_h / 2: the same function with the largest
    margin (c_h / 2 LSB). The code c_h trades that margin against bit-line headroom: a hidden layer drives many
    rows at once (about half its inputs are +1), and at full scale (31) a line of a 64- to 128-input layer would
    discharge by 1000+ LSB, far past the 0-V floor, where V_BL - V_BLB no longer carries the sign.
    `hidden_code="auto"` (default) takes the largest code whose typical line load (half of the column's larger
    weight group driven) stays within `line_budget_lsb` (default: half the supply, VDD / 2 / volts_per_lsb).

Readout
    The last on-array layer's +-1 outputs are read out digitally by `folded.readout.predict` (vote columns with a
    popcount per class and an argmax, or a small digital last layer); `ArrayMapping.readout_logic` describes it.

Running
    `ArrayMapping.run(chip, codes)` runs each layer as one `Chip.evaluate` call over every chip and image
    (batched over images to bound memory) and returns labels (n_chips, B); per-layer activations and differential
    bit-line voltages on request. `ArrayMapping.reference(codes)` is the pure-integer evaluation of the same
    array image (sign(codes @ W - theta_ref) per cycle), which an ideal chip must equal exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .validate import check_choice, check_int, check_real

ROWS = 128
COLS = 128


# ------------------------------------------------------------------------------------------------------------
# data structures
# ------------------------------------------------------------------------------------------------------------
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
        return {"rows": self.rows, "cols": self.cols, "bits": self.bits, "n_features": self.n_features,
                "theta_max_lsb": self.theta_max, "layers": [L.summary() for L in self.layers],
                "utilisation": self.utilisation(), "readout": self.readout_logic}

    # --- compatibility --------------------------------------------------------------------------------------
    def check_compatible(self, folded) -> None:
        """ValueError naming the first field where `folded` (e.g. a loaded checkpoint) differs from this
        mapping: number of layers, layer shapes, weights, thresholds, feature settings."""
        layers = _folded_layers(folded)
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
        codes = torch.as_tensor(codes)
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes dtype={codes.dtype} must be an integer tensor of {self.bits}-bit codes")
        if codes.dim() not in (2, 3) or codes.shape[-1] != self.n_features:
            raise ValueError(f"codes shape={tuple(codes.shape)} must be (B, {self.n_features}) or "
                             f"(n_chips, B, {self.n_features}): the mapping takes {self.n_features} features")
        if codes.numel():
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi > 2 ** self.bits - 1:
                raise ValueError(f"codes range=[{lo}, {hi}] is out of range; accepted: [0, {2 ** self.bits - 1}]")
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

    # --- pure-integer reference -----------------------------------------------------------------------------
    def reference(self, codes, return_layers: bool = False):
        """What an ideal array computes: per cycle +1 iff (row codes @ W)[col] >= theta_ref, exactly (int64).

        codes (B, n_features). Returns labels (B,) (and the per-layer +-1 activations)."""
        codes = self.check_codes(codes)
        if codes.dim() != 2:
            raise ValueError(f"codes shape={tuple(codes.shape)}: reference takes (B, {self.n_features})")
        W = self.weights.to(torch.int64)
        a = codes
        acts = []
        for L in self.layers:
            wl = self.layer_codes(L.index, a).to(torch.int64)
            dot = wl @ W[:, L.cols]
            # theta_ref is integer or half-integer-free by construction: compare exactly in 2x units
            a = torch.where(2 * dot >= torch.round(2 * L.theta_ref).to(torch.int64), 1, -1).to(torch.int8)
            acts.append(a)
        labels = _predict(self.readout, acts[-1])
        return (labels, acts) if return_layers else labels

    # --- run on simulated chips -----------------------------------------------------------------------------
    def program(self, chip) -> None:
        """Write the weight image into every chip (weights stationary: once, before any inference)."""
        chip.program(self.weights.to(torch.int8))

    def run(self, chip, codes, return_layers: bool = False, return_dv: bool = False, theta=None,
            noise_seed: int | None = None, batch: int | None = None, program: bool = True):
        """Run the mapped network on every chip of `chip` for every input.

        codes: (B, n_features) (the same images on every chip) or (n_chips, B, n_features), ints 0..2**bits-1.
        theta: comparator references (cols,) or (n_chips, cols) in LSB (default: the mapping's `theta`;
            per-chip calibration passes its trimmed references).
        noise_seed: base seed of the temporal noise; each cycle and image batch gets its own derived seed.
        batch: images per `Chip.evaluate` call (default: about 2**22 / n_chips, bounded memory).
        Returns labels int64 (n_chips, B); with return_layers also the list of per-layer +-1 activations
        int8 (n_chips, B, fan_out); with return_dv also the list of per-layer differential bit-line voltages
        float32 (n_chips, B, fan_out) in volts: (labels, acts) or (labels, acts, dvs).
        """
        codes = self.check_codes(codes)
        n_chips = int(getattr(chip, "n_chips", 1))
        if n_chips <= 0:
            raise ValueError(f"n_chips={n_chips} is out of range; accepted: integer in [1, inf)")
        if codes.dim() == 3 and codes.shape[0] != n_chips:
            raise ValueError(f"codes shape={tuple(codes.shape)}: leading dimension must be n_chips={n_chips}")
        theta = self._theta_for(theta, n_chips)
        if program:
            self.program(chip)
        B = codes.shape[-2]
        if batch is None:   # word-line codes, decisions (and dV) of one batch stay within a few 100 MB
            batch = max(256, (1 << 21) // max(n_chips, 1) // (4 if return_dv else 1))
        batch = check_int("batch", batch, 1)
        device = getattr(chip, "device", None)
        labels = torch.empty(n_chips, B, dtype=torch.int64)
        acts_all = [torch.empty(n_chips, B, L.fan_out, dtype=torch.int8) for L in self.layers] \
            if (return_layers or return_dv) else None
        dvs_all = [torch.empty(n_chips, B, L.fan_out, dtype=torch.float32) for L in self.layers] \
            if return_dv else None
        for bi, start in enumerate(range(0, B, batch)):
            stop = min(B, start + batch)
            a = codes[..., start:stop, :]
            if device is not None:
                a = a.to(device)
            for L in self.layers:
                wl = self.layer_codes(L.index, a)
                seed = None if noise_seed is None else _derive_seed(noise_seed, L.index, bi)
                out = chip.evaluate(wl, theta=theta, return_dv=return_dv, noise_seed=seed)
                dec, dv = (out if return_dv else (out, None))
                a = dec[..., L.cols.to(dec.device)]
                if a.dim() == 2:  # a single chip given (B, cols) back: make it (1, B, cols)
                    a = a[None]
                if acts_all is not None:
                    acts_all[L.index][:, start:stop] = a.to("cpu", torch.int8)
                if dvs_all is not None:
                    dvs_all[L.index][:, start:stop] = dv[..., L.cols.to(dv.device)].reshape(a.shape).to(
                        "cpu", torch.float32)
            nb = a.shape[-2]
            flat = a.reshape(-1, a.shape[-1]).to("cpu")
            labels[:, start:stop] = _predict(self.readout, flat).reshape(n_chips, nb)
        if return_dv:
            return labels, acts_all, dvs_all
        if return_layers:
            return labels, acts_all
        return labels

    def _theta_for(self, theta, n_chips: int) -> torch.Tensor:
        if theta is None:
            return self.theta
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.shape not in ((self.cols,), (n_chips, self.cols)):
            raise ValueError(f"theta shape={tuple(theta.shape)} must be ({self.cols},) or ({n_chips}, {self.cols})")
        if not torch.isfinite(theta).all():
            raise ValueError("theta must be finite")
        return theta


def _derive_seed(base: int, layer: int, batch_index: int) -> int:
    return (int(base) * 1_000_003 + 7919 * (layer + 1) + 104_729 * batch_index) % (2 ** 62)


def _predict(readout, a: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(readout.predict(a)).to(torch.int64).reshape(-1)


# ------------------------------------------------------------------------------------------------------------
# mapping
# ------------------------------------------------------------------------------------------------------------
def _folded_layers(folded) -> list[tuple[torch.Tensor, torch.Tensor]]:
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


def fine_codes(bits: int) -> list[int]:
    """Codes of the fine bias rows: 2**(bits-1), ..., 2, 1, 1. With +-1 cells their signed sum 2 P - 2**bits
    reaches every even number in [-2**bits, 2**bits] (P any integer in 0..2**bits)."""
    return [2 ** k for k in range(bits - 1, -1, -1)] + [1]


def _bias_split(T: torch.Tensor, K: int, c_b: int, fine: Sequence[int]):
    """Bias realisation nearest to -T with K coarse rows at code c_b and fine rows `fine`.

    Returns (m, P, B, residual): m (fan_out,) coarse rows at +1 (the other K - m at -1), P the fine positive sum,
    B = c_b (2 m - K) + 2 P - sum(fine) the signed bias sum, residual = T + B (what the comparator must add)."""
    T = T.to(torch.float64)
    fs = int(sum(fine))
    m = torch.arange(K + 1, dtype=torch.int64)[:, None]                     # (K+1, 1)
    coarse = c_b * (2 * m - K)                                              # (K+1, 1)
    e_t = -T[None, :] - coarse                                              # fine target
    if fs:
        P = torch.round((e_t + fs) / 2).clamp(0, fs).to(torch.int64)
    else:
        P = torch.zeros_like(e_t, dtype=torch.int64)
    B = coarse + 2 * P - fs
    res = T[None, :] + B.to(torch.float64)
    best = res.abs().argmin(0)                                              # first (fewest +1 rows) on ties
    pick = lambda x: torch.gather(x.expand(K + 1, T.numel()), 0, best[None])[0]
    return pick(m.expand(K + 1, T.numel())), pick(P), pick(B), pick(res)


def _fine_pattern(P: torch.Tensor, fine: Sequence[int]) -> torch.Tensor:
    """(F, fan_out) +-1: greedy subset of `fine` (descending, exact for 2**k,...,1,1) summing to P at +1."""
    rem = P.clone()
    out = []
    for c in fine:
        take = rem >= c
        rem = torch.where(take, rem - c, rem)
        out.append(torch.where(take, 1, -1))
    assert bool((rem == 0).all())
    return torch.stack(out).to(torch.int8)


def map_network(folded, rows: int = ROWS, cols: int = COLS, bits: int | None = None,
                bias_rows: int | str | Sequence[int] = "auto", fine_bias: bool = True,
                theta_max: float | None = None, hidden_code: int | str | None = "auto",
                line_budget_lsb: float | None = None, on_unreachable: str = "error",
                expect: dict | None = None) -> ArrayMapping:
    """Place every array layer of `folded` on one rows x cols array (see the module docstring).

    bits: input code width (default folded.meta["bits"], else 5). bias_rows: the number K of coarse bias rows
    (full-scale code): "auto" (fewest that bring every comparator residual to the fine resolution, 0.5 LSB, or
    failing that within +-theta_max), one int for every layer, or one per layer. fine_bias: add bits + 1 fine
    bias rows (codes 16, 8, 4, 2, 1, 1) so that the bias reaches every even number and the comparator is left
    with +-0.5 LSB (1.5 where parity forbids 0.5). theta_max: the comparator reference trim range in LSB (default:
    one full-scale row, 2**bits - 1). hidden_code: the code that a +1 hidden activation drives: an int, None
    (full scale) or "auto" (default: the largest code whose typical line load stays within line_budget_lsb, LSB;
    default VDD / 2 / volts_per_lsb_nominal of the parameter set). expect: meta fields the network must carry (e.g. {"size": 9, "bits": 5}); a mismatch is a ValueError
    naming the field, before any work.
    """
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    on_unreachable = check_choice("on_unreachable", on_unreachable, ("error", "clip"))
    if not isinstance(fine_bias, bool):
        raise ValueError(f"fine_bias={fine_bias!r} must be a bool (True or False)")
    meta = dict(getattr(folded, "meta", None) or {})
    if expect:
        for key, want in expect.items():
            if key not in meta:
                raise ValueError(f"checkpoint meta lacks {key!r} (expected {key}={want!r})")
            if meta[key] != want:
                raise ValueError(f"checkpoint meta {key}={meta[key]!r} does not match the expected {key}={want!r}")
    if bits is None:
        bits = int(meta.get("bits", 5))
    bits = check_int("bits", bits, 1, 16)
    if "bits" in meta and int(meta["bits"]) != bits:
        raise ValueError(f"bits={bits} does not match the network's feature setting bits={meta['bits']}")
    full = 2 ** bits - 1
    theta_max = float(full) if theta_max is None else check_real("theta_max", theta_max, 0.0)
    if isinstance(hidden_code, str):
        check_choice("hidden_code", hidden_code, ("auto",))
        if line_budget_lsb is None:
            from . import params as _params
            P = _params.load()
            line_budget_lsb = 0.5 * P["vdd"] / P["volts_per_lsb_nominal"]
        line_budget_lsb = check_real("line_budget_lsb", line_budget_lsb, 0.0, lo_open=True)
        c_h = None
    else:
        c_h = full if hidden_code is None else check_int("hidden_code", hidden_code, 1, full)
    layers = _folded_layers(folded)
    if "size" in meta:
        nf = int(meta["size"]) ** 2
        if layers[0][0].shape[0] != nf:
            raise ValueError(f"layer 0: fan_in={layers[0][0].shape[0]} does not match the features "
                             f"(size={meta['size']} -> {nf} inputs)")
    n = len(layers)
    if isinstance(bias_rows, str):
        check_choice("bias_rows", bias_rows, ("auto",))
        k_req = [None] * n
    elif isinstance(bias_rows, (int,)) and not isinstance(bias_rows, bool):
        k_req = [check_int("bias_rows", bias_rows, 0, rows)] * n
    else:
        k_req = [check_int(f"bias_rows[{i}]", k, 0, rows) for i, k in enumerate(bias_rows)]
        if len(k_req) != n:
            raise ValueError(f"bias_rows has {len(k_req)} entries; the network has {n} array layers")

    # --- fit check: columns are disjoint, rows are shared --------------------------------------------------
    need_cols = sum(w.shape[1] for w, _ in layers)
    problems = []
    if need_cols > cols:
        problems.append(f"{need_cols} columns needed (one per neuron, layers disjoint) but the array has {cols}: "
                        f"{need_cols - cols} columns over")
    for i, (w, _) in enumerate(layers):
        if w.shape[0] > rows:
            problems.append(f"layer {i} needs {w.shape[0]} data rows but the array has {rows}: "
                            f"{w.shape[0] - rows} rows over")
        if k_req[i] is not None and w.shape[0] + k_req[i] > rows:
            problems.append(f"layer {i} needs {w.shape[0]} data + {k_req[i]} bias rows but the array has "
                            f"{rows}: {w.shape[0] + k_req[i] - rows} rows over")
    if problems:
        raise ValueError("network does not fit the array: " + "; ".join(problems))

    weights = _checkerboard(rows, cols)
    maps: list[LayerMap] = []
    col0 = 0
    resolution = 1.5 + 1e-9          # what fine rows leave: 0.5 LSB, 1.5 where the parity forbids 0.5
    for i, (w, t) in enumerate(layers):
        fan_in, fan_out = w.shape
        n_plus = (w > 0).sum(0)
        n_minus = (w < 0).sum(0)
        if i == 0:
            kind, code = "codes", None
            lo_dot, hi_dot = -full * n_minus, full * n_plus
            const = torch.where(t <= lo_dot, 1, torch.where(t > hi_dot, -1, 0))
            # integer dot products: x.w >= T <=> x.w >= T - 1/2, halfway between two reachable levels
            T_map = t.clamp(lo_dot, hi_dot + 1).to(torch.float64) - 0.5
        else:
            if c_h is None:    # auto: typical line load = c_h * (larger weight group) / 2 within the budget
                group = float(torch.maximum(n_plus, n_minus).max())
                code = int(min(full, max(1, math.floor(line_budget_lsb / max(group / 2.0, 1.0)))))
            else:
                code = c_h
            kind = "binary"
            S = w.sum(0)
            k_star = torch.div(t + S + 1, 2, rounding_mode="floor")   # ceil((t + S) / 2)
            const = torch.where(k_star <= -n_minus, 1, torch.where(k_star > n_plus, -1, 0))
            k_star = k_star.clamp(-n_minus, n_plus + 1)
            # dot products are multiples of c_h: threshold halfway between levels k* - 1 and k*
            T_map = code * k_star.to(torch.float64) - code / 2.0
        # A neuron that is constant over every reachable input (folded threshold beyond its dot-product range) is
        # realised robustly instead: all data and bias cells +1 (-1) and a reference of -0.5 (+0.5): the sum is then
        # >= 0 (<= 0) for every input. Its stored weights are irrelevant to the function.
        const = const.to(torch.int64)
        n_sat = int((const != 0).sum())
        live = const == 0
        T_map = torch.where(live, T_map, torch.zeros_like(T_map))
        fine = fine_codes(bits) if (fine_bias and fan_in + bits + 1 <= rows) else []
        free = rows - fan_in - len(fine)
        if k_req[i] is None:
            K = None
            for k in range(0, free + 1):
                _, _, _, res = _bias_split(T_map, k, full, fine)
                if fan_out == 0 or float(res.abs().max()) <= max(resolution if fine else full, 0.0):
                    K = k
                    break
            if K is None:
                K = free
        else:
            K = k_req[i]
            if fan_in + len(fine) + K > rows:
                raise ValueError(f"layer {i} needs {fan_in} data + {len(fine)} fine + {K} coarse bias rows but the "
                                 f"array has {rows}: {fan_in + len(fine) + K - rows} rows over")
        m, P, B, res = _bias_split(T_map, K, full, fine)
        if n_sat:   # constant neurons: every bias cell +1 (-1)
            m = torch.where(const > 0, K, torch.where(const < 0, 0, m))
            P = torch.where(const > 0, int(sum(fine)), torch.where(const < 0, 0, P))
            B = torch.where(const != 0, const * (K * full + int(sum(fine))), B)
            res = torch.where(const != 0, -0.5 * const.to(torch.float64), res)
        clipped = res.abs() > theta_max + 1e-9
        n_clip = int(clipped.sum())
        if n_clip and on_unreachable == "error":
            worst = float(res.abs().max())
            need = math.ceil((float(T_map.abs().max()) - sum(fine) - theta_max) / full)
            raise ValueError(
                f"layer {i}: {n_clip} thresholds out of reach: |T'| up to {float(T_map.abs().max()):.1f} LSB needs "
                f"about {need} coarse bias rows at code {full} (with {len(fine)} fine rows and a +-{theta_max:g} "
                f"LSB comparator trim) but {K} are used and {free} rows are free "
                f"({max(need - free, 0)} rows over; residual up to {worst:.1f} LSB); use more bias rows or "
                f"on_unreachable='clip'")
        theta_ref = res.clamp(-theta_max, theta_max)
        T_real = theta_ref - B.to(torch.float64)
        data_rows = torch.arange(fan_in, dtype=torch.int64)
        nb = len(fine) + K
        b_rows = torch.arange(rows - 1, rows - 1 - nb, -1, dtype=torch.int64)   # fine rows first (top)
        b_codes = torch.tensor(list(fine) + [full] * K, dtype=torch.int64)
        c = torch.arange(col0, col0 + fan_out, dtype=torch.int64)
        col0 += fan_out
        w_store = torch.where(const[None, :] != 0, const[None, :].expand_as(w), w)
        weights[data_rows[:, None], c[None, :]] = w_store.to(torch.int8)
        pats = []
        if fine:
            pats.append(_fine_pattern(P, fine))
        if K:
            kk = torch.arange(K)[:, None]
            pats.append(torch.where(kk < m[None, :], 1, -1).to(torch.int8))
        if pats:
            weights[b_rows[:, None], c[None, :]] = torch.cat(pats)
        maps.append(LayerMap(index=i, fan_in=fan_in, fan_out=fan_out, data_rows=data_rows, bias_rows=b_rows,
                             cols=c, input_kind=kind, input_code=code, bias_codes=b_codes, n_coarse=K,
                             threshold_sw=t.clone(), threshold=T_real, bias_sum=B, theta_ref=theta_ref,
                             n_clipped=n_clip, n_saturated=n_sat, constant=const.to(torch.int8)))
    meta_out = {k: meta[k] for k in ("size", "bits", "topology", "readout_kind", "n_classes", "seed") if k in meta}
    if "readout_kind" not in meta_out:
        rk = meta.get("readout") or getattr(getattr(folded, "readout", None), "kind", None)
        if rk is not None:
            meta_out["readout_kind"] = str(rk)
    meta_out.setdefault("bits", bits)
    return ArrayMapping(weights=weights, layers=maps, readout=folded.readout, bits=bits,
                        n_features=int(layers[0][0].shape[0]), theta_max=theta_max, meta=meta_out)


def _checkerboard(rows: int, cols: int) -> torch.Tensor:
    r = torch.arange(rows)[:, None]
    c = torch.arange(cols)[None, :]
    return torch.where((r + c) % 2 == 0, 1, -1).to(torch.int8)
