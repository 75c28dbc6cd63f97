"""The claims ledger's second column, "paper-consistent fit": each of the paper's claims under the fitted parameter
set of notebook 09 (results/09_joint_fit.json, key "joint_fit"), with its own holds, beside the ledger's "cited
defaults" column, and the fitted values with their distances from the defaults.

Two ways in, for the ledger of `ibnn.repro.claims` (a room above this one: it imports this module, not the other
way round):
* `claim_specs()`: keyword arguments of `ibnn.repro.claims.Claim`, one per claim, reading 09_joint_fit; the
  ledger wraps them in a Section and adds its factory to SECTION_FACTORIES, e.g.
  ``Section(FIT_SECTION, FIT_TITLE, tuple(Claim(**k) for k in claims_fit.claim_specs()))``.
* `second_column(rows, results)`: the ledger's evaluated rows of the paper's section with a "fit" entry added
  (reproduced, tolerance, holds under the fit), so claims.json rows carry both columns.
`fit_rows(results)` gives the rows of the fit alone, in the ledger's row format (ROW_KEYS).

Every number is read from results; the tolerances are the ones the fit was verified with (the ledger's rules:
half a unit of the quoted digit, plus the drop's bootstrap half-width at the verification resolution).
"""
from __future__ import annotations

from typing import Mapping

from ..published import PAPER, PAPER_WORDS

STEM = "09_joint_fit"
FIT_SECTION = "paper_fit"
FIT_TITLE = "Under the paper-consistent fit (notebook 09): the claims at the fitted parameter set"
FIT_COLUMN = "paper-consistent fit"
#: claim id -> (key under joint_fit.claims, unit, scale to the ledger's unit, paper figure in that unit)
CLAIMS = {
    "accuracy_drop": ("accuracy_drop", "%", 100.0, 100 * PAPER["accuracy_drop"]),
    "accuracy_drop_naive": ("accuracy_drop_naive", "%", 100.0, 100 * PAPER["accuracy_drop"]),
    "energy_ratio": ("energy_ratio", "x", 1.0, PAPER["energy_ratio"]),
    "tops_per_w": ("tops_per_w", "TOPS/W", 1.0, PAPER["tops_per_w"]),
    "tops_per_mm2": ("tops_per_mm2", "TOPS/mm2", 1.0, PAPER["tops_per_mm2"]),
    "silicon_check": ("silicon_check", "log2(model / 630 pJ)", 1.0, 0.0),
}
WORDS = {**PAPER_WORDS, "accuracy_drop_naive": PAPER_WORDS["accuracy_drop"] + " (naive mapping, no correction)",
         "silicon_check": "the prototype's 630 pJ per ten-way decision (JSSC 2017), in its own configuration"}


#: ledger row id -> the fit's claim beside it, where they differ: the ledger's drop row is the naive mapping's, so
#: its second column is the fit's naive drop (the corrected drop at the fit is in the fit's own section)
LEDGER_ROW_FIT = {"accuracy_drop": "accuracy_drop_naive"}


def _fit(results: Mapping[str, dict]) -> dict:
    if STEM not in results or "joint_fit" not in results[STEM]:
        raise KeyError(f"results/{STEM}.json with key 'joint_fit' not loaded (the fit column needs it)")
    return results[STEM]["joint_fit"]


def fitted_values_text(fit: Mapping) -> str:
    """The fitted set in words: each moved parameter (default -> fitted, distance in range units, inside or
    outside its cited range), the operating-point choices and the conventions."""
    moves = [f"{m['name']} {m['default']:.3g} -> {m['value']:.3g} ({m['z']:+.2f} ranges, "
             f"{'inside' if m['inside'] else 'OUTSIDE'})" for m in fit["moved"]]
    ch = [f"{k}={v}" for k, v in fit["choices"].items() if k in fit["changed_choices"]]
    sel = [f"{k}={v}" for k, v in fit["selection"].items()]
    return (f"distance {fit['distance']:.2f} ranges; " + ("; ".join(moves) or "no parameter moved")
            + "; choices: " + (", ".join(ch) or "as built") + "; conventions: " + ", ".join(sel))


def _tolerance(key: str, scale: float):
    def tol(results):
        return float(_fit(results)["claims"][key]["tolerance"]) * scale
    return tol


def claim_specs() -> list[dict]:
    """Keyword arguments of `ibnn.repro.claims.Claim` for the fit's section (see the module docstring)."""
    out = []
    for cid, (key, unit, scale, paper) in CLAIMS.items():
        rule = "at_least" if cid == "tops_per_w" else "equal"
        out.append({"id": f"fit_{cid}", "claim": WORDS[cid], "paper": paper, "unit": unit, "rule": rule,
                    "source": f"{STEM}:joint_fit.claims.{key}.value", "scale": scale, "section": FIT_SECTION,
                    "assumptions": (f"the fitted set: {{{STEM}:joint_fit.summary}}" if not out else
                                    "the same fitted set (first row)"),
                    "tolerance": _tolerance(key, scale),
                    "tolerance_reason": "the tolerance the fit was verified with (the ledger's rule)"})
    return out


def band_holds(rule: str, paper: float, value: float, tol: float) -> bool:
    """Whether `value` meets the paper's figure under the ledger's rule: not below paper - tol (at_least), else
    within tol of it."""
    return value >= paper - tol if rule == "at_least" else abs(value - paper) <= tol


def fit_rows(results: Mapping[str, dict]) -> list[dict]:
    """The fit's rows in the ledger's format (section, id, claim, paper, reproduced, unit, ci95, tolerance, holds,
    vs, source, assumptions), read from results[STEM]["joint_fit"]."""
    fit = _fit(results)
    text = fitted_values_text(fit)
    rows = []
    for spec in claim_specs():
        key = spec["source"].split("claims.")[1].split(".")[0]
        if key not in fit["claims"]:
            continue
        v = float(fit["claims"][key]["value"]) * spec["scale"]
        tol = spec["tolerance"](results)
        rows.append({"section": FIT_SECTION, "id": spec["id"], "claim": spec["claim"], "paper": spec["paper"],
                     "reproduced": v, "unit": spec["unit"], "ci95": None, "tolerance": tol,
                     "holds": band_holds(spec["rule"], spec["paper"], v, tol), "vs": None, "source": spec["source"],
                     "assumptions": text})
    return rows


def second_column(rows: list[dict], results: Mapping[str, dict]) -> list[dict]:
    """The ledger's rows with a "fit" entry (column FIT_COLUMN: reproduced, tolerance, holds under the fit)
    added to each row whose id the fit covers; other rows unchanged. Returns new dicts."""
    by_id = {r["id"].removeprefix("fit_"): r for r in fit_rows(results)}
    out = []
    for r in rows:
        f = by_id.get(LEDGER_ROW_FIT.get(r["id"], r["id"]))
        extra = {} if f is None else {"fit": {"column": FIT_COLUMN, "reproduced": f["reproduced"],
                                              "tolerance": f["tolerance"], "holds": f["holds"]}}
        out.append({**r, **extra})
    return out
