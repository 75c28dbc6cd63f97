"""The elementwise tail of one classify cycle as one function: from the line sums to the decisions.

The torch path of a cycle (on CUDA, or on the CPU where the compiled loop of ibnn.circuit.kernel does not run).
After the look-up sums (ibnn.circuit.factored), everything a cycle does is elementwise over (chips, inputs,
lines): the first-pass discharge whose mean drop scales the word-line kick, the final discharge, the comparator
offset at each decision's common mode, the temporal noise and the decision. Written as separate torch operations
these are dozens of passes over memory; `tail_plain` is that chain written once, in three stages (the mean
first-pass drop, the final lines, the decisions), and on the CPU each stage can run compiled by torch.compile
(inductor's C++ backend fuses it into a few vectorised loops). The compiled and the plain function
compute the same expressions and differ only in float32 rounding (tests/test_speed_paths.py bounds it), so a
decision can change only where it lies that close to its reference.

The compiled form is one graph per stage and kind of bit-line (ideal or not), for any shape (dynamic), any parameter
values (the constants travel as one tensor, `consts`) and any set of mechanisms (`tail` passes an absent kick or
noise as zeros), so a process compiles it once: seconds, mostly importing inductor (the generated code is cached
on disk across processes). By default (IBNN_COMPILE=auto) only evaluations of at least COMPILE_MIN decisions run
compiled, so small ones (tests, the quick profile) never pay for it; IBNN_COMPILE=1 compiles every evaluation, 0
none. Without a C++ compiler (torch.compile's requirement on the CPU) or on CUDA (where the eager kernels are fast
already) the plain function runs.
"""
from __future__ import annotations

import functools
import math
import os
import shutil
import warnings

import torch

from .column import DrainLaw, discharge

#: decisions (chips x inputs x columns) of one evaluation from which IBNN_COMPILE=auto compiles the tail: the first
#: compilation in a process costs seconds (importing and running inductor; its code is cached on disk), which the
#: compiled loops repay only on evaluations of this order (benchmarks/bench_chip.py measures both forms)
COMPILE_MIN = 1 << 23

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


def tail_plain(full, kick, nz, ref, off, diff, grid_w, k, ideal: bool = False, law: DrainLaw | None = None):
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


def compile_wanted(device, n_decisions: int) -> bool:
    """Whether `tail` runs compiled for an evaluation of n_decisions (chips x inputs x columns): IBNN_COMPILE=1
    always, 0 never, auto (the default) on the CPU from COMPILE_MIN decisions up, where the compiled loops repay
    the first compilation in the process; on CUDA (fast eager kernels) or without a C++ compiler: never."""
    env = os.environ.get("IBNN_COMPILE", "auto")
    if env not in ("0", "1", "auto"):
        raise ValueError(f"IBNN_COMPILE={env!r} is not accepted; accepted: 'auto' (the default: compile the chip's "
                         f"elementwise tail on the CPU for evaluations of at least {COMPILE_MIN} decisions), '1' "
                         f"(always) or '0' (never: eager)")
    if env == "0" or torch.device(device).type != "cpu" or (env == "auto" and n_decisions < COMPILE_MIN):
        return False
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        _warn_once("no C++ compiler found (torch.compile needs one on the CPU): the chip's tail runs eagerly")
        return False
    return True


@functools.lru_cache(maxsize=None)
def _warn_once(msg: str) -> None:
    warnings.warn(msg, stacklevel=3)


@functools.lru_cache(maxsize=None)
def _compiled():
    """The three stages, each compiled on its own: fused into one graph, inductor recomputed the first pass inside
    the second (one chip's tail ran ~3x slower than the three graphs)."""
    return tuple(torch.compile(f, dynamic=True) for f in (mean_drop, final_lines, decide_lines))


def tail(full, kick, nz, ref, off, diff, grid_w, k, *, ideal: bool, law: DrainLaw | None, compiled: bool):
    """`tail_plain`, compiled (see the module docstring) when `compiled` and the law is one `tail_plain` writes out.

    The compiled stages are called with one signature, so a process compiles each once per kind of law: chips and
    inputs flattened into rows (a group of one chip would otherwise be a graph of its own), per-chip references and
    offsets expanded to rows, every input a tensor of its own (detached: no view of a differently shaped base), and
    an absent kick (with a zero mean drop) or noise passed as zeros (exact: subtracting or adding zero)."""
    if not compiled or law is not None:
        return tail_plain(full, kick, nz, ref, off, diff, grid_w, k, ideal=ideal, law=law)
    G, B, C2 = full.shape
    rows = lambda t: t.expand(G, B, t.shape[-1]).reshape(G * B, t.shape[-1]).contiguous().detach()  # noqa: E731
    stage1, stage2, stage3 = _compiled()
    full_r = rows(full)
    if kick is None:
        kick_r, drop = torch.zeros_like(full_r), torch.zeros(G * B, 1, dtype=full.dtype, device=full.device)
    else:
        kick_r = rows(kick)
        drop = stage1(full_r, k, ideal=ideal)
    nz = torch.zeros(G, B, C2 // 2, dtype=full.dtype, device=full.device) if nz is None else nz
    lines = stage2(full_r, kick_r, drop, k, ideal=ideal)
    out = stage3(lines, rows(nz), rows(ref), rows(off), rows(diff), grid_w, k, ideal=ideal)
    return tuple(o.view(G, B, -1) for o in out)
