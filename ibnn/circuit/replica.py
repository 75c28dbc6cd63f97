"""Mismatch of the WLDAC's replica bit-cell: one static (dVt, dbeta) per row, applied to that row's word line.

The replica is the read stack of a bit-cell with both devices k = replica_ratio times wider, diode-connected (its
gate and its bit-line node are the word line). With its own mismatch it sets V_WL by

    k (1 + dbeta_rep) I_stack(V_WL, V_D = V_WL; dVt_rep) = I_DAC,

which `word_line_voltage` solves to machine precision (Newton steps from the nominal replica's tabulated
solution, safeguarded by a bracket). Pelgrom at the replica's own area (access device k W L): sigma(dVt_rep) =
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

from .wldac import WLDAC

_NEWTON = 4           # chord steps from the shifted nominal solution (error shrinks ~20x per step)
_DV = 1e-6            # V, finite-difference step of the Newton derivative


def replica_sigmas(P, k: float | None = None) -> tuple[float, float]:
    """(sigma dVt (V), sigma dbeta (relative)) of a replica k cells wide (default P["replica_ratio"])."""
    k = P["replica_ratio"] if k is None else float(k)
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"replica ratio k={k!r} is out of range; accepted: finite number in (0, inf)")
    return P["sigma_vt_cell"] / math.sqrt(k), P["sigma_beta_cell"] / math.sqrt(k)


def word_line_voltage(dac: WLDAC, i_dac, dvt=0.0, dbeta=0.0) -> torch.Tensor:
    """V_WL (V) at which the replica of `dac` (ratio dac.ratio) with mismatch (dvt V, dbeta relative) sinks i_dac
    (A); broadcast; exactly 0 where i_dac = 0 (code 0: row off).

    Chord (fixed-slope Newton) iterations on h(V) = ln I_stack(V, V; dvt) - ln(i_dac / (k (1 + dbeta))) (ln I is
    nearly linear in V, in weak inversion exactly), started at the nominal replica's solution shifted by dvt, kept
    inside [0, VDD]; the residual is checked in the tests."""
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
    target = torch.log(torch.where(on, i, torch.ones_like(i)) / (dac.ratio * (1.0 + b)))
    v = torch.clamp(dac.word_line_voltage(torch.where(on, i / (1.0 + b), torch.zeros_like(i))) + d, 1e-3, dac.vdd)
    h = lambda x: torch.log(dac.cell.current(x, x, d).clamp(min=1e-300)) - target  # noqa: E731
    f0 = h(v)
    slope = (h(v + _DV) - f0) / _DV            # chord method: the slope of ln I barely moves over the shift
    slope = torch.where(slope > 0, slope, torch.ones_like(slope))
    for _ in range(_NEWTON):
        v = torch.clamp(v - f0 / slope, 1e-4, dac.vdd)
        f0 = h(v)
    return torch.where(on, v, torch.zeros_like(v))


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
