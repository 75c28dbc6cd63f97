"""Mismatch of the WLDAC's replica bit-cell: one static (dVt, dbeta) per row, applied to that row's word line.

The replica is the read stack of a bit-cell with both devices k = replica_ratio times wider, diode-connected (its
gate and its bit-line node are the word line). With its own mismatch it sets V_WL by

    k (1 + dbeta_rep) I_stack(V_WL, V_D = V_WL; dVt_rep) = I_DAC,

which `word_line_voltage` solves to machine precision. The two devices carry the same current, so the law splits
into two one-dimensional equations: the pull-down (gate at VDD, drain X, source 0) does not see dVt_rep, so

    I_pd(X) = I_DAC / (k (1 + dbeta_rep))

fixes the internal node X from the current alone, and then the access device (gate = drain = V_WL, source X)

    I_acc(V_WL, V_WL, X; dVt_rep) = I_pd(X)

fixes V_WL. Each is a monotone single EKV expression, solved by safeguarded Newton steps with analytic slopes
(bitcell.ekv_current_slope), started from the nominal replica's tabulated solution (ibnn.circuit.wldac) and kept
inside a bracket that every step tightens (a step leaving it is replaced by bisection); each element stops once
its Newton step is below _TOL = 1e-8 of its value, where the quadratic convergence puts the error at the rounding
level.
Pelgrom at the replica's own area (access device k W L): sigma(dVt_rep) =
sigma_vt_cell / sqrt(k), sigma(dbeta_rep) = sigma_beta_cell / sqrt(k) (`replica_sigmas`). As for a cell
(ibnn.circuit.bitcell) dbeta scales both devices, so it scales the stack current exactly; dVt sits on the access
device.

A larger replica is not immune: at k = 4 sigma(dVt_rep) is only half the cell's, and the error moves V_WL of a
whole row, shared by every cell in every column (a row-wise, code-dependent gain error). "V_WL shifts one-for-one
by dVt_rep" is the first-order reading of the law for the gate alone; the drain of a diode-connected device moves
with its gate, so DIBL and CLM add a drain term and dV_WL / dVt_rep < 1 (`shift_per_dvt` measures it).
"""
from __future__ import annotations

import math

import torch

from .bitcell import ekv_current_slope
from .wldac import WLDAC

_TOL = 1e-8           # an element stops after a Newton step below _TOL x its value (its error is then ~_TOL^2)
_MAX_STEPS = 64       # bound on the steps (bisection alone would halve a 1.2-V bracket to 1e-19 V)
_EPS = torch.finfo(torch.float64).eps


def replica_sigmas(P, k: float | None = None) -> tuple[float, float]:
    """(sigma dVt (V), sigma dbeta (relative)) of a replica k cells wide (default P["replica_ratio"])."""
    k = P["replica_ratio"] if k is None else float(k)
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"replica ratio k={k!r} is out of range; accepted: finite number in (0, inf)")
    return P["sigma_vt_cell"] / math.sqrt(k), P["sigma_beta_cell"] / math.sqrt(k)


def word_line_voltage(dac: WLDAC, i_dac, dvt=0.0, dbeta=0.0) -> torch.Tensor:
    """V_WL (V) at which the replica of `dac` (ratio dac.ratio) with mismatch (dvt V, dbeta relative) sinks i_dac
    (A); broadcast; exactly 0 where i_dac = 0 (code 0: row off).

    The pull-down equation gives the internal node X (safeguarded Newton on I, concave in X), then the access
    equation V_WL (safeguarded Newton on ln I, nearly linear in V: exactly so in weak inversion), both from the
    nominal replica's table (see the module docstring); the residuals of both are checked in the tests."""
    i, d, b = (torch.as_tensor(x, dtype=torch.float64) for x in (i_dac, dvt, dbeta))
    if bool((i < 0).any()) or not bool(torch.isfinite(i).all()):
        raise ValueError("i_dac must be finite and >= 0 A")
    if bool((b <= -1).any()) or not bool(torch.isfinite(b).all()) or not bool(torch.isfinite(d).all()):
        raise ValueError("replica mismatch must be finite with dbeta > -1 (a current factor cannot vanish)")
    if not bool((d != 0).any()) and not bool((b != 0).any()):
        return dac.word_line_voltage(i)          # the nominal replica: the DAC's own table (1e-7 V)
    shape = torch.broadcast_shapes(i.shape, d.shape, b.shape)
    i, d, b = (x.expand(shape) for x in (i, d, b))
    on = i > 0
    nominal = torch.where(on, i, torch.full_like(i, dac.unit_current)) / (1.0 + b)  # I_DAC of a nominal replica
    unit = nominal / dac.ratio                                                       # per cell width, A
    cell, vdd = dac.cell, dac.vdd
    zero, top = torch.zeros(shape, dtype=torch.float64), torch.full(shape, vdd, dtype=torch.float64)
    v_nom, x_nom = dac.nominal_solution(nominal)
    x = _newton(lambda x: ekv_current_slope(cell.pulldown, vdd, x, 0.0, 0.0, 0.0, 1.0, 0.0), unit,
                x_nom.clamp(0.0, vdd), zero, top, log=False)
    # start: equal currents at the same X with the forward term dominant mean equal pinch-off voltages, so V_WL
    # moves by dVt / (1 + eta) from the nominal (DIBL of the diode-connected drain); Newton corrects the rest
    v0 = torch.maximum(torch.minimum(v_nom + d / (1.0 + cell.access.eta), top), x)
    v = _newton(lambda v: ekv_current_slope(cell.access, v, v, x, d, 1.0, 1.0, 0.0), unit, v0, x, top, log=True)
    return torch.where(on, v, torch.zeros_like(v))


def _newton(fn, target: torch.Tensor, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, log: bool):
    """Root of fn(x)[0] = target (fn increasing on [lo, hi], returning (value, slope)), elementwise: Newton steps on
    the value (log=False) or on its logarithm (log=True), bracketed; a step that leaves the bracket bisects it.
    Each element stops after its first Newton step below _TOL x its value (quadratic convergence leaves an error
    ~_TOL^2 of it), so its result does not depend on the others."""
    lt = torch.log(target) if log else target
    lo, hi, x = lo.clone(), hi.clone(), x.clone()
    done = torch.zeros(x.shape, dtype=torch.bool)
    for _ in range(_MAX_STEPS):
        f, df = fn(x)
        if log:
            r, slope = torch.log(f.clamp(min=1e-300)) - lt, df / f
        else:
            r, slope = f - lt, df
        lo = torch.where(r < 0, x, lo)
        hi = torch.where(r > 0, x, hi)
        step = r / slope
        nxt = x - step
        newton = (nxt > lo) & (nxt < hi)                                   # False for NaN too
        nxt = torch.where(newton, nxt, 0.5 * (lo + hi))
        nxt = torch.where(r == 0, x, nxt)
        x = torch.where(done, x, nxt)
        closed = hi - lo <= 4 * _EPS * nxt.abs()                            # bisected down to the rounding
        done = done | (r == 0) | (newton & (step.abs() <= _TOL * nxt.abs())) | closed
        if bool(done.all()):
            break
    return x


def shift_per_dvt(dac: WLDAC, codes, dvt: float = 1e-3) -> torch.Tensor:
    """dV_WL / dVt_rep per code (central difference at +-dvt V): 1 would be the one-for-one shift."""
    i = dac.dac_current(torch.as_tensor(codes))
    return (word_line_voltage(dac, i, dvt) - word_line_voltage(dac, i, -dvt)) / (2 * dvt)


def cell_current_change(dac: WLDAC, codes, dvt: float = 0.0, dbeta: float = 0.0, v_bl=None) -> torch.Tensor:
    """Relative change of a nominal cell's current (drain at v_bl, default VDD) on a row whose replica has
    mismatch (dvt, dbeta), per code: I(V_WL mismatched) / I(V_WL nominal) - 1 (0 at code 0)."""
    codes = torch.as_tensor(codes)
    v_bl = dac.vdd if v_bl is None else v_bl
    i = dac.dac_current(codes)
    i0 = dac.cell.current(word_line_voltage(dac, i), v_bl)
    i1 = dac.cell.current(word_line_voltage(dac, i, dvt, dbeta), v_bl)
    return torch.where(codes > 0, i1 / torch.where(i0 > 0, i0, torch.ones_like(i0)) - 1.0, torch.zeros_like(i0))
