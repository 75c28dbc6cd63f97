"""The claims ledger: the paper's headline figures side by side with what this companion computes.

Each claim names the result file and key that reproduces it (`source`), a tolerance with its reason, and a
comparison rule: "equal" (|reproduced - paper| <= tolerance) or "at_least" (a "more than" claim:
reproduced >= paper - tolerance). Nothing reproduced is typed here: `build` reads every number from results/.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from . import io

CLAIM_IDS = ("baseline_accuracy", "accuracy_drop", "energy_ratio", "tops_per_w", "tops_per_mm2")
RULES = ("equal", "at_least", "at_most")
README_START = "<!-- claims-table:start (written by make figures: notebooks/08_claims.ipynb) -->"
README_END = "<!-- claims-table:end -->"


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    paper: float
    unit: str
    rule: str
    source: str                       # "<results stem>:<key path with dots>"
    assumptions: str
    tolerance: Callable[[Mapping[str, dict]], float]
    tolerance_reason: str
    scale: float = 1.0                # reproduced = value at `source` x scale (e.g. 100 for a fraction in %)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"claim {self.id}: rule={self.rule!r}; choose one of {list(RULES)}")
        if ":" not in self.source:
            raise ValueError(f"claim {self.id}: source={self.source!r} must be '<results stem>:<key.path>'")


def lookup(results: Mapping[str, dict], source: str):
    """The value at `stem:key.path` in the loaded results (a KeyError names what is missing)."""
    stem, path = source.split(":", 1)
    if stem not in results:
        raise KeyError(f"results/{stem}.json not loaded (needed for {source})")
    node = results[stem]
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"results/{stem}.json has no key {path!r} (stopped at {part!r})")
        node = node[part]
    return node


def holds(rule: str, paper: float, reproduced: float, tolerance: float) -> bool:
    if tolerance < 0:
        raise ValueError(f"tolerance={tolerance} must be >= 0")
    if rule == "equal":
        return abs(reproduced - paper) <= tolerance
    if rule == "at_least":
        return reproduced >= paper - tolerance
    if rule == "at_most":
        return reproduced <= paper + tolerance
    raise ValueError(f"rule={rule!r}; choose one of {list(RULES)}")


def evaluate(claims, results: Mapping[str, dict]) -> list[dict]:
    """One ledger row per claim, in the format of results/claims.json."""
    rows = []
    for c in claims:
        reproduced = float(lookup(results, c.source)) * c.scale
        tol = float(c.tolerance(results))
        rows.append({"id": c.id, "claim": c.claim, "paper": c.paper, "reproduced": reproduced, "unit": c.unit,
                     "tolerance": tol, "holds": holds(c.rule, c.paper, reproduced, tol),
                     "source": c.source, "assumptions": c.assumptions})
    return rows


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| claim | paper | reproduced | tolerance | holds | assumptions |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['id']}: {r['claim']} | {_fmt(r['paper'])} {r['unit']} | "
                     f"{_fmt(r['reproduced'])} {r['unit']} | ±{_fmt(r['tolerance'])} | "
                     f"{'yes' if r['holds'] else '**no**'} | {r['assumptions']} |")
    return "\n".join(lines)


def update_readme(path: Path, table: str) -> bool:
    """Replace the text between the claims-table markers of README; returns whether it changed."""
    text = Path(path).read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path} lacks the claims-table markers {README_START!r} ... {README_END!r}")
    new = re.sub(re.escape(README_START) + r".*?" + re.escape(README_END),
                 lambda _: f"{README_START}\n{table}\n{README_END}", text, flags=re.S)
    if new != text:
        io.atomic_write_text(path, new)
    return new != text


# --- the paper's figures (Zhang & Verma, JETCAS 2019, doi 10.1109/JETCAS.2019.2912352; DESIGN.md section 1) ----
# These are the paper's words, not reproduced values; every module that compares against the paper reads them here.
PAPER = {"baseline_accuracy": 0.94, "accuracy_drop": 0.004, "energy_ratio": 26.0, "tops_per_w": 700.0,
         "tops_per_mm2": 6.0}
PAPER_WORDS = {
    "baseline_accuracy": "a reduced BNN that fits the 130-nm prototype reaches 94% on MNIST in software",
    "accuracy_drop": "mapped on the chip it loses only 0.4%",
    "energy_ratio": "26x lower energy than a digital implementation of the same network",
    "tops_per_w": "over 700 TOPS/W",
    "tops_per_mm2": "6 TOPS/mm2",
}


def rounding(last_digit: float) -> Callable[[Mapping[str, dict]], float]:
    """Tolerance of a figure quoted to `last_digit`: half a unit of its last digit."""
    return lambda results: 0.5 * last_digit


def rounding_plus_ci(last_digit: float, ci_source: str, scale: float) -> Callable[[Mapping[str, dict]], float]:
    """Half a unit of the quoted digit plus the half-width of the reproduced figure's 95% interval."""
    def tol(results):
        lo, hi = lookup(results, ci_source)
        return 0.5 * last_digit + 0.5 * (hi - lo) * scale
    return tol
