"""Notebook 09's driver: the paper-consistent fit (local drop models, screening, parallel fits, verification and
refinement), the records of the Sobol analysis, and the short list of unknowns; each a function the notebook
calls.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

from ..published import PAPER
from .claims_fit import band_holds, fitted_values_text
from .engine import DaskEngine, run_sweep
from .jointfit import choice_combinations, joint_fit
from .keys import point_seed
from .paperfit import DROP_TOL, ModelPoint, band_figures, paper_bands, rank_screen, verify
from .paperpoint import CHIP_FREE
from .space import Dim, dims_from_params
from .surrogate import measure_local

DROPS = ("drop_naive", "drop_corrected")


def ranged_dims(P, names: Sequence[str]) -> tuple[list[Dim], list[str]]:
    """(Dims of the names that are ranged parameters of P, the names that are not: skipped and reported), so a
    list written for one parameter set survives another's renames."""
    ranged = set(P.ranged())
    keep = [n for n in names if n in ranged]
    return dims_from_params(P, keep), [n for n in names if n not in ranged]


def run_fit(energy, measure, dims: Sequence[Dim], choices: Mapping[str, Sequence],
            selections: Mapping[str, Sequence], engine, *, dropper=None, drop: str = "corrected",
            silicon_factor: float = 2.0,
            n_fits: int = 2, refine: int = 1, shrink: float = 0.05, step: float = 0.25, seed: int = 0,
            one_sided: bool = False, cache_dir=None, code_version: str | None = None) -> dict:
    """The coarse-to-fine fit (ibnn.explore.paperfit), on common random numbers throughout:

    1. the real model (`measure`: drops on chips, with the per-chip correction, and every energy figure) at the
       defaults: the drop's interval half-width, the band tolerance the fit uses before it measures its point;
    2. screen every combination of choices x selections at the defaults (`energy`: the real energy, ops, area
       and silicon figures; the drop measured at the defaults);
    3. for the n_fits least violating: local models of every band figure around the combination (`surrogate.
       measure_local` on `energy`: central differences of `step` range units, ln y for the positive figures),
       the drop measured there by `measure` (a constant of the model); the closest point where every band holds
       (or the least violating one) on those models (`joint_fit`, scipy least_squares + SLSQP); with `dropper`
       (a PaperPoint measuring drops, at the fit's resolution) the same sweep of the dropper gives every model,
       the drop's included (it moves along the circuit parameters among `dims` only, the ones a chip reads);
       one_sided: forward differences along those chip parameters (each of their points rebuilds a chip: one
       point each instead of two; `surrogate.measure_local` states the error), central ones along the rest;
    4. verify the best with `measure`; re-centre the models at the fitted point and refit (`refine` times).
    On a dask engine the one-point sweeps (the defaults, each centre's drop) run beside the many-point ones
    (`together`); a round's verification is the next round's centre, measured beside its local models.
    The figures reported under the fit are always the verified ones, never the models'.
    Returns a JSON-ready record (every round, the verified figures and claims)."""
    sweep = {"cache_dir": cache_dir, "code_version": code_version}
    combos = choice_combinations(choices)
    at_defaults, at_combos = together(
        engine, lambda: run_sweep(measure, [{}], engine=engine, seed=seed, seed_keys=(), desc="defaults",
                                  **sweep).results[0],
        lambda: run_sweep(energy, combos, engine=engine, seed=seed, seed_keys=(), desc="screen", **sweep).results)
    half = 0.5 * (at_defaults[f"drop_{drop}_hi"] - at_defaults[f"drop_{drop}_lo"])
    kw = {"drop": drop, "silicon_factor": silicon_factor, "drop_halfwidth": half, "shrink": shrink}
    drops = {k: at_defaults[k] for k in DROPS}
    screened = rank_screen(combos, [{**f, **drops} for f in at_combos], selections, kw)
    top = screened[:n_fits]
    centres = [dict(s.choices) for s in top]
    rounds, last = [], None
    for r in range(refine + 1):
        fits = [_fit_one(energy, measure, dropper, dims, s, c, kw, step, engine, seed, sweep, one_sided)
                for s, c in zip(top, centres)]
        fits.sort(key=lambda f: (not f["fit"]["feasible"], f["fit"]["best"]["distance"] if f["fit"]["feasible"]
                                 else f["fit"]["best"]["violation"]))
        if last is not None:      # the previous best is this round's centre: measured with its local models
            rounds.append(_verified_round(measure, last, kw, engine, seed, sweep, drop))
        last = (r, fits, step)
        centres = [f["fit"]["best"]["point"] for f in fits]
        top = [f["screened"] for f in fits]
        step = step / 2
    rounds.append(_verified_round(measure, last, kw, engine, seed, sweep, drop))
    return {"bands": {"drop": drop, "silicon_factor": silicon_factor, "drop_halfwidth_in_fit": half,
                      "shrink_in_fit": shrink},
            "local_models": {"drop_modelled": dropper is not None, "one_sided_chip_dimensions": bool(one_sided)},
            "at_defaults": at_defaults,
            "screened": [{"choices": s.choices, "selection": s.selection, "violation_at_defaults": s.violation}
                         for s in screened], "n_fitted": len(top), "rounds": rounds,
            "best": rounds[-1]["best"], "verified": rounds[-1]["verified"]}


def _fit_one(energy, measure, dropper, dims, scr, centre, kw, step, engine, seed, sweep, one_sided=False) -> dict:
    """Local models around `centre` for one screened combination, and the fit on them. With a `dropper` and
    chip dimensions among `dims`: one sweep of the dropper gives every band figure's model (its chip 0 is the
    energy point's chip, so the energy figures are the ones `energy` gives at fit_chips = 1; the drop's slope
    along a dimension no chip reads is exactly 0, its run being the centre's); else the energy figures from
    `energy` and the drop a constant measured at the centre by `measure`."""
    names, logs = band_figures(scr.selection, kw["drop"])
    drop_name = f"drop_{kw['drop']}"
    chip_dims = [d for d in dims if energy.P.entry(d.name).section == "circuit" and d.name not in CHIP_FREE]
    fwd = [d.name for d in chip_dims] if one_sided else []
    if dropper is not None and chip_dims:
        models = measure_local(dropper, names, dims, centre, step, engine, seed=seed, log=logs, one_sided=fwd,
                               **sweep)
        const, drop_c, drop_res = {}, models[drop_name].y0, "fit"
    else:
        models, at_c = together(
            engine, lambda: measure_local(energy, [n for n in names if n != drop_name], dims, centre, step, engine,
                                          seed=seed, log=logs, one_sided=fwd, **sweep),
            lambda: run_sweep(measure, [centre], engine=engine, seed=seed, seed_keys=(), desc="drop at centre",
                              **sweep).results[0])
        const, drop_c, drop_res = {drop_name: at_c[drop_name]}, at_c[drop_name], "verify"
    point = ModelPoint(models, const)
    r = joint_fit(point, dims, paper_bands(**scr.selection, **kw), fixed=dict(scr.choices), engine="inprocess",
                  n_starts=2, seed=seed, maxiter=200, ftol=1e-8)
    return {"screened": scr, "choices": scr.choices, "selection": scr.selection, "changed": scr.changed,
            "fit": r.as_dict(), "models": {k: m.as_dict() for k, m in models.items()},
            "drop_at_centre": drop_c, "drop_at_centre_resolution": drop_res}


def together(engine, *calls) -> list:
    """The results of the zero-argument calls (each a sweep), in order: submitted at once from threads where
    the engine is a dask one (a one-point sweep then does not leave the other workers idle), one after the
    other otherwise (the in-process engine's caches are not for threads)."""
    if not isinstance(engine, DaskEngine) or len(calls) < 2:
        return [c() for c in calls]
    with ThreadPoolExecutor(len(calls)) as ex:
        return [f.result() for f in [ex.submit(c) for c in calls]]


def _verified_round(measure, last, kw, engine, seed, sweep, drop) -> dict:
    """The record of round `last` = (r, fits, step), its best point measured by the real model."""
    r, fits, step = last
    best = fits[0]
    ver = verify(measure, best["fit"]["best"]["point"], best["selection"], kw, engine, seed=seed, **sweep)
    return _round_record(r, fits, ver, step, drop)


def _round_record(r: int, fits: list, ver: dict, step: float, drop: str) -> dict:
    best = fits[0]
    return {"round": r, "best": {**best["fit"]["best"], "feasible": best["fit"]["feasible"],
                                 "choices": best["choices"], "changed_choices": best["changed"],
                                 "selection": best["selection"], "n_points": best["fit"]["n_points"]},
            "verified": ver, "step": step, "models": best["models"],
            "model_figures": best["fit"]["best"]["figures"],
            "alternatives": [{"choices": f["choices"], "selection": f["selection"], "feasible": f["fit"]["feasible"],
                              "distance": f["fit"]["best"]["distance"], "violation": f["fit"]["best"]["violation"]}
                             for f in fits]}


def moved_parameters(best: Mapping[str, Any], P) -> list[dict]:
    """The parameters the fit moved, with default, fitted value, distance (range units), inside the cited
    range or not, unit and kind."""
    out = []
    for m in best["moves"]:
        if m["moved"]:
            e = P.entry(m["name"])
            out.append({**m, "unit": e.unit, "kind": e.kind})
    return sorted(out, key=lambda m: -abs(m["z"]))


def unknowns(sobol_dict: Mapping[str, Any], fit: Mapping[str, Any], threshold: float = 0.1) -> list[dict]:
    """The short list of what the paper would have had to publish: every parameter whose total Sobol index on
    some output has its lower interval end above `threshold`, every parameter the fit moved, and every
    operating-point choice and selection the fit changed or needed. Sorted by largest total index."""
    rows: dict[str, dict] = {}
    for out, ix in sobol_dict["indices"].items():
        for name, v in ix.items():
            if v["ST"] - v["ST_conf"] > threshold:
                r = rows.setdefault(name, {"name": name, "why": [], "max_ST": 0.0})
                r["why"].append(f"total Sobol index {v['ST']:.2f} +- {v['ST_conf']:.2f} on {out}")
                r["max_ST"] = max(r["max_ST"], v["ST"])
    for m in fit["best"]["moves"]:
        if m["moved"]:
            r = rows.setdefault(m["name"], {"name": m["name"], "why": [], "max_ST": 0.0})
            r["why"].append(f"moved by the fit: {m['z']:+.2f} ranges ({'inside' if m['inside'] else 'OUTSIDE'} "
                            f"its cited range)")
    for k in fit["best"]["changed_choices"]:
        rows[k] = {"name": k, "why": [f"operating-point choice the fit set to {fit['best']['choices'][k]!r}"],
                   "max_ST": 0.0}
    for k, v in fit["best"]["selection"].items():
        rows[f"selection:{k}"] = {"name": k, "why": [f"convention the claims need: {v!r}"], "max_ST": 0.0}
    return sorted(rows.values(), key=lambda r: -r["max_ST"])


#: The least out-of-sample variance fraction (leave-one-out q2) at which an output's indices are taken from its
#: fitted surface (`emulated`) rather than from the direct Saltelli design.
Q2_MIN = 0.9


def resolved_sobol(direct: Mapping[str, Any], emulated: Mapping[str, Any], q2_min: float = Q2_MIN) -> dict:
    """Per output, the indices the record relies on: the emulated ones (`emulated.EmulatedSobol.as_dict`) where
    the output's surface predicts at least q2_min of its variance for points it was not fitted on, else the
    direct ones (`sobol_summary`); "source" says which, with the surface's q2 and the Saltelli size."""
    out: dict = {"indices": {}, "ranking": {}, "source": {}}
    for o in direct["indices"]:
        surf = emulated.get("surfaces", {}).get(o)
        use = surf is not None and surf["q2"] >= q2_min
        src = emulated if use else direct
        out["indices"][o], out["ranking"][o] = src["indices"][o], src["ranking"][o]
        out["source"][o] = {"source": "emulated" if use else "direct", "n_base": src["n_base"],
                            "n_points": src["n_points"], "q2": None if surf is None else surf["q2"]}
    return out


def sobol_summary(sobol_result) -> dict:
    """as_dict of a SobolResult plus, per output, the inputs ranked by total index."""
    d = sobol_result.as_dict()
    d["ranking"] = {o: sobol_result.ranking(o, "ST") for o in sobol_result.indices}
    return d


def resolution_record(res) -> dict:
    """A Resolution as a dict, with the drop's Monte-Carlo size spelled out."""
    r = dict(vars(res)) if not hasattr(res, "__dataclass_fields__") else {k: getattr(res, k)
                                                                          for k in res.__dataclass_fields__}
    r["chip_images"] = r["n_chips"] * r["n_images"]
    return r


def with_resolution(point, res):
    """A PaperPoint like `point` at another Resolution (same parameter set, network and data)."""
    return type(point)(point.P, point.folded, point.data, res, point.drops, point.silicon, point.peak)



SOBOL_OUTPUTS = ("drop_naive", "energy_per_inference_J", "tops_per_w_network_mac2", "energy_ratio")
#: The outputs that get a surface (ibnn.explore.emulated): every one. The energy-type ones are deterministic on
#: common random numbers; the drop counts images, and its surface is used only where its leave-one-out error says
#: it carries the drop through that Monte-Carlo noise (`resolved_sobol`).
EMULATED_OUTPUTS = SOBOL_OUTPUTS
#: Fitted as y, not ln y: a drop is signed and near zero (its logarithm would magnify its noise where it is small).
LINEAR_SURFACE = ("drop_naive",)


def joint_record(fit: Mapping[str, Any], P) -> dict:
    """The "joint_fit" record of results/09_joint_fit.json: the combination, the parameters moved (default,
    fitted value, distance, inside the cited range), the distance, and each claim under the fit as MEASURED at
    the fitted point (the five bands plus the naive drop, with the ledger's tolerance rule), with a summary."""
    best, ver = fit["best"], fit["verified"]
    figs = ver["figures"]
    claims = {k: dict(v) for k, v in ver["claims"].items()}
    half = 0.5 * (figs["drop_naive_hi"] - figs["drop_naive_lo"])
    tol = DROP_TOL + half
    claims["accuracy_drop_naive"] = {"figure": "drop_naive", "value": figs["drop_naive"],
                                     "target": PAPER["accuracy_drop"], "rule": "equal", "tolerance": tol,
                                     "holds": abs(figs["drop_naive"] - PAPER["accuracy_drop"]) <= tol,
                                     "miss": max(0.0, abs(figs["drop_naive"] - PAPER["accuracy_drop"]) - tol)}
    rec = {"feasible_on_models": best["feasible"], "holds_measured": all(c["holds"] for c in claims.values()),
           "distance": best["distance"], "choices": best["choices"], "changed_choices": best["changed_choices"],
           "selection": best["selection"], "moved": moved_parameters(best, P),
           "n_moved_outside": sum(not m["inside"] for m in moved_parameters(best, P)),
           "claims": claims, "figures": figs, "point": best["point"]}
    rec["summary"] = fitted_values_text(rec)
    return rec


def unsearched_choices(measure, joint: Mapping[str, Any], clocks_hz: Sequence[float], clock_fit_hz: float,
                       n_on_array: int, seed: int = 0) -> dict:
    """The JETCAS choices the fit leaves as built, measured at the fitted point (`joint`: `joint_record`).

    The classify clock (it sets the cycle's word-line time, `circuit.wordline.CyclePlan`, and the throughput), at
    the fit's clock and each of clocks_hz, on the verification's chips, images and noise (the engine's common seed
    of `seed`, `keys.point_seed`: the rows are paired, and the fit's row is the verification): every claim's figure,
    whether it would hold under the fitted point's tolerance rule, and the claims some other clock makes hold where
    the fit's does not. The hidden-layer input code applies only to a network with more than one on-array layer."""
    rows = []
    for f in sorted({float(clock_fit_hz), *(float(c) for c in clocks_hz)}):
        point = {**joint["point"], "clock": f}
        figs = measure(point, point_seed(point, seed, ()))
        rows.append({"clock_Hz": f, "claims": {cid: {"value": figs[c["figure"]], "holds": band_holds(
            c["rule"], c["target"], figs[c["figure"]], c["tolerance"])} for cid, c in joint["claims"].items()}})
    at_fit = next(r for r in rows if r["clock_Hz"] == float(clock_fit_hz))["claims"]
    rescued = sorted({cid for r in rows for cid, c in r["claims"].items() if c["holds"] and not at_fit[cid]["holds"]})
    return {"clock": rows, "clock_at_fit_Hz": float(clock_fit_hz), "claims_another_clock_makes_hold": rescued,
            "hidden_code": {"on_array_layers": int(n_on_array), "applies": int(n_on_array) > 1}}
