"""Checks and tables of notebook 02: the parameter table, the closed-form discharge against the ODE of the exact
per-cell currents (over every line a workload produces), the decision error against the dot-product margin, and
the word-line, replica, comparator, read-disturb and noise summaries the results record."""
from __future__ import annotations

import numpy as np
import torch

from ..repro.device import elementwise_threads, torch_threads
from ..validate import check_int, check_positive
from . import comparator as K
from . import disturb, noise
from .column import discharge, discharge_ode
from .replica import cell_current_change, replica_sigmas, shift_per_dvt
from .wldac import WLDAC
from .wordline import CyclePlan, WordLine, min_replica_ratio


def fmt(x) -> str:
    """A number in 4 significant digits."""
    return f"{x:.4g}"


def param_table(P, section: str) -> str:
    """Markdown table of one section of the parameter set: name, value, unit, kind, source (formula), range."""
    lines = ["| name | value | unit | kind | source (formula) | range |", "|---|---|---|---|---|---|"]
    for e in P.table(section):
        src = (f"= `{e['formula']}`; " if "formula" in e else "") + e["source"]
        rng = f"{fmt(e['low'])} .. {fmt(e['high'])}" if "low" in e else ""
        lines.append(f"| {e['name']} | {fmt(e['value'])} | {e['unit']} | {e['kind']} | {src.replace('|', '/')} | "
                     f"{rng} |")
    return "\n".join(lines)


def tabulated(currents_on_grid: torch.Tensor, vdd: float):
    """I(V) (A) by linear interpolation of currents tabulated on a uniform grid 0..vdd (the last axis)."""
    n = currents_on_grid.shape[-1] - 1
    step = check_positive("vdd", vdd) / n

    def i_of_v(v):
        t = (torch.as_tensor(v, dtype=torch.float64) / step).clamp(0, n - 1e-9)
        k = t.floor().long()
        lo = torch.gather(currents_on_grid, -1, k[..., None])[..., 0] if currents_on_grid.dim() > 1 \
            else currents_on_grid[k]
        hi = torch.gather(currents_on_grid, -1, (k + 1)[..., None])[..., 0] if currents_on_grid.dim() > 1 \
            else currents_on_grid[k + 1]
        return lo + (t - k) * (hi - lo)
    return i_of_v


def error_vs_margin(decisions, dot, edges) -> np.ndarray:
    """Decision error rate per bin of |dot - theta| (theta = 0 here): decisions (n_chips, B, C) against
    sign(dot) (B, C), bins [edges[i], edges[i+1]); NaN where a bin is empty."""
    m = dot.abs()
    ideal = torch.where(dot >= 0, 1, -1)
    wrong = (decisions.double() != ideal[None]).double()
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (m >= a) & (m < b)
        out.append(float(wrong[:, sel].mean()) if int(sel.sum()) else float("nan"))
    return np.array(out)


def line_code_counts(codes, weights, max_code: int) -> torch.Tensor:
    """(B, cols, 2, codes) float64: how many cells at each code pull BL ([..., 0, :], weight -1) and BLB
    ([..., 1, :], weight +1) of every column, for row codes (B, R) and +-1 weights (R, cols)."""
    c = torch.as_tensor(codes).long()
    w = torch.as_tensor(weights)
    onehot = torch.nn.functional.one_hot(c, max_code + 1).to(torch.float64)          # (B, R, codes)
    neg = torch.einsum("brk,rc->bck", onehot, (w < 0).to(torch.float64))
    pos = torch.einsum("brk,rc->bck", onehot, (w > 0).to(torch.float64))
    return torch.stack([neg, pos], dim=2)


def discharge_validation(cell, v_wl_codes, law, counts, c_bl: float, t_eval: float, n_grid: int = 600,
                         steps: int = 1500) -> dict:
    """The closed form (column.discharge with `law`) against RK4 integration of the exact summed currents
    I(V_BL) = sum_c counts[c] I_cell(V_WL(c), V_BL) of nominal cells, for many lines at once.

    counts: (L, codes) cells per code on each line; v_wl_codes: (codes,) V_WL of each code (code 0: leakage).
    Returns {"drop_ode": (L,) V, "err": closed - ode (L,) V}."""
    vdd = float(cell.vdd)
    grid = torch.linspace(0.0, vdd, n_grid + 1, dtype=torch.float64)
    i_grid = cell.current(torch.as_tensor(v_wl_codes)[None, :], grid[:, None])          # (G, codes)
    table = torch.as_tensor(counts, dtype=torch.float64) @ i_grid.T                       # (L, G)
    i_of_v, n_lines = tabulated(table, vdd), table.shape[0]

    def i_lines(v):                        # the ODE starts from one VDD: every line from the same voltage
        return i_of_v(v.expand(n_lines))
    with torch_threads(elementwise_threads()):
        v = discharge_ode(i_lines, c_bl, t_eval, vdd, check_int("steps", steps, 1))
    closed = discharge(table[:, -1] * t_eval / c_bl, law)
    return {"drop_ode": (vdd - v).numpy(), "err": (closed - v).numpy()}


def ode_summary(drop: np.ndarray, err: np.ndarray, edges=(0.0, 0.3, 0.6, 0.9, 1.2)) -> list[dict]:
    """Largest absolute and relative error of the closed form per bin of the ODE's drop."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (drop >= lo) & (drop < hi)
        if m.any():
            out.append({"drop_lo_V": lo, "drop_hi_V": hi, "n_lines": int(m.sum()),
                        "max_abs_err_V": float(np.abs(err[m]).max()),
                        "max_rel_err": float((np.abs(err[m]) / np.maximum(drop[m], 1e-3)).max())})
    return out


def wl_settling_record(P) -> dict:
    """The word line of P: settling times of every code for the nominal row and for the corner row (replica
    wl_settle_corner_sigma sigma weak) against the time the cycle allots, and the smallest replica ratios."""
    plan = CyclePlan.from_params(P)
    k = P["replica_ratio"]
    corner = P["wl_settle_corner_sigma"]
    nominal = WordLine(P).settle_times()
    weak = WordLine(P, replica_dvt=corner * P["sigma_vt_cell"] / np.sqrt(k)).settle_times()
    return {"codes": list(range(1, len(nominal))), "t_settle_s": [float(x) for x in nominal[1:]],
            "t_settle_corner_s": [float(x) for x in weak[1:]], "t_allotted_s": plan.t_allot,
            "replica_ratio": k, "criterion_lsb": P["wl_settle_lsb"], "corner_sigma": corner,
            "replica_ratio_min": min_replica_ratio(P, plan.t_allot),
            "replica_ratio_min_corner": min_replica_ratio(P, plan.t_allot, corner_sigma=corner),
            "all_within": bool((nominal[1:] <= plan.t_allot).all() and (weak[1:] <= plan.t_allot).all()),
            "plan": plan.as_dict()}


def replica_record(P, codes=(1, 4, 16, 31), ratios=None) -> dict:
    """Replica mismatch per replica ratio: sigma(dVt), sigma(dbeta), dV_WL / dVt and the relative change of a
    cell's current at +1 sigma of each, per code."""
    out = {}
    for k in ratios or (4.0, P["replica_ratio"]):
        dac = WLDAC(P.replace(replica_ratio=float(k)))
        sv, sb = replica_sigmas(P, k)
        c = torch.as_tensor(codes)
        out[f"k{k:g}"] = {"replica_ratio": float(k), "sigma_vt_V": sv, "sigma_beta": sb, "codes": list(codes),
                          "shift_per_dvt": shift_per_dvt(dac, c).tolist(),
                          "plus1sigma_dvt_rel": cell_current_change(dac, c, dvt=sv).tolist(),
                          "plus1sigma_dbeta_rel": cell_current_change(dac, c, dbeta=sb).tolist()}
    return out


def comparator_record(P, v_cm_observed) -> dict:
    """The comparator at the observed common modes: each pair's integration limit, the fraction of decisions
    outside it, and the offset sigma of each pair and of the rail-to-rail comparator on a common-mode grid."""
    lim = K.integration_limits(P)
    cm = np.asarray(v_cm_observed, dtype=np.float64).ravel()
    grid = np.linspace(0.1, P["vdd"], 23)
    pn, pp = K.strongarm_phase1(P, grid, "nmos"), K.strongarm_phase1(P, grid, "pmos")
    both = K.complementary_offset(pn, pp)
    return {**lim, "fraction_below_nmos_limit": float((cm < lim["nmos_min_cm_V"]).mean()),
            "fraction_above_pmos_limit": float((cm > lim["pmos_max_cm_V"]).mean()),
            "cm_percentiles_V": {str(q): float(np.percentile(cm, q)) for q in (0.1, 1, 5, 50, 95, 99.9)},
            "grid_V": grid.tolist(), "sigma_nmos_V": pn.sigma_offset.tolist(), "sigma_pmos_V": pp.sigma_offset.tolist(),
            "sigma_rail_to_rail_V": both.tolist(), "t_int_nmos_s": pn.t_int.tolist(), "t_int_pmos_s": pp.t_int.tolist()}


def disturb_record(P, v_wl_max: float, v_bl_min_observed: float, margin_sigma: float = 5.0) -> dict:
    """Read disturb at the highest word line and the lowest observed bit-line: the SNM there, the hold SNM, the
    lowest bit-line that keeps margin_sigma x sigma_vt_cell of margin, and the swing that leaves."""
    margin = margin_sigma * P["sigma_vt_cell"]
    floor = disturb.bitline_floor(P, v_wl_max, margin)
    return {"v_wl_max_V": v_wl_max, "v_bl_min_observed_V": v_bl_min_observed,
            "snm_at_observed_V": disturb.snm(P, v_wl_max, v_bl_min_observed, P["vdd"]).q_high,
            "snm_hold_V": disturb.snm(P, 0.0, P["vdd"], P["vdd"]).q_high, "margin_V": margin,
            "margin_sigma": margin_sigma, "bitline_floor_V": floor, "swing_budget_V": P["vdd"] - floor}


def noise_record(P, drops, cell, v_wl) -> dict:
    """Physical temporal noise beside the comparator's: kT/C, shot noise of the observed drops, the excess factor
    at a few word-line voltages and the decision noise (median and 95th percentile over the observed pairs)."""
    d = np.asarray(drops, dtype=np.float64)
    tot = noise.decision_noise_sigma(P, d[..., 0], d[..., 1])
    phys = noise.decision_noise_sigma(P, d[..., 0], d[..., 1], comparator=0.0)
    return {"ktc_sigma_per_line_V": noise.ktc_sigma(P), "shot_sigma_at_0p6V_drop_V":
            float(noise.discharge_noise_sigma(P, 0.6)), "excess_factor_at_v_wl": {
                f"{float(v):.3f}": float(f) for v, f in zip(v_wl, noise.noise_excess_factor(cell, v_wl))},
            "decision_sigma_median_V": float(np.median(tot)), "decision_sigma_p95_V": float(np.percentile(tot, 95)),
            "physical_sigma_median_V": float(np.median(phys)), "comparator_sigma_V": P["comp_noise_sigma"]}
