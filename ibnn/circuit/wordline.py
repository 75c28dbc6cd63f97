"""The word line as a waveform: WLDAC slew and settling through the diode-connected replica, the classify-cycle
timing it needs, the charge each cell really delivers in the window, and the on-time of every static current.

Circuit (constants in circuit.toml):

* One word-line node per row, capacitance C_WL = c_wl_per_cell * cols + k * c_replica_per_unit + c_dac_out (the
  cells' access gates, the k-wide replica, the DAC's output). When a code c > 0 is applied the binary-weighted PMOS
  sources switch on, I_DAC = c k I_LSB (a current source: its PMOS stays saturated, VDD - V_WL is well above its
  overdrive), and the replica sinks I_rep(V) = k I_cell(V, V_D = V):

      C_WL dV/dt = I_DAC - I_rep(V) (+ i_inj(t): the coupling from the falling bit-lines),   V(0) = 0.

  No buffer: the replica is the only pull-down, so a small code slews slowly (C_WL V / I_DAC) and then settles
  with tau = C_WL / g_rep. V_WL(c) depends only on I_DAC / k = c I_LSB, so every time of the rise scales as
  C_WL / k: the drive is sized by choosing k (`min_replica_ratio`).
* Settling time t_s(c): the first time after which the cell current with its drain at the precharged bit-line,
  I_cell(V_WL(t), VDD), is within wl_settle_lsb LSB of I_cell(V_final, VDD) (V rises monotonically). Exact, by
  quadrature of t(V) = C_WL int_0^V dv / (I_DAC - I_rep(v)) (the substitution w = -ln(V_f - v) removes the
  end-point singularity); the time-stepped waveform agrees (tests).
* Cycle (`CyclePlan`, 1 / f_classify): [t_wl_reset] codes latched, word lines at 0 | [t_lead] word lines rise
  while the precharge holds both bit-lines at VDD | [t_eval] precharge off, discharge window | [t_strobe]
  comparator decides; the word line is pulled to 0 through r_wl_reset from the window's end.
  settle="precharge" (the design): the WLDACs switch on with the input register, t_lead = t_allot = t_cycle -
  t_wl_reset - t_eval - t_strobe, so every active cell conducts against the precharge devices while its word line
  rises: charge drawn from VDD, int_0^t_lead I_cell(V_WL(t), VDD) dt. settle="discharge" (the alternative): the
  word line is enabled when the precharge releases and the window integrates the rising waveform, a 100x
  code-dependent gain (`Charges.q_window`), which a linear DAC cannot have.
* Per code (`Charges`): q_window = int_window I dt / (I_cell(V_f, VDD) t_eval) (the charge that decides, relative
  to the start-of-pulse current x t_eval the chip model uses), t_fight = int_0^t_lead I dt / I(V_f) (equivalent
  full-current time against the precharge), t_tail = int I dt / I(V_f) of the reset fall V_f exp(-t / (r_wl_reset
  C_WL)) (after the sampling edge: energy only), t_on = t_lead + t_eval (DAC on-time). The cell's drain is at VDD
  in all of them; in the window the bit-line's own drain law (ibnn.circuit.column) multiplies, as in the chip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .. import params as _params
from ..repro.device import elementwise_threads, torch_threads
from ..validate import check_choice, check_nonneg, check_positive, check_real
from .bitcell import BitCell
from .replica import word_line_voltage as replica_word_line_voltage
from .wldac import nominal_dac

SETTLE_MODES = ("precharge", "discharge")
COUPLING_DROP = 0.6   # V: mean bit-line drop at which the coupling slope a(c) is taken (a secant; notebook 02
#                      checks the linearisation against the exact waveform over the drops the network reaches)
_GRID = 4097          # V grid of the replica / cell tables for the time-stepped waveform (0.3 mV steps)
_GL_NODES = 160       # Gauss-Legendre nodes of the settling quadrature


@dataclass(frozen=True)
class CyclePlan:
    """Split of one classify cycle (s). See the module docstring."""

    t_cycle: float
    t_wl_reset: float
    t_eval: float
    t_strobe: float
    settle: str = "precharge"

    def __post_init__(self):
        for name in ("t_cycle", "t_wl_reset", "t_eval", "t_strobe"):
            check_positive(f"CyclePlan.{name}", getattr(self, name))
        check_choice("CyclePlan.settle", self.settle, SETTLE_MODES)
        if self.t_allot <= 0:
            raise ValueError(f"CyclePlan: t_wl_reset + t_eval + t_strobe = "
                             f"{self.t_wl_reset + self.t_eval + self.t_strobe:.3g} s leaves no settling time in "
                             f"t_cycle={self.t_cycle:.3g} s; accepted: a sum below t_cycle")

    @property
    def t_allot(self) -> float:
        """Time allotted to word-line settling (s): the cycle less reset, window and strobe."""
        return self.t_cycle - self.t_wl_reset - self.t_eval - self.t_strobe

    @classmethod
    def from_params(cls, P, settle: str = "precharge") -> "CyclePlan":
        """The plan of parameter set P (f_classify, t_wl_reset, t_eval, t_strobe)."""
        return cls(1.0 / P["f_classify"], P["t_wl_reset"], P["t_eval"], P["t_strobe"], settle)

    def as_dict(self) -> dict:
        """The plan's times (s) and its settle mode."""
        return {"t_cycle_s": self.t_cycle, "t_wl_reset_s": self.t_wl_reset, "t_allot_s": self.t_allot,
                "t_eval_s": self.t_eval, "t_strobe_s": self.t_strobe, "settle": self.settle}


@dataclass
class Charges:
    """Per-code charge and time factors of one word line and plan (arrays over codes 0..max; 0 at code 0)."""

    t_lead: float
    t_on: float
    q_window: np.ndarray
    t_fight: np.ndarray
    t_tail: np.ndarray
    t_settle: np.ndarray


class WordLine:
    """Word-line node of one row with replica ratio k (default P["replica_ratio"]) and its replica's mismatch
    (replica_dvt V, replica_dbeta relative); the row's cells are nominal, so i_final is the nominal cell at the
    row's (possibly shifted) V_final; cols defaults to P["array_cols"]."""

    def __init__(self, P: _params.ParamSet, replica_ratio: float | None = None, replica_dvt: float = 0.0,
                 replica_dbeta: float = 0.0, cols: int | None = None):
        P = _params.require(P)
        k = P["replica_ratio"] if replica_ratio is None else check_positive("replica_ratio", replica_ratio)
        self.rep_dvt = check_real("replica_dvt", replica_dvt, -0.5, 0.5)
        self.rep_db = check_real("replica_dbeta", replica_dbeta, -0.9, 10.0)
        self.P = P if k == P["replica_ratio"] else P.replace(replica_ratio=float(k))
        self.k, self.vdd = float(k), self.P["vdd"]
        self.cols = int(self.P["array_cols"] if cols is None else cols)
        with torch_threads(elementwise_threads()):
            self._build()

    def _build(self) -> None:
        """The DAC, the row's final voltages and the tables of replica and cell current (single-threaded: small
        elementwise tensors)."""
        self.cell = BitCell(self.P)
        self.dac = nominal_dac(self.P)
        self.c_node = self.P["c_wl_per_cell"] * self.cols + self.k * self.P["c_replica_per_unit"] + self.P["c_dac_out"]
        codes = torch.arange(self.dac.max_code + 1)
        self.codes = codes.numpy()
        self.i_dac = self.dac.dac_current(codes).numpy()
        self.v_final = replica_word_line_voltage(self.dac, torch.as_tensor(self.i_dac), self.rep_dvt,
                                                 self.rep_db).numpy()
        self.i_final = self.cell.current(torch.as_tensor(self.v_final), self.vdd).numpy()
        c = self.codes.astype(np.float64)
        self.i_lsb = float((c * self.i_final).sum() / (c * c).sum())       # as ibnn.circuit.cellmodel
        v = torch.linspace(0.0, self.vdd, _GRID, dtype=torch.float64)
        self._v = v.numpy()
        if self.rep_dvt == 0 and torch.equal(self.dac.grid_v, v):      # the nominal replica: the DAC's own solve
            self._i_rep = self.k * (1.0 + self.rep_db) * self.cell.current_at_node(self.dac.grid_node).numpy()
        else:
            self._i_rep = self._i_rep_exact(self._v)
        self._i_pre = self.cell.current(v, self.vdd).numpy()
        self._settled: dict = {}

    def _i_rep_exact(self, v: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(v, dtype=torch.float64)
        with torch_threads(elementwise_threads()):
            return self.k * (1.0 + self.rep_db) * self.cell.current(t, t, self.rep_dvt).numpy()

    # --- exact settling --------------------------------------------------------------------------------------
    def settle_voltage(self, tol_lsb: float) -> np.ndarray:
        """Per code the V_s at which I_cell(V_s, VDD) = I_cell(V_f, VDD) - tol_lsb I_LSB (V), by log-linear
        inversion of the 0.3-mV table of I_cell(V, VDD) (monotone in V); 0 where the final current is within
        tolerance of 0."""
        tol = check_positive("tol_lsb", tol_lsb) * self.i_lsb
        target = self.i_final - tol
        ok = target > 0
        li = np.log(np.maximum(self._i_pre, 1e-300))
        vs = np.interp(np.log(np.where(ok, target, 1.0)), li, self._v)
        return np.where(ok, np.minimum(vs, self.v_final), 0.0)

    def time_to(self, v_target: np.ndarray) -> np.ndarray:
        """Exact time (s) for each code's word line to rise from 0 to v_target[code] (< V_f): Gauss-Legendre
        quadrature of C_WL dv / (I_DAC - I_rep(v)) in w = -ln(V_f - v), all codes at once; 0 at code 0 or where
        v_target <= 0."""
        vt = np.asarray(v_target, dtype=np.float64)
        on = (self.codes > 0) & (vt > 0)
        if bool((vt[on] >= self.v_final[on]).any()):
            c = int(np.nonzero(on & (vt >= self.v_final))[0][0])
            raise ValueError(f"v_target[{c}]={vt[c]} must lie below V_final={self.v_final[c]} (the rise is "
                             f"asymptotic)")
        x, wgt = _gauss_legendre(_GL_NODES)
        vf = np.where(on, self.v_final, 1.0)[:, None]
        w0 = -np.log(vf)
        w1 = -np.log(vf - np.where(on, vt, 0.5)[:, None])
        w = 0.5 * (w1 - w0) * x[None, :] + 0.5 * (w1 + w0)
        v = vf - np.exp(-w)                                                          # (codes, nodes)
        f = self.c_node * (vf - v) / (self.i_dac[:, None] - self._i_rep_exact(v))
        return np.where(on, 0.5 * (w1 - w0)[:, 0] * (f * wgt[None, :]).sum(1), 0.0)

    def settle_times(self, tol_lsb: float | None = None) -> np.ndarray:
        """Settling time (s) of every code (0 at code 0) to tol_lsb (default wl_settle_lsb) LSB of cell current."""
        tol = self.P["wl_settle_lsb"] if tol_lsb is None else tol_lsb
        if tol not in self._settled:
            self._settled[tol] = self.time_to(self.settle_voltage(tol))
        return self._settled[tol].copy()

    # --- time-stepped waveform -------------------------------------------------------------------------------
    def waveform(self, t_end: float, i_inject=None, dt: float | None = None):
        """V_WL(t) of every code from V = 0 at t = 0 to t_end (classic RK4, fixed step), all codes at once.

        i_inject: optional callable t -> A added to the node current (e.g. bit-line coupling): a number, or an
        (m, 1) array for m waveforms stepped together. Returns (t (N,), V (codes, N), or (m, codes, N)) in s and V."""
        t_end = check_positive("t_end", t_end)
        g = np.gradient(self._i_rep, self._v)
        tau_min = self.c_node / float(g[self._v <= self.v_final.max() + 0.02].max())
        dt = min(tau_min / 4.0, t_end / 400.0) if dt is None else check_positive("dt", dt)
        n = int(math.ceil(t_end / dt))
        dt = t_end / n
        idac, on = self.i_dac, self.i_dac > 0

        def rhs(tk, v):
            inj = 0.0 if i_inject is None else i_inject(tk)
            return np.where(on, idac - np.interp(v, self._v, self._i_rep) + inj, 0.0) / self.c_node

        v = np.zeros(np.broadcast_shapes(np.shape(0.0 if i_inject is None else i_inject(0.0)), idac.shape))
        out = np.empty((*v.shape, n + 1))
        out[..., 0] = v
        for s in range(n):
            tk = s * dt
            k1 = rhs(tk, v)
            k2 = rhs(tk + dt / 2, v + dt / 2 * k1)
            k3 = rhs(tk + dt / 2, v + dt / 2 * k2)
            k4 = rhs(tk + dt, v + dt * k3)
            v = np.clip(v + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 0.0, self.vdd)
            out[..., s + 1] = v
        return np.linspace(0.0, t_end, n + 1), out

    def cell_current_pre(self, v: np.ndarray) -> np.ndarray:
        """I_cell(V_WL, V_BL = VDD) (A) by interpolation of the exact table (broadcast)."""
        return np.interp(v, self._v, self._i_pre)

    # --- charges of one plan ---------------------------------------------------------------------------------
    def coupling_capacitance(self) -> float:
        """Word line to all 2 x cols bit-lines (F): the gate-drain capacitance of both access devices of a cell."""
        return 2.0 * self.cols * self.P["c_ov_per_width"] * self.P["w_access"]

    def charges(self, plan: CyclePlan, t_lead: float | None = None, mean_drop: float = 0.0) -> Charges:
        """Charge factors of every code for `plan` (module docstring). t_lead: time the word line rises before
        the window (default t_allot for settle="precharge", 0 for "discharge"); mean_drop: mean drop (V) of all
        bit-lines over the window, which pulls the word line down by C_c dV/dt while the replica restores it."""
        return self.charges_at(plan, [mean_drop], t_lead)[0]

    def charges_at(self, plan: CyclePlan, mean_drops, t_lead: float | None = None) -> list[Charges]:
        """`charges` at each of `mean_drops` (V), their waveforms stepped together (each as `charges` alone gives)."""
        if not isinstance(plan, CyclePlan):
            raise ValueError(f"plan={plan!r} must be a CyclePlan")
        drops = [check_real("mean_drop", d, 0.0, self.vdd) for d in mean_drops]
        if t_lead is None:
            t_lead = plan.t_allot if plan.settle == "precharge" else 0.0
        t_lead = check_real("t_lead", t_lead, 0.0, plan.t_allot)
        i_c = np.array([[0.0 if d == 0 else -self.coupling_capacitance() * d / plan.t_eval] for d in drops])
        off = np.zeros_like(i_c)
        t, v = self.waveform(t_lead + plan.t_eval, lambda tk: i_c if tk >= t_lead else off)     # (m, codes, N)
        i = self.cell_current_pre(v)
        cum = np.concatenate([np.zeros((*i.shape[:2], 1)),
                              np.cumsum(0.5 * (i[..., 1:] + i[..., :-1]) * np.diff(t), axis=-1)], axis=-1)
        ifin = np.where(self.i_final > 0, self.i_final, 1.0)
        on = self.codes > 0
        out = []
        for cj, vj in zip(cum, v):
            q_lead = np.array([np.interp(t_lead, t, cj[c]) for c in range(len(self.codes))])
            out.append(Charges(t_lead=float(t_lead), t_on=float(t_lead + plan.t_eval),
                               q_window=np.where(on, (cj[:, -1] - q_lead) / (ifin * plan.t_eval), 0.0),
                               t_fight=np.where(on, q_lead / ifin, 0.0),
                               t_tail=np.where(on, self._tail_charge(vj[:, -1]) / ifin, 0.0),
                               t_settle=self.settle_times()))
        return out

    def _tail_charge(self, v_end: np.ndarray) -> np.ndarray:
        """Charge (C) of one cell while its word line falls from v_end as v_end exp(-t / (r_wl_reset C_WL))."""
        tau = self.P["r_wl_reset"] * self.c_node
        s = np.linspace(0.0, 30.0 * tau, 3001)
        return np.trapezoid(self.cell_current_pre(v_end[:, None] * np.exp(-s / tau)[None, :]), s, axis=1)


@lru_cache(maxsize=4)
def _gauss_legendre(n: int):
    return np.polynomial.legendre.leggauss(n)


def min_replica_ratio(P: _params.ParamSet, t_allot: float, tol_lsb: float | None = None,
                      corner_sigma: float = 0.0) -> float:
    """Smallest (real) replica ratio k for which every code settles within t_allot (s), for a row whose replica is
    corner_sigma sigmas weak (dVt_rep = corner_sigma sigma_vt_cell / sqrt(k): slower rise to a higher V_final;
    0 = the nominal row).

    For a fixed replica t_s(c; k) = (C0 + k c_rep) / k * J(c), C0 = cells + DAC output, so k = C0 / (t_allot /
    J_max - c_rep); with a corner the replica's sigma depends on k: fixed-point iteration. A ValueError when even
    k -> infinity (t_s -> c_rep J_max) cannot settle in t_allot."""
    t_allot = check_positive("t_allot", t_allot)
    corner_sigma = check_nonneg("corner_sigma", corner_sigma)
    k = _min_k_fixed(P, t_allot, tol_lsb, WordLine(P))
    for _ in range(12 if corner_sigma > 0 else 0):
        dvt = corner_sigma * P["sigma_vt_cell"] / math.sqrt(k)
        k_new = _min_k_fixed(P, t_allot, tol_lsb, WordLine(P, replica_ratio=k, replica_dvt=dvt))
        if abs(k_new - k) < 1e-4 * k:
            return k_new
        k = k_new
    return k


def _min_k_fixed(P, t_allot, tol_lsb, wl: WordLine) -> float:
    j_max = float((wl.settle_times(tol_lsb) * wl.k / wl.c_node).max())
    c_rep = P["c_replica_per_unit"]
    den = t_allot / j_max - c_rep
    if den <= 0:
        raise ValueError(f"t_allot={t_allot:.3g} s is out of reach: even an infinite replica ratio needs "
                         f"{c_rep * j_max:.3g} s; accepted: t_allot > {c_rep * j_max:.3g} s")
    return (wl.c_node - wl.k * c_rep) / den


@dataclass
class DriveTables:
    """What the chip and the energy model need from the word line of one parameter set, per code 0..max:
    q (window charge factor, 1 at code 0: a row off only leaks, all window long), a (1/V: relative loss of window
    charge per volt of mean bit-line drop, the coupling's secant slope at COUPLING_DROP), t_fight, t_tail (s),
    t_settle (s), v_final (V), i_dac (A); t_on (s), t_lead (s), c_node (F), plan."""
    q: np.ndarray
    a: np.ndarray
    t_fight: np.ndarray
    t_tail: np.ndarray
    t_settle: np.ndarray
    v_final: np.ndarray
    i_dac: np.ndarray
    t_on: float
    t_lead: float
    c_node: float
    plan: CyclePlan


@_params.cached_per_set(16)
def drive_tables(P: _params.ParamSet) -> DriveTables:
    """The nominal row's DriveTables of P (settle="precharge"), cached per parameter values within the process."""
    wl, plan = WordLine(P), CyclePlan.from_params(P)
    ch, ch1 = wl.charges_at(plan, [0.0, COUPLING_DROP])
    q1 = ch1.q_window
    q = ch.q_window.copy()
    a = np.where(q > 0, (1.0 - q1 / np.where(q > 0, q, 1.0)) / COUPLING_DROP, 0.0)
    q[0] = 1.0
    return DriveTables(q=q, a=a, t_fight=ch.t_fight, t_tail=ch.t_tail, t_settle=ch.t_settle, v_final=wl.v_final,
                       i_dac=wl.i_dac, t_on=ch.t_on, t_lead=ch.t_lead, c_node=wl.c_node, plan=plan)


def gated_drive_tables(P: _params.ParamSet, replica_ratio: float, corner_sigma: float | None = None) -> DriveTables:
    """DriveTables of a gated drive (an operating-point alternative, notebook 06): a replica `replica_ratio`
    cells wide whose WLDACs are enabled only as late as the slowest code of a corner_sigma-weak row (default
    wl_settle_corner_sigma) still settles before the window: t_lead = that row's longest settling time (<= t_allot).
    The window charge q and coupling a are those of the nominal row at that t_lead (no coupling: a = 0 here)."""
    P = _params.require(P)
    plan = CyclePlan.from_params(P)
    corner = P["wl_settle_corner_sigma"] if corner_sigma is None else check_nonneg("corner_sigma", corner_sigma)
    k = check_positive("replica_ratio", replica_ratio)
    weak = WordLine(P, replica_ratio=k, replica_dvt=corner * P["sigma_vt_cell"] / math.sqrt(k))
    t_lead = min(float(weak.settle_times().max()), plan.t_allot)
    wl = WordLine(P, replica_ratio=k)
    ch = wl.charges(plan, t_lead=t_lead)
    q = ch.q_window.copy()
    q[0] = 1.0
    return DriveTables(q=q, a=np.zeros_like(q), t_fight=ch.t_fight, t_tail=ch.t_tail, t_settle=ch.t_settle,
                       v_final=wl.v_final, i_dac=wl.i_dac, t_on=ch.t_on, t_lead=ch.t_lead, c_node=wl.c_node,
                       plan=plan)
