"""Read disturb: is a cell still stable with its word line at V_WL while its bit-lines fall during the window?

The static noise margin (SNM) of E. Seevinck, F. List, J. Lohstroh (IEEE JSSC 22(5):748-754, 1987): the side of the
largest square that fits between the two half-cells' transfer curves. Each half-cell is a pull-up PMOS and a
pull-down NMOS (gates at the other node) and an access NMOS (gate V_WL) to its bit-line; a node storing 1 is pulled
towards a low bit-line through its access device, against its pull-up. `snm(P, v_wl, v_bl, v_blb)` gives the margin
of both stored states; `bitline_floor` the lowest bit-line voltage at which a cell keeps a required margin, which is
what bounds the swing of the discharge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..repro.device import elementwise_threads, torch_threads
from ..validate import check_nonneg
from .bitcell import ekv_current, nmos, pmos, pmos_current


def inverter_curve(P, v_in, v_wl: float, v_bitline: float, iters: int = 48) -> torch.Tensor:
    """Output node voltage (V) of one half-cell for input voltages v_in (tensor): pull-up PMOS and pull-down NMOS
    (gates at v_in) and the access NMOS (gate v_wl) to a bit-line held at v_bitline; KCL solved by bisection (the
    net current into the node falls with its voltage)."""
    vdd = P["vdd"]
    pu, pd, ax = pmos(P, P["w_pullup"]), nmos(P, P["w_pulldown"]), nmos(P, P["w_access"])
    vin = torch.as_tensor(v_in, dtype=torch.float64)
    lo, hi = torch.zeros_like(vin), torch.full_like(vin, vdd)
    for _ in range(iters):
        x = 0.5 * (lo + hi)
        net = (pmos_current(pu, vin, x, vdd, vdd) - ekv_current(pd, vin, x, 0.0)
               - ekv_current(ax, v_wl, x, v_bitline))
        lo, hi = torch.where(net > 0, x, lo), torch.where(net > 0, hi, x)
    return 0.5 * (lo + hi)


@dataclass
class SNM:
    """Static noise margins (V) of the two stored states (0 where the state no longer exists)."""

    q_high: float       # the state with the BL-side node Q at 1 (disturbed by a low BL)
    q_low: float        # the state with Q at 0


def snm(P, v_wl: float, v_bl: float, v_blb: float, n: int = 601) -> SNM:
    """Seevinck SNM of both states. Q (BL side) = G_Q(QB), QB = G_QB(Q); along every line x - y = d of the
    (x = Q, y = QB) plane the side of the inscribed square is x_I(d) - x_II(d); its extreme in each lobe is the
    margin of the state in that lobe."""
    vdd = P["vdd"]
    g = torch.linspace(0.0, vdd, n, dtype=torch.float64)
    with torch_threads(elementwise_threads()):
        qb_of_q = inverter_curve(P, g, v_wl, v_blb).numpy()          # curve I: y = G_QB(x)
        q_of_qb = inverter_curve(P, g, v_wl, v_bl).numpy()           # curve II: x = G_Q(y)
    x = g.numpy()
    d = np.linspace(-vdd, vdd, 2 * n)
    d_i, d_ii = x - qb_of_q, q_of_qb - x                              # increasing in x / decreasing in y
    x_i = np.interp(d, d_i, x)
    y_ii = np.interp(-d, -d_ii, x)
    s = x_i - np.interp(y_ii, x, q_of_qb)
    inside = (d >= max(d_i.min(), d_ii.min())) & (d <= min(d_i.max(), d_ii.max()))
    s = np.where(inside, s, 0.0)
    hi_lobe, lo_lobe = s[d > 0], s[d < 0]
    return SNM(q_high=float(max(0.0, -hi_lobe.min())) if hi_lobe.size else 0.0,
               q_low=float(max(0.0, lo_lobe.max())) if lo_lobe.size else 0.0)


def bitline_floor(P, v_wl: float, margin: float, v_other: float | None = None, iters: int = 16) -> float:
    """Lowest bit-line voltage (V) at which a cell storing 1 on that side keeps SNM >= margin with its word line
    at v_wl (the other line at v_other, default VDD: the worst case). 0 when even a 0-V line keeps the margin;
    VDD when even VDD does not."""
    margin = check_nonneg("margin", margin)
    vdd = float(P["vdd"])
    v_other = vdd if v_other is None else v_other
    if snm(P, v_wl, 0.0, v_other).q_high >= margin:
        return 0.0
    if snm(P, v_wl, vdd, v_other).q_high < margin:
        return vdd
    lo, hi = 0.0, vdd
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if snm(P, v_wl, mid, v_other).q_high >= margin else (mid, hi)
    return hi
