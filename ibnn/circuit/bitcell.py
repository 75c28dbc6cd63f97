"""The 6T bit-cell in classify mode: the read stack (access NMOS in series with the pull-down NMOS) and its mismatch.

Model (every assumption stated here; constants in ibnn/params_data/circuit.toml):

* Each NMOS follows the EKV charge-based interpolation (C. Enz, F. Krummenacher, E. Vittoz, Analog IC&SP 1995),
  continuous from weak to strong inversion, source and drain symmetric:

      I = I_S [F((V_P - V_S)/U_T) - F((V_P - V_D)/U_T)] (1 + lambda V_DS),   F(v) = ln^2(1 + exp(v/2)),
      V_P = (V_G - V_T0 - dVt + eta V_DS) / n,   I_S = 2 n beta U_T^2,   beta = mu_eff C_ox W / L.

  eta (DIBL) and lambda (channel-length modulation) give the drain-voltage dependence: the cell current falls as
  its bit-line falls, which compresses large sums. Bulk at ground; body effect is folded into n. Velocity
  saturation is not modelled separately: it is lumped into the effective mobility (see mu_eff_n).
* The read stack: the cell stores a 0 on the side that discharges, so the pull-down's gate sits at VDD. The access
  device (gate V_WL, drain V_BL, source X) is in series with the pull-down (gate VDD, drain X, source 0). The
  internal node X is solved to machine precision (bracketed Illinois regula falsi in float64: I_access(X) falls,
  I_pulldown(X) rises with X).
* Mismatch after Pelgrom (JSSC 1989), sigma = A / sqrt(W L), per cell:
  - dVt on the access device. The pull-down's mismatch is neglected: it is twice as wide (cell ratio 2) and
    driven with V_GS = VDD, so it acts as a small source-degeneration resistance and its dVt moves the cell current
    by well under a percent (a modelling simplification, stated).
  - a current-factor error dbeta applied to the whole stack: scaling beta of both devices by (1 + dbeta) leaves X
    unchanged and scales the current exactly, so I = (1 + dbeta) I_stack(V_WL, V_BL; dVt). Its sigma is
    A_beta / sqrt(W L) of the access device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import params as _params
from ..repro.device import elementwise_threads, torch_threads
from ..validate import check_nonneg, check_positive

_ITER = 24


@dataclass(frozen=True)
class Nmos:
    """EKV parameters of one NMOS (SI units)."""

    vt0: float
    beta: float      # mu_eff C_ox W / L
    n: float
    ut: float
    eta: float       # DIBL, V/V
    lam: float       # CLM, 1/V

    @property
    def i_spec(self) -> float:
        return 2.0 * self.n * self.beta * self.ut ** 2


def _f(v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(v / 2.0) ** 2


def ekv_current(dev: Nmos, vg, vd, vs, dvt=0.0) -> torch.Tensor:
    """Drain current (A) of `dev` for terminal voltages (V), float64, broadcast; positive from drain to source."""
    vg, vd, vs = (torch.as_tensor(x, dtype=torch.float64) for x in (vg, vd, vs))
    vds = vd - vs
    vp = (vg - dev.vt0 - dvt + dev.eta * vds) / dev.n
    fwd = _f((vp - vs) / dev.ut)
    rev = _f((vp - vd) / dev.ut)
    return dev.i_spec * (fwd - rev) * (1.0 + dev.lam * vds)


def _f_df(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F(v) = ln^2(1 + exp(v/2)) (as `_f`) and dF/dv = ln(1 + exp(v/2)) sigmoid(v/2), from one softplus."""
    h = v / 2.0
    sp = torch.nn.functional.softplus(h)
    return sp ** 2, sp * torch.sigmoid(h)


def ekv_current_slope(dev: Nmos, vg, vd, vs, dvt, dvg: float, dvd: float, dvs: float):
    """(I, dI/dt) of `ekv_current` when the terminal voltages move as (dvg, dvd, dvs) x t (analytic, float64): the
    slope the replica's Newton solves use (ibnn.circuit.replica)."""
    vg, vd, vs = (torch.as_tensor(x, dtype=torch.float64) for x in (vg, vd, vs))
    vds = vd - vs
    vp = (vg - dev.vt0 - dvt + dev.eta * vds) / dev.n
    (fa, dfa), (fr, dfr) = _f_df((vp - vs) / dev.ut), _f_df((vp - vd) / dev.ut)
    dvp = (dvg + dev.eta * (dvd - dvs)) / dev.n
    clm = 1.0 + dev.lam * vds
    fwd_rev = fa - fr
    slope = ((dfa * ((dvp - dvs) / dev.ut) - dfr * ((dvp - dvd) / dev.ut)) * clm
             + fwd_rev * (dev.lam * (dvd - dvs)))
    return dev.i_spec * fwd_rev * clm, dev.i_spec * slope


class BitCell:
    """The read stack of one 6T cell. `current(v_wl, v_bl, dvt, dbeta)` -> A (float64 tensor, broadcast)."""

    def __init__(self, params: _params.ParamSet):
        P = _params.require(params)
        self.params = P
        kp, n, ut = P["kp_n"], P["slope_factor"], P["thermal_voltage"]
        self.vdd = P["vdd"]
        self.access = Nmos(P["vt0_n"], kp * P["w_access"] / P["l_access"], n, ut, P["dibl"], P["clm"])
        self.pulldown = Nmos(P["vt0_n"], kp * P["w_pulldown"] / P["l_access"], n, ut, P["dibl"], P["clm"])
        self.sigma_vt = P["sigma_vt_cell"]
        self.sigma_beta = P["sigma_beta_cell"]

    def internal_node(self, v_wl, v_bl, dvt=0.0) -> torch.Tensor:
        """Voltage of the node between access and pull-down devices (V), by bracketed Illinois regula falsi
        (single-threaded elementwise work: `ibnn.repro.device.elementwise_threads`)."""
        with torch_threads(elementwise_threads()):
            return self._internal_node(v_wl, v_bl, dvt)

    def _internal_node(self, v_wl, v_bl, dvt) -> torch.Tensor:
        v_wl, v_bl, dvt = (torch.as_tensor(x, dtype=torch.float64) for x in (v_wl, v_bl, dvt))
        shape = torch.broadcast_shapes(v_wl.shape, v_bl.shape, dvt.shape)
        top = torch.clamp(v_bl, min=0.0).expand(shape).clone()
        h = self._stack_balance(v_wl, v_bl, dvt)
        # Illinois (modified regula falsi) on h(X) = I_access - I_pulldown, bracketed in [0, V_BL]: h falls with X
        a = torch.zeros(shape, dtype=torch.float64)
        b = top
        fa, fb = h(a).expand(shape).clone(), h(b).expand(shape).clone()
        was_left = was_right = torch.zeros(shape, dtype=torch.bool)      # the side the last step moved
        x = a
        for _ in range(_ITER):
            den = fa - fb
            nz = den != 0
            x = torch.where(nz, (a * (-fb) + b * fa) / torch.where(nz, den, 1.0), 0.5 * (a + b))
            x = torch.clamp(x, min=a, max=b)
            fx = h(x)
            left = fx > 0                      # root lies right of x: move a
            right = ~left
            fb = torch.where(left & was_left, 0.5 * fb, fb)
            fa = torch.where(right & was_right, 0.5 * fa, fa)
            a = torch.where(left, x, a)
            fa = torch.where(left, fx, fa)
            b = torch.where(left, b, x)
            fb = torch.where(left, fb, fx)
            was_left, was_right = left, right
        return x

    def _stack_balance(self, v_wl, v_bl, dvt):
        """h(X) = I_access(V_WL, V_BL, X; dvt) - I_pulldown(VDD, X, 0), equal bit for bit to `ekv_current`'s (tested)
        with fewer operations per step: the terms that do not depend on X computed once, (v / U_T) / 2 as
        v / (2 U_T) (exact: scaling by two commutes with rounding), the pull-down's 0-V source dropped."""
        acc, pd = self.access, self.pulldown
        g_acc = v_wl - acc.vt0 - dvt                                   # (V_G - V_T0 - dVt) of the access device
        g_pd = torch.as_tensor(self.vdd, dtype=torch.float64) - pd.vt0 - 0.0
        two_ut_a, two_ut_p = 2.0 * acc.ut, 2.0 * pd.ut                 # (v / U_T) / 2 == v / (2 U_T): exact

        def f(v):
            sp = torch.nn.functional.softplus(v)
            return sp * sp

        def h(x):
            vds = v_bl - x
            vp = (g_acc + acc.eta * vds) / acc.n
            i_acc = acc.i_spec * (f((vp - x) / two_ut_a) - f((vp - v_bl) / two_ut_a)) * (1.0 + acc.lam * vds)
            vp = (g_pd + pd.eta * x) / pd.n                            # V_S = 0: V_DS = X - 0 = X, V_P - 0 = V_P
            i_pd = pd.i_spec * (f(vp / two_ut_p) - f((vp - x) / two_ut_p)) * (1.0 + pd.lam * x)
            return i_acc - i_pd
        return h

    def current(self, v_wl, v_bl, dvt=0.0, dbeta=0.0) -> torch.Tensor:
        """Cell (bit-line discharge) current in A for word-line and bit-line voltages, with mismatch dvt (V) and
        dbeta (relative). Zero when V_BL <= 0 (the floor); leakage only when V_WL = 0."""
        return self.current_at_node(self.internal_node(v_wl, v_bl, dvt), dbeta)

    def current_at_node(self, x, dbeta=0.0) -> torch.Tensor:
        """`current` from the solved internal node x (V): the pull-down's current (A), clamped at 0, times
        (1 + dbeta)."""
        i = ekv_current(self.pulldown, self.vdd, x, 0.0)
        return (1.0 + torch.as_tensor(dbeta, dtype=torch.float64)) * torch.clamp(i, min=0.0)

    def draw_mismatch(self, shape, generator: torch.Generator | None = None, scale: float = 1.0):
        """Standard Pelgrom draws (dvt in V, dbeta relative) of the given shape, times `scale`."""
        scale = check_nonneg("scale", scale)
        z = torch.randn((2, *shape), generator=generator, dtype=torch.float64)
        return scale * self.sigma_vt * z[0], scale * self.sigma_beta * z[1]


def pelgrom_sigma(a: float, w: float, l: float) -> float:
    """sigma = A / sqrt(W L) (Pelgrom et al., JSSC 1989); A in V m (or m for current factor), W, L in m."""
    check_nonneg("A", a)
    check_positive("W", w)
    check_positive("L", l)
    return a / math.sqrt(w * l)


def nmos(P, w: float, l: float | None = None) -> Nmos:
    """EKV NMOS of width w (m) and length l (default l_access) with the constants of parameter set P."""
    l = P["l_access"] if l is None else l
    return Nmos(P["vt0_n"], P["kp_n"] * check_positive("w", w) / check_positive("l", l), P["slope_factor"],
                P["thermal_voltage"], P["dibl"], P["clm"])


def pmos(P, w: float, l: float | None = None) -> Nmos:
    """EKV PMOS of width w (m) and length l (default l_access), as magnitudes: evaluate with `pmos_current`.
    Threshold vt0_p and mobility mu_eff_p of P; slope factor, DIBL and CLM taken equal to the NMOS ones."""
    l = P["l_access"] if l is None else l
    return Nmos(P["vt0_p"], P["mu_eff_p"] * P["cox"] * check_positive("w", w) / check_positive("l", l),
                P["slope_factor"], P["thermal_voltage"], P["dibl"], P["clm"])


def pmos_current(dev: Nmos, vg, vd, vs, vdd: float) -> torch.Tensor:
    """Current (A) from source to drain of a PMOS with its bulk at vdd: the NMOS law on mirrored voltages."""
    m = lambda x: vdd - torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    return ekv_current(dev, m(vg), m(vd), m(vs))
