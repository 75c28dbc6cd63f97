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
    (batched over images to bound memory) and returns a `RunResult` (labels (n_chips, B); per-layer activations and
    differential bit-line voltages on request; `ibnn.mapping.execute`). `ArrayMapping.reference(codes)` is the
    pure-integer evaluation of the same array image (sign(codes @ W - theta_ref) per cycle), which an ideal chip
    must equal exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .. import params as _params
from ..validate import check_choice, check_int, check_real
from .bias import bias_split, fine_codes, fine_pattern
from .layout import ArrayMapping, LayerMap, folded_layers

RESOLUTION = 1.5 + 1e-9          # what fine rows leave: 0.5 LSB, 1.5 where the parity forbids 0.5


@dataclass(frozen=True)
class MapOptions:
    """The validated options of `map_network` (see its docstring) and the array they map onto."""
    rows: int
    cols: int
    bits: int
    theta_max: float
    hidden_code: int | None          # None: "auto" (the largest code within line_budget_lsb)
    line_budget_lsb: float
    fine_bias: bool
    k_req: list                      # requested coarse bias rows per layer (None: auto)
    on_unreachable: str

    @property
    def full(self) -> int:
        return 2 ** self.bits - 1


def map_network(folded, P: _params.ParamSet, *, bias_rows: int | str | Sequence[int] = "auto",
                fine_bias: bool = True, theta_max: float | None = None, hidden_code: int | str | None = "auto",
                line_budget_lsb: float | None = None, on_unreachable: str = "error",
                expect: dict | None = None) -> ArrayMapping:
    """Place every array layer of `folded` on the array of parameter set P (see the module docstring).

    Args:
        folded: a FoldedBNN (layers of FoldedLayer(weight, theta), a readout, meta).
        P: the parameter set: array_rows x array_cols, input_bits (must equal the network's meta["bits"]) and,
            for the default line budget, vdd and volts_per_lsb_nominal.
        bias_rows: the number K of coarse bias rows (full-scale code): "auto" (fewest that bring every
            comparator residual to the fine resolution, 0.5 LSB, or failing that within +-theta_max), one int for
            every layer, or one per layer.
        fine_bias: add bits + 1 fine bias rows (codes 16, 8, 4, 2, 1, 1) so that the bias reaches every even
            number and the comparator is left with +-0.5 LSB (1.5 where parity forbids 0.5).
        theta_max: the comparator reference trim range in LSB (default: one full-scale row, 2**bits - 1).
        hidden_code: the code a +1 hidden activation drives: an int, None (full scale) or "auto" (default: the
            largest code whose typical line load stays within line_budget_lsb; default VDD / 2 /
            volts_per_lsb_nominal).
        on_unreachable: "error" (ValueError saying how many rows are missing) or "clip" (counted per layer).
        expect: meta fields the network must carry (e.g. {"size": 9, "bits": 5}); a mismatch is a ValueError
            naming the field, before any work.
    Returns:
        ArrayMapping.
    """
    meta = _check_meta(folded, expect)
    opt = _options(P, meta, bias_rows, fine_bias, theta_max, hidden_code, line_budget_lsb, on_unreachable)
    layers = folded_layers(folded)
    _check_features(layers, meta)
    opt = _fit_check(layers, opt)
    weights = _checkerboard(opt.rows, opt.cols)
    maps, col0 = [], 0
    for i, (w, t) in enumerate(layers):
        maps.append(_map_layer(i, w, t, col0, weights, opt))
        col0 += w.shape[1]
    return ArrayMapping(weights=weights, layers=maps, readout=folded.readout, bits=opt.bits,
                        n_features=int(layers[0][0].shape[0]), theta_max=opt.theta_max,
                        meta=_meta_out(folded, meta, opt.bits))


def _check_meta(folded, expect: dict | None) -> dict:
    meta = dict(getattr(folded, "meta", None) or {})
    for key, want in (expect or {}).items():
        if key not in meta:
            raise ValueError(f"checkpoint meta lacks {key!r} (expected {key}={want!r})")
        if meta[key] != want:
            raise ValueError(f"checkpoint meta {key}={meta[key]!r} does not match the expected {key}={want!r}")
    return meta


def _options(P, meta, bias_rows, fine_bias, theta_max, hidden_code, line_budget_lsb, on_unreachable) -> MapOptions:
    """Every option checked (name, value, accepted range) before any work."""
    if not isinstance(P, _params.ParamSet):
        raise ValueError(f"P={P!r} must be an ibnn.params.ParamSet (ibnn.params.load())")
    rows, cols = check_int("array_rows", P.int("array_rows"), 1), check_int("array_cols", P.int("array_cols"), 1)
    bits = check_int("input_bits", P.int("input_bits"), 1, 16)
    if "bits" in meta and int(meta["bits"]) != bits:
        raise ValueError(f"input_bits={bits} of the parameter set does not match the network's feature setting "
                         f"bits={meta['bits']}")
    on_unreachable = check_choice("on_unreachable", on_unreachable, ("error", "clip"))
    if not isinstance(fine_bias, bool):
        raise ValueError(f"fine_bias={fine_bias!r} must be a bool (True or False)")
    full = 2 ** bits - 1
    theta_max = float(full) if theta_max is None else check_real("theta_max", theta_max, 0.0)
    if isinstance(hidden_code, str):
        check_choice("hidden_code", hidden_code, ("auto",))
        c_h = None
    else:
        c_h = full if hidden_code is None else check_int("hidden_code", hidden_code, 1, full)
    if line_budget_lsb is None:
        line_budget_lsb = 0.5 * P["vdd"] / P["volts_per_lsb_nominal"]
    line_budget_lsb = check_real("line_budget_lsb", line_budget_lsb, 0.0, lo_open=True)
    return MapOptions(rows, cols, bits, theta_max, c_h, line_budget_lsb, fine_bias, _bias_request(bias_rows, rows),
                      on_unreachable)


def _bias_request(bias_rows, rows: int):
    """Requested coarse bias rows: a list of per-layer ints, a single int, or "auto" (None; length fixed later)."""
    if isinstance(bias_rows, str):
        check_choice("bias_rows", bias_rows, ("auto",))
        return None
    if isinstance(bias_rows, int) and not isinstance(bias_rows, bool):
        return check_int("bias_rows", bias_rows, 0, rows)
    return [check_int(f"bias_rows[{i}]", k, 0, rows) for i, k in enumerate(bias_rows)]


def _check_features(layers, meta) -> None:
    if "size" in meta:
        nf = int(meta["size"]) ** 2
        if layers[0][0].shape[0] != nf:
            raise ValueError(f"layer 0: fan_in={layers[0][0].shape[0]} does not match the features "
                             f"(size={meta['size']} -> {nf} inputs)")


def _fit_check(layers, opt: MapOptions) -> MapOptions:
    """Columns are disjoint, rows are shared: a ValueError saying by how much a network does not fit."""
    n, k = len(layers), opt.k_req
    k_req = [None] * n if k is None else ([k] * n if isinstance(k, int) else list(k))
    if len(k_req) != n:
        raise ValueError(f"bias_rows has {len(k_req)} entries; the network has {n} array layers")
    need_cols = sum(w.shape[1] for w, _ in layers)
    problems = []
    if need_cols > opt.cols:
        problems.append(f"{need_cols} columns needed (one per neuron, layers disjoint) but the array has "
                        f"{opt.cols}: {need_cols - opt.cols} columns over")
    for i, (w, _) in enumerate(layers):
        if w.shape[0] > opt.rows:
            problems.append(f"layer {i} needs {w.shape[0]} data rows but the array has {opt.rows}: "
                            f"{w.shape[0] - opt.rows} rows over")
        if k_req[i] is not None and w.shape[0] + k_req[i] > opt.rows:
            problems.append(f"layer {i} needs {w.shape[0]} data + {k_req[i]} bias rows but the array has "
                            f"{opt.rows}: {w.shape[0] + k_req[i] - opt.rows} rows over")
    if problems:
        raise ValueError("network does not fit the array: " + "; ".join(problems))
    return MapOptions(**{**opt.__dict__, "k_req": k_req})


def _mapped_threshold(i: int, w: torch.Tensor, t: torch.Tensor, opt: MapOptions):
    """(T' (fan_out,) float64 in the mapped domain, constant (fan_out,) int64 in {+1, 0, -1}, input kind, code).

    Layer 0 (integer dot products of codes): T' = T - 1/2, halfway between two reachable levels. Hidden layers
    (+-1 inputs driven as 0 / c_h): w.a >= T <=> w.x' >= c_h ceil((T + sum w) / 2); T' = c_h k* - c_h / 2. A neuron
    whose threshold lies beyond every reachable dot product is constant (+1 or -1); its T' is set to 0."""
    full = opt.full
    n_plus, n_minus = (w > 0).sum(0), (w < 0).sum(0)
    if i == 0:
        kind, code = "codes", None
        lo_dot, hi_dot = -full * n_minus, full * n_plus
        const = torch.where(t <= lo_dot, 1, torch.where(t > hi_dot, -1, 0))
        T_map = t.clamp(lo_dot, hi_dot + 1).to(torch.float64) - 0.5
    else:
        kind, code = "binary", opt.hidden_code
        if code is None:    # auto: typical line load = c_h * (larger weight group) / 2 within the budget
            group = float(torch.maximum(n_plus, n_minus).max())
            code = int(min(full, max(1, math.floor(opt.line_budget_lsb / max(group / 2.0, 1.0)))))
        k_star = torch.div(t + w.sum(0) + 1, 2, rounding_mode="floor")   # ceil((t + S) / 2)
        const = torch.where(k_star <= -n_minus, 1, torch.where(k_star > n_plus, -1, 0))
        T_map = code * k_star.clamp(-n_minus, n_plus + 1).to(torch.float64) - code / 2.0
    const = const.to(torch.int64)
    return torch.where(const == 0, T_map, torch.zeros_like(T_map)), const, kind, code


def _coarse_rows(i: int, T_map, fan_in: int, fan_out: int, fine: list, opt: MapOptions) -> int:
    """K coarse bias rows: as requested, or the fewest that bring every residual to the fine resolution."""
    free = opt.rows - fan_in - len(fine)
    if opt.k_req[i] is not None:
        K = opt.k_req[i]
        if fan_in + len(fine) + K > opt.rows:
            raise ValueError(f"layer {i} needs {fan_in} data + {len(fine)} fine + {K} coarse bias rows but the "
                             f"array has {opt.rows}: {fan_in + len(fine) + K - opt.rows} rows over")
        return K
    for k in range(0, free + 1):
        res = bias_split(T_map, k, opt.full, fine)[3]
        if fan_out == 0 or float(res.abs().max()) <= max(RESOLUTION if fine else opt.full, 0.0):
            return k
    return free


def _realise_bias(i, T_map, const, K, fine, free, opt: MapOptions):
    """(m, P, B, theta_ref, n_clipped): the bias split nearest to -T', constant neurons realised with margin (all
    bias cells +1 or -1, reference -+0.5), the residual clamped to the trim range (or a ValueError)."""
    m, P, B, res = bias_split(T_map, K, opt.full, fine)
    if bool((const != 0).any()):
        m = torch.where(const > 0, K, torch.where(const < 0, 0, m))
        P = torch.where(const > 0, int(sum(fine)), torch.where(const < 0, 0, P))
        B = torch.where(const != 0, const * (K * opt.full + int(sum(fine))), B)
        res = torch.where(const != 0, -0.5 * const.to(torch.float64), res)
    n_clip = int((res.abs() > opt.theta_max + 1e-9).sum())
    if n_clip and opt.on_unreachable == "error":
        need = math.ceil((float(T_map.abs().max()) - sum(fine) - opt.theta_max) / opt.full)
        raise ValueError(
            f"layer {i}: {n_clip} thresholds out of reach: |T'| up to {float(T_map.abs().max()):.1f} LSB needs "
            f"about {need} coarse bias rows at code {opt.full} (with {len(fine)} fine rows and a "
            f"+-{opt.theta_max:g} LSB comparator trim) but {K} are used and {free} rows are free "
            f"({max(need - free, 0)} rows over; residual up to {float(res.abs().max()):.1f} LSB); use more bias "
            f"rows or on_unreachable='clip'")
    return m, P, B, res.clamp(-opt.theta_max, opt.theta_max), n_clip


def _map_layer(i: int, w, t, col0: int, weights: torch.Tensor, opt: MapOptions) -> LayerMap:
    """Place layer i in columns col0.. (writing its cells into `weights`) and realise its thresholds."""
    fan_in, fan_out = w.shape
    T_map, const, kind, code = _mapped_threshold(i, w, t, opt)
    fine = fine_codes(opt.bits) if (opt.fine_bias and fan_in + opt.bits + 1 <= opt.rows) else []
    K = _coarse_rows(i, T_map, fan_in, fan_out, fine, opt)
    m, P, B, theta_ref, n_clip = _realise_bias(i, T_map, const, K, fine, opt.rows - fan_in - len(fine), opt)
    data_rows = torch.arange(fan_in, dtype=torch.int64)
    b_rows = torch.arange(opt.rows - 1, opt.rows - 1 - len(fine) - K, -1, dtype=torch.int64)   # fine rows on top
    c = torch.arange(col0, col0 + fan_out, dtype=torch.int64)
    # a constant neuron stores all +1 (or -1): its weights are irrelevant to its function
    weights[data_rows[:, None], c[None, :]] = torch.where(const[None, :] != 0, const[None, :].expand_as(w),
                                                          w).to(torch.int8)
    pats = [fine_pattern(P, fine)] if fine else []
    if K:
        pats.append(torch.where(torch.arange(K)[:, None] < m[None, :], 1, -1).to(torch.int8))
    if pats:
        weights[b_rows[:, None], c[None, :]] = torch.cat(pats)
    return LayerMap(index=i, fan_in=fan_in, fan_out=fan_out, data_rows=data_rows, bias_rows=b_rows, cols=c,
                    input_kind=kind, input_code=code,
                    bias_codes=torch.tensor(list(fine) + [opt.full] * K, dtype=torch.int64), n_coarse=K,
                    threshold_sw=t.clone(), threshold=theta_ref - B.to(torch.float64), bias_sum=B,
                    theta_ref=theta_ref, n_clipped=n_clip, n_saturated=int((const != 0).sum()),
                    constant=const.to(torch.int8))


def _meta_out(folded, meta: dict, bits: int) -> dict:
    out = {k: meta[k] for k in ("size", "bits", "topology", "readout_kind", "n_classes", "seed") if k in meta}
    if "readout_kind" not in out:
        rk = meta.get("readout") or getattr(getattr(folded, "readout", None), "kind", None)
        if rk is not None:
            out["readout_kind"] = str(rk)
    out.setdefault("bits", bits)
    return out


def _checkerboard(rows: int, cols: int) -> torch.Tensor:
    """Filler for cells no layer uses: (row + col) even -> +1, else -1 (defined and balanced)."""
    r = torch.arange(rows)[:, None]
    c = torch.arange(cols)[None, :]
    return torch.where((r + c) % 2 == 0, 1, -1).to(torch.int8)
