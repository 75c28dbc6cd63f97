"""One classify cycle of a `Chip` (ibnn.circuit.chip): the exact integer path and the physical path.

The physical path, per group of chips and chunk of inputs: line sums of the factored tables (window charge
included; multiplied out once per group into a table per row, code and line, `factored.code_tables`, and summed
by look-up), the word-line kick (a second look-up sum with the coupling factors, scaled by each input's mean
first-pass line drop over all 2 x cols lines), the closed-form discharge, the comparator offset at each
decision's common mode, the temporal noise (comparator + kT/C + shot noise of both discharges), the decision.
A column subset (`sel`) is evaluated as part of the full array: the mean drop and the noise draws are those of
the full evaluation, so its decisions equal the full evaluation's in those columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..repro.device import torch_threads
from .column import decide, discharge
from .factored import chip_generator, code_tables, table_sums

CHUNK = 2048              # inputs per chunk (fixed, so noise streams do not depend on the chip grouping)
GROUP_BYTES = 64 << 20    # memory budget of one group of chips in one chunk


@dataclass
class ChipOutput:
    """What one evaluation returns. decisions: int8 (n_chips, B, cols), +1 iff V_BL - V_BLB (+ offset + noise) >=
    the reference; dv: V_BL - V_BLB (V), (n_chips, B, cols), when asked for (float64 on the ideal path, float32
    otherwise); drops: how far BL ([..., 0]) and BLB ([..., 1]) fell (V), (n_chips, B, cols, 2), when asked for
    (what the energy model needs). With Chip.evaluate(cols=...) the last column axis holds only those columns."""
    decisions: torch.Tensor
    dv: torch.Tensor | None = None
    drops: torch.Tensor | None = None


def _line_voltages(law, vdd: float, swing: torch.Tensor) -> torch.Tensor:
    """Final line voltages (V) for linear swings >= 0: `ibnn.circuit.column.discharge`, with one exponential per
    line instead of one per affine piece (the same expressions elementwise, so the same values; tested)."""
    fk = law.a1 + law.b1 * law.vk
    if fk <= 0 or abs(law.b1) * 10.0 < 1e-7 or abs(law.b2) * 10.0 < 1e-7:
        return discharge(swing, law)
    s_k = math.log((law.a1 + law.b1 * law.vdd) / fk) / law.b1
    low = swing <= s_k
    e = torch.exp(torch.where(low, -law.b1 * swing, -law.b2 * (swing - s_k)))
    v = torch.where(low, (law.vdd + law.a1 / law.b1) * e - law.a1 / law.b1,
                    (law.vk + law.a2 / law.b2) * e - law.a2 / law.b2)
    return torch.clamp(v, min=0.0)


def _discharge(chip, swing: torch.Tensor):
    """(V_BL - V_BLB, drop of BL, drop of BLB) from the linear swings (..., 2 cols) of the lines: the first cols
    are the BLBs (pulled by the +1 cells), the last cols the BLs (`factored.line_matrix`)."""
    C, law = swing.shape[-1] // 2, chip.drain_law
    if law.ideal:
        dv = swing[..., :C] - swing[..., C:]                                       # BLB drop - BL drop
        drop = torch.clamp(swing, 0.0, chip.vdd)
    else:
        v = _line_voltages(law, chip.vdd, torch.clamp(swing, min=0.0))
        dv = v[..., C:] - v[..., :C]                                               # V_BL - V_BLB
        drop = torch.clamp(chip.vdd - v, 0.0, chip.vdd)
    return dv, drop[..., C:], drop[..., :C]


def _swings(chip, tabs, x, shared, sel):
    """Linear swings (V) of the lines of the chip group, (G, Bc, 2 n) for the n selected columns (all if sel is
    None): the window charge is in the first table; with coupling, minus each input's mean first-pass drop over
    all lines times the coupling table's sums."""
    C = chip.cols
    # the look-ups are memory-bound like the elementwise steps, so they run with their threads (Chip.evaluate)
    full, kick = table_sums(tabs, x, shared)                                              # (G, Bc, 2C) LSB
    full = full * chip.volts_per_lsb
    if tabs[1] is not None:
        _, d_bl, d_blb = _discharge(chip, full)
        mean_drop = (d_bl.sum(-1, keepdim=True) + d_blb.sum(-1, keepdim=True)) / (2 * C)   # (G, Bc, 1)
        full = full - mean_drop * (kick * chip.volts_per_lsb)
    if sel is None:
        return full
    return torch.cat([full[..., sel], full[..., C + sel]], -1)


def _offsets(chip, c0, c1, dsum, sel):
    """Input-referred offset (V) of every decision: the static draw, plus the common-mode dependent part at
    V_CM = VDD - (drop_BL + drop_BLB) / 2."""
    dev = dsum.device
    pick = (lambda t: t) if sel is None else (lambda t: t[:, sel])
    off = pick(chip.offset[c0:c1].to(torch.float32).to(dev))[:, None, :]
    s = chip.nonideal.comparator_cm
    if s == 0 or chip.cm_offset is None:
        return off
    v_cm = chip.vdd - dsum / 2                                                            # (G, Bc, n)
    diff = pick((chip.offset_p - chip.offset_n)[c0:c1].to(torch.float32).to(dev))[:, None, :]
    return off + s * chip.cm_offset.weight(v_cm) * diff


def _noise(chip, gens, c0, c1, b, dsum, sel):
    """Temporal noise (V) of every decision: one standard normal per decision of the full array (so a column
    subset sees the same draws), times sqrt(comparator^2 + kT/C of both lines + shot noise of both drops)."""
    C = chip.cols
    nz = torch.stack([torch.randn(b, C, generator=gens[c], dtype=torch.float32) for c in range(c0, c1)])
    nz = nz.to(dsum.device)
    if sel is not None:
        nz = nz[..., sel]
    var = chip.noise_sigma ** 2 + chip.ktc_var + chip.shot_per_volt * dsum
    return torch.sqrt(var) * nz


def _group_tables(chip, c0: int, c1: int):
    """The look-up tables of chips c0..c1-1: line currents per row and code with the window charge, and with the
    coupling factors (None without coupling); (G, rows, codes, 2 cols) float32 each."""
    m = chip._m[c0:c1].view(c1 - c0, chip.rows, chip.rank, 2 * chip.cols)
    return (code_tables(chip._u[c0:c1], m), None if chip._uc is None else code_tables(chip._uc[c0:c1], m))


def evaluate_physical(chip, codes, theta, sel, want_dv, want_drops, noise_seed, outer_threads):
    """The physical path, chunked over inputs and grouped over chips to bound memory; returns a ChipOutput."""
    dev, n, R = chip.device, chip.n_chips, chip.rows
    C = chip.cols if sel is None else len(sel)
    shared, B = codes.dim() == 2, codes.shape[-2]
    out = ChipOutput(torch.empty(n, B, C, dtype=torch.int8, device=dev),
                     torch.empty(n, B, C, dtype=torch.float32, device=dev) if want_dv else None,
                     torch.empty(n, B, C, 2, dtype=torch.float32, device=dev) if want_drops else None)
    n_tabs = 2 if chip._uc is not None else 1
    per_chip = 4 * (n_tabs * R * (chip.max_code + 1) * 2 * chip.cols + 12 * CHUNK * 2 * chip.cols)
    group = max(1, min(n, GROUP_BYTES // per_chip))
    noisy = chip.noise_sigma > 0 or chip.ktc_var > 0
    gens = [chip_generator(noise_seed, chip.first_chip + c, 1) for c in range(n)]
    ref = (theta * chip.volts_per_lsb).to(torch.float32)                                 # (n, C) V
    for c0 in range(0, n, group):
        c1 = min(n, c0 + group)
        with torch_threads(outer_threads):
            tabs = _group_tables(chip, c0, c1)
        for b0 in range(0, B, CHUNK):
            b1 = min(B, b0 + CHUNK)
            x = codes[b0:b1] if shared else codes[c0:c1, b0:b1]
            dv, d_bl, d_blb = _discharge(chip, _swings(chip, tabs, x, shared, sel))
            dsum = d_bl + d_blb
            x_in = dv + _offsets(chip, c0, c1, dsum, sel)
            if noisy:
                x_in = x_in + _noise(chip, gens, c0, c1, b1 - b0, dsum, sel)
            out.decisions[c0:c1, b0:b1] = decide(x_in, ref[c0:c1, None, :])
            if want_dv:
                out.dv[c0:c1, b0:b1] = dv
            if want_drops:
                out.drops[c0:c1, b0:b1] = torch.stack([d_bl, d_blb], -1)
    return out


def evaluate_ideal(chip, codes, theta, sel, want_dv, want_drops):
    """Exact integer arithmetic: dot = codes @ W in float64, decisions = +1 iff dot >= theta."""
    w = chip.weights.to(torch.float64)                                                    # (n, R, C)
    if sel is not None:
        w = w[..., sel]
    x = codes.to(torch.float64)
    mm = (lambda a: torch.matmul(x, a)) if codes.dim() == 3 else (lambda a: torch.einsum("br,nrc->nbc", x, a))
    dot = mm(w)
    out = ChipOutput(decide(dot, theta[:, None, :]), dot * chip.volts_per_lsb if want_dv else None)
    if want_drops:             # linear lines without floor, clipped: a physical line cannot fall below 0 V
        pos = (w > 0).to(torch.float64)
        out.drops = torch.stack([mm(1 - pos), mm(pos)], -1).mul(chip.volts_per_lsb).clamp(0.0, chip.vdd)
    return out
