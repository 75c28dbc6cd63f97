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
from typing import Sequence

import torch

from .. import params as _params
from ..validate import check_choice, check_int, check_real
from .bias import _bias_split, _fine_pattern, fine_codes
from .layout import ArrayMapping, LayerMap, _folded_layers


ROWS = 128


COLS = 128


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
