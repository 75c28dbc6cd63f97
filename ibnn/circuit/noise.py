"""Physical temporal noise of one decision, beside the comparator's own (volts at the comparator input).

* Precharge kT/C: each bit-line keeps the thermal charge it had when its precharge switch opened,
  sigma^2 = k T / C_BL per line (k T = q U_T), 2 k T / C_BL for the pair.
* Discharge noise: the cells' channel noise integrated over the window. A current I with one-sided PSD
  S_I = 4 k T n gamma g_m (EKV; 2 q I in weak inversion, gamma = 1/2) integrated for T gives a charge variance
  S_I T / 2 = F q I T, excess factor F = 2 n gamma U_T g_m / I <= 1 (`noise_excess_factor`). A line that fell by
  dV carried the charge C dV, so sigma^2 = F q dV / C; the chip model uses the shot-noise bound F = 1.
* Word-line noise (row-correlated): a node held by its diode-connected replica carries ~ n gamma k T / C_WL (g_m
  cancels); it moves the current of every cell of the row by (g_m / I) times it (`wordline_noise_sigma`), a bound
  reported in notebook 02, not in the chip model.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..validate import check_nonneg, check_positive


def ktc_sigma(P, c: float | None = None) -> float:
    """sqrt(k T / C) (V) of one precharged line (default C = C_BL); k T = q U_T."""
    c = P["c_bl"] if c is None else check_positive("c", c)
    return math.sqrt(P["q_electron"] * P["thermal_voltage"] / c)


def discharge_noise_sigma(P, drop, excess: float = 1.0) -> np.ndarray:
    """sqrt(F q dV / C_BL) (V) of a line that fell by `drop` (V, array) with noise excess factor F."""
    d = np.asarray(drop, dtype=np.float64)
    if d.size and (not np.all(np.isfinite(d)) or d.min() < 0):
        raise ValueError(f"drop has an entry outside [0, VDD] ({d.min()!r}); accepted: drops in [0, VDD] V")
    return np.sqrt(check_nonneg("excess", excess) * P["q_electron"] * d / P["c_bl"])


def noise_excess_factor(cell, v_wl, dv: float = 1e-4) -> torch.Tensor:
    """F = 2 n gamma U_T (g_m / I) of the read stack at V_WL (drain at VDD): 1 in weak inversion (shot noise),
    falling in moderate and strong inversion; gamma goes from 1/2 (weak) to noise_gamma_si (strong) with
    x = n U_T g_m / I (1 in weak inversion)."""
    P = cell.params
    v = torch.as_tensor(v_wl, dtype=torch.float64)
    gmi = (torch.log(cell.current(v + dv, cell.vdd)) - torch.log(cell.current(v - dv, cell.vdd))) / (2 * dv)
    n, ut = P["slope_factor"], P["thermal_voltage"]
    x = (n * ut * gmi).clamp(0.0, 1.0)
    gamma = 0.5 * x + P["noise_gamma_si"] * (1 - x)
    return 2 * n * gamma * ut * gmi


def wordline_noise_sigma(P, c_node: float) -> float:
    """rms noise (V) of a word line held by its diode-connected replica: sqrt(n gamma k T / C_WL)."""
    return math.sqrt(P["slope_factor"] * P["noise_gamma_si"] * P["q_electron"] * P["thermal_voltage"]
                     / check_positive("c_node", c_node))


def decision_noise_sigma(P, drop_bl, drop_blb, comparator: float = 1.0, physical: float = 1.0) -> np.ndarray:
    """Total temporal noise (V) of one decision: comparator noise, kT/C of both lines and the shot-noise bound of
    both discharges, added in power, each group scaled by its factor (as the chip model does)."""
    d1, d2 = np.asarray(drop_bl, dtype=np.float64), np.asarray(drop_blb, dtype=np.float64)
    var = (comparator * P["comp_noise_sigma"]) ** 2 + physical ** 2 * (
        2 * ktc_sigma(P) ** 2 + discharge_noise_sigma(P, d1) ** 2 + discharge_noise_sigma(P, d2) ** 2)
    return np.sqrt(var)
