"""The elementwise tail of one classify cycle as torch operations: from the line sums to the decisions.

The torch path of a cycle (on CUDA, or on the CPU where the compiled loop of ibnn.circuit.kernel does not run:
IBNN_KERNEL=0, numba missing, a drain law it does not write out). After the look-up sums (ibnn.circuit.factored),
everything a cycle does is elementwise over (chips, inputs, lines): the first-pass discharge whose mean drop
scales the word-line kick, the final discharge, the comparator offset at each decision's common mode, the temporal
noise and the decision. `tail` is that chain written once, in three stages (the mean first-pass drop, the
final lines, the decisions); ibnn.circuit.kernel computes the same expressions in one loop (tests/test_speed_paths.py
bounds the difference: float32 rounding).
"""
from __future__ import annotations

import math

import torch

from .column import DrainLaw, discharge

#: the order of the constants in the tensor `consts` passes to `tail`
CONST_NAMES = ("volts_per_lsb", "vdd", "s_knee", "b1", "b2", "c1", "r1", "c2", "r2", "cm_scale", "cm_v0",
               "cm_step", "cm_last", "var0", "shot_per_volt")


def two_piece(law: DrainLaw) -> bool:
    """Whether the law's discharge is the two exponential pieces `tail` evaluates (else `column.discharge` runs)."""
    fk = law.a1 + law.b1 * law.vk
    return not (law.ideal or fk <= 0 or abs(law.b1) * 10.0 < 1e-7 or abs(law.b2) * 10.0 < 1e-7)


def law_consts(law: DrainLaw) -> dict:
    """The two exponential pieces of a drain law: knee swing s_knee, rates b1, b2 and V = c e^(-b s) - r per piece
    (zeros where the law is not two-piece)."""
    if not two_piece(law):
        return dict(s_knee=0.0, b1=law.b1, b2=law.b2, c1=0.0, r1=0.0, c2=0.0, r2=0.0)
    s_k = math.log((law.a1 + law.b1 * law.vdd) / (law.a1 + law.b1 * law.vk)) / law.b1
    return dict(s_knee=s_k, b1=law.b1, b2=law.b2, c1=law.vdd + law.a1 / law.b1, r1=law.a1 / law.b1,
                c2=law.vk + law.a2 / law.b2, r2=law.a2 / law.b2)


def consts(chip, cm_grid: torch.Tensor) -> torch.Tensor:
    """The chip's constants in CONST_NAMES order, float32 (the dtype the eager kernels compute in)."""
    vals = dict(volts_per_lsb=chip.volts_per_lsb, vdd=chip.vdd, **law_consts(chip.drain_law),
                cm_scale=chip.nonideal.comparator_cm if chip.cm_offset is not None else 0.0,
                cm_v0=float(cm_grid[0]), cm_step=float(cm_grid[1] - cm_grid[0]), cm_last=len(cm_grid) - 1 - 1e-6,
                var0=chip.noise_sigma ** 2 + chip.ktc_var, shot_per_volt=chip.shot_per_volt)
    return torch.tensor([vals[n] for n in CONST_NAMES], dtype=torch.float32)


def line_voltages(law: DrainLaw, swing: torch.Tensor) -> torch.Tensor:
    """Final line voltages (V) for linear swings (V) >= 0: `column.discharge`, with one exponential per line instead
    of one per affine piece (the same expressions elementwise, so the same values; tested)."""
    if not two_piece(law):
        return discharge(swing, law)
    c = law_consts(law)
    k = torch.zeros(len(CONST_NAMES), dtype=torch.float32)
    for i, name in enumerate(CONST_NAMES):
        k[i] = c.get(name, 0.0)
    return _voltages(swing, k, None)


def cm_table(chip) -> tuple[torch.Tensor, torch.Tensor]:
    """(V_CM grid, 1 - a(V_CM)) float32 of the chip's rail-to-rail comparator (a flat stand-in without it)."""
    if chip.cm_offset is None:
        return torch.tensor([0.0, 1.0]), torch.zeros(2)
    return chip.cm_offset.v_grid, chip.cm_offset.one_minus_a


def _voltages(swing, k, law: DrainLaw | None):
    """Final line voltages (V) of linear swings (V) >= 0: the two exponential pieces of the law (law None; k: the
    constants), `column.discharge` for any other law (law given)."""
    if law is not None:
        return discharge(swing, law)
    s = swing
    low = s <= k[2]
    e = torch.exp(torch.where(low, -k[3] * s, -k[4] * (s - k[2])))
    v = torch.where(low, k[5] * e - k[6], k[7] * e - k[8])
    return torch.clamp(v, min=0.0)


def _lines(swing, k, ideal: bool, law):
    """What the lines reach for linear swings (V): their final voltages, or for the ideal (linear) bit-line the
    swings themselves (its drop is the swing, clipped to the supply)."""
    return swing if ideal else _voltages(torch.clamp(swing, min=0.0), k, law)


def _drops(lines, k, ideal: bool):
    """(V_BL - V_BLB, drops (V) of all 2 C lines) from `_lines`: BLBs first, then BLs (`factored.line_matrix`)."""
    C = lines.shape[-1] // 2
    if ideal:
        return lines[..., :C] - lines[..., C:], torch.minimum(torch.clamp(lines, min=0.0), k[1])
    return lines[..., C:] - lines[..., :C], torch.minimum(torch.clamp(k[1] - lines, min=0.0), k[1])


def _cm_weight(v_cm, grid_w, k):
    """1 - a(V_CM), linearly interpolated on the comparator's grid (`comparator.CommonModeOffset.weight`)."""
    t = torch.minimum(((v_cm - k[10]) / k[11]).clamp(min=0.0), k[12])
    i = t.floor().long()
    w0 = grid_w[i]
    w1 = grid_w[(i + 1).clamp(max=grid_w.shape[0] - 1)]
    return w0 + (t - i) * (w1 - w0)


def mean_drop(full, k, ideal: bool = False, law: DrainLaw | None = None):
    """Stage 1: each input's mean first-pass drop (V) over all 2 C lines, (..., 1): what scales the word-line kick."""
    _, d = _drops(_lines(full * k[0], k, ideal, law), k, ideal)
    return d.sum(-1, keepdim=True) / full.shape[-1]


def final_lines(full, kick, drop, k, ideal: bool = False, law: DrainLaw | None = None):
    """Stage 2: `_lines` of the swings with the kick: full x volts_per_lsb - mean drop x kick x volts_per_lsb."""
    swing = full * k[0] if kick is None else full * k[0] - drop * (kick * k[0])
    return _lines(swing, k, ideal, law)


def decide_lines(lines, nz, ref, off, diff, grid_w, k, ideal: bool = False):
    """Stage 3: (decisions int8, dv, drop_BL, drop_BLB): the offset at each decision's common mode, the noise of
    both discharges, the comparison with the reference (ties +1)."""
    C = lines.shape[-1] // 2
    dv, d = _drops(lines, k, ideal)
    d_bl, d_blb = d[..., C:], d[..., :C]
    dsum = d_bl + d_blb
    x = dv + (off + k[9] * _cm_weight(k[1] - dsum / 2, grid_w, k) * diff)
    if nz is not None:
        x = x + torch.sqrt(k[13] + k[14] * dsum) * nz
    dec = torch.where(x >= ref, 1, -1).to(torch.int8)
    return dec, dv, d_bl, d_blb


def tail(full, kick, nz, ref, off, diff, grid_w, k, ideal: bool = False, law: DrainLaw | None = None):
    """Decisions, V_BL - V_BLB and the drops of BL and BLB for the line sums of one chunk: the three stages.

    Args:
        full, kick: start-of-pulse line sums (LSB) with the window charge, and with the coupling factors (kick None:
            no word-line kick), (G, B, 2 C); nz: standard normals (G, B, C) or None (no temporal noise);
        ref: references (V), off: static offsets (V), diff: os_p - os_n (V), each (G, 1, C); grid_w: 1 - a(V_CM) on
            the comparator's grid; k: `consts`; ideal: the linear bit-line; law: a law `tail` does not write out.
    Returns:
        (decisions int8, dv, drop_BL, drop_BLB), each (G, B, C)."""
    drop = None if kick is None else mean_drop(full, k, ideal, law)
    lines = final_lines(full, kick, drop, k, ideal, law)
    return decide_lines(lines, nz, ref, off, diff, grid_w, k, ideal)
