"""The column comparator at the input common modes the bit-lines really reach.

Both bit-lines start at VDD and fall, so the comparator's input common mode V_CM = VDD - (drop_BL + drop_BLB) / 2
spans most of the supply. The integration phase of a StrongARM latch (B. Razavi, 'The StrongARM latch', IEEE SSC
Magazine 7(2):12-17, 2015) is modelled per input pair (`strongarm_phase1`): the pair current (tail device solved),
the time to pull the integration nodes down by a threshold (the latch turns on), the preamplifier gain
A = (g_m / I_D) V_T, and the input-referred offset sigma^2 = sigma_pair^2 + sigma_beta^2 + (sigma_latch / A)^2
(Pelgrom at each device's area). An NMOS pair starves at a low common mode, a PMOS pair at a high one; the column
uses a rail-to-rail StrongARM (both pairs in parallel on one latch), whose offset is the transconductance-weighted
mix of the two pairs' offsets (`complementary_offset`):

    os(V_CM) = a(V_CM) os_n + (1 - a(V_CM)) os_p,   a = g_n / (g_n + g_p).

At the precharge level only the NMOS pair conducts (a = 1), so the static offset drawn per column at that common
mode (comparator_offset in the chip) is os_n, and the common-mode dependent part is (1 - a)(os_p - os_n): a part a
per-column trim at one common mode cannot remove (`CommonModeOffset`, the chip's comparator_cm mechanism). The
energy per decision does not depend on the common mode: every internal node swings rail to rail (e_comparator).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..repro.device import elementwise_threads, torch_threads
from ..validate import check_choice
from .bitcell import ekv_current, nmos, pmos

CM_GRID = 241         # common-mode grid of the chip's a(V_CM) table, 0 .. VDD


@dataclass
class Phase1:
    """Integration phase of a StrongARM at each common mode (arrays over V_CM)."""

    v_cm: np.ndarray
    i_pair: np.ndarray        # A, total current of the input pair
    gm_over_id: np.ndarray    # 1/V of one input device
    t_int: np.ndarray         # s to pull the integration nodes down by V_T (latch turn-on)
    gain: np.ndarray          # preamplifier gain at t_int, (g_m / I_D) V_T
    sigma_offset: np.ndarray  # V, input-referred offset sigma

    @property
    def gm(self) -> np.ndarray:
        """Transconductance (S) of one input device."""
        return self.gm_over_id * self.i_pair / 2


def _tail_solve(P, dev_in, tail, v_g, iters: int = 50):
    """Source node (V) of an NMOS pair with gates at v_g, drains at VDD and tail `tail` (gate VDD), from
    2 I_in(V_S) = I_tail(V_S) by bisection; returns (V_S, I_pair)."""
    vdd = P["vdd"]
    lo, hi = torch.zeros_like(v_g), torch.full_like(v_g, vdd)
    for _ in range(iters):
        s = 0.5 * (lo + hi)
        net = 2 * ekv_current(dev_in, v_g, vdd, s) - ekv_current(tail, vdd, s, 0.0)
        lo, hi = torch.where(net > 0, s, lo), torch.where(net > 0, hi, s)
    s = 0.5 * (lo + hi)
    return s, ekv_current(tail, vdd, s, 0.0)


def strongarm_phase1(P, v_cm, pair: str = "nmos") -> Phase1:
    """Integration phase of a StrongARM with an `pair` ("nmos" or "pmos") input pair at common modes v_cm (V).

    The tail (an NMOS, a PMOS for a PMOS pair) carries i_cmp_tail_max at V_DS = VDD; the pair's g_m / I_D comes
    from the EKV law at its solved source voltage. t_int = c_cmp_node V_T / (I_pair / 2); gain = g_m t_int /
    c_cmp_node; offset from the pair's dVt and dbeta (Pelgrom at w_cmp_in x l_cmp_in) and a latch device
    (w_cmp_latch x l_access) divided by the gain. A PMOS pair is the NMOS problem on mirrored voltages."""
    check_choice("pair", pair, ("nmos", "pmos"))
    vdd = P["vdd"]
    v = torch.as_tensor(np.asarray(v_cm, dtype=np.float64))
    vg = v if pair == "nmos" else vdd - v
    make = nmos if pair == "nmos" else pmos
    w, l = P["w_cmp_in"], P["l_cmp_in"]
    dev = make(P, w, l)
    unit = make(P, 1e-6)
    with torch_threads(elementwise_threads()):
        w_tail = 1e-6 * P["i_cmp_tail_max"] / float(ekv_current(unit, vdd, vdd, 0.0))
        vs, i_pair = _tail_solve(P, dev, make(P, w_tail), vg)
        dvg = 1e-4
        gm = (ekv_current(dev, vg + dvg, vdd, vs) - ekv_current(dev, vg - dvg, vdd, vs)) / (2 * dvg)
    gmi = (gm / (i_pair / 2)).numpy()
    vt = P["vt0_n"] if pair == "nmos" else P["vt0_p"]
    t_int = P["c_cmp_node"] * vt / (i_pair.numpy() / 2)
    gain = gmi * vt
    sig_pair = math.sqrt(2) * P["a_vt"] / math.sqrt(w * l)
    sig_beta = math.sqrt(2) * P["a_beta"] / math.sqrt(w * l) / gmi
    sig_latch = math.sqrt(2) * P["a_vt"] / math.sqrt(P["w_cmp_latch"] * P["l_access"])
    sigma = np.sqrt(sig_pair ** 2 + sig_beta ** 2 + (sig_latch / gain) ** 2)
    return Phase1(v.numpy(), i_pair.numpy(), gmi, t_int, gain, sigma)


def nmos_share(p_n: Phase1, p_p: Phase1) -> np.ndarray:
    """a(V_CM) = g_n / (g_n + g_p) of a rail-to-rail comparator with both pairs on one latch."""
    return p_n.gm / (p_n.gm + p_p.gm)


def complementary_offset(p_n: Phase1, p_p: Phase1) -> np.ndarray:
    """Offset sigma (V) of a rail-to-rail comparator: sqrt(a^2 s_n^2 + (1 - a)^2 s_p^2), a = nmos_share."""
    a = nmos_share(p_n, p_p)
    return np.sqrt((a * p_n.sigma_offset) ** 2 + ((1 - a) * p_p.sigma_offset) ** 2)


def integration_limits(P, n: int = 241) -> dict:
    """The common-mode range in which each input pair integrates within half the strobe time (V), and the
    slowest integration time of the rail-to-rail comparator over 0..VDD (its faster pair at each common mode)."""
    grid = np.linspace(0.0, P["vdd"], n)
    pn, pp = strongarm_phase1(P, grid, "nmos"), strongarm_phase1(P, grid, "pmos")
    budget = 0.5 * P["t_strobe"]
    ok_n, ok_p = grid[pn.t_int <= budget], grid[pp.t_int <= budget]
    return {"t_int_budget_s": budget,
            "nmos_min_cm_V": float(ok_n.min()) if ok_n.size else None,
            "pmos_max_cm_V": float(ok_p.max()) if ok_p.size else None,
            "rail_to_rail_slowest_t_int_s": float(np.minimum(pn.t_int, pp.t_int).max())}


@dataclass(frozen=True)
class CommonModeOffset:
    """The chip's common-mode dependent offset: os(V_CM) = os_n + s (1 - a(V_CM)) (os_p - os_n), with a on a
    grid of V_CM and the ratio sigma(os_p) / sigma(os_n) of the pairs' own offsets."""
    v_grid: torch.Tensor
    one_minus_a: torch.Tensor
    p_over_n: float

    @classmethod
    def from_params(cls, P) -> "CommonModeOffset":
        """Tabulate 1 - a on CM_GRID points of 0..VDD; sigma ratio of the pairs at their best common mode."""
        grid = np.linspace(0.0, P["vdd"], CM_GRID)
        pn, pp = strongarm_phase1(P, grid, "nmos"), strongarm_phase1(P, grid, "pmos")
        a = nmos_share(pn, pp)
        ratio = float(pp.sigma_offset.min() / pn.sigma_offset.min())
        return cls(torch.as_tensor(grid, dtype=torch.float32), torch.as_tensor(1.0 - a, dtype=torch.float32),
                   ratio)

    def weight(self, v_cm: torch.Tensor) -> torch.Tensor:
        """1 - a(V_CM), linearly interpolated (V_CM clamped to the grid)."""
        g = self.v_grid.to(v_cm.device)
        step = float(g[1] - g[0])
        t = ((v_cm - float(g[0])) / step).clamp(0, len(g) - 1 - 1e-6)
        i = t.floor().long()
        w = self.one_minus_a.to(v_cm.device)
        w0 = w.index_select(0, i.flatten()).view_as(t)                 # index_select: the same values, faster
        w1 = w.index_select(0, (i + 1).clamp(max=len(g) - 1).flatten()).view_as(t)
        return w0 + (t - i) * (w1 - w0)
