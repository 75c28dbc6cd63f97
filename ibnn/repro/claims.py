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

from ..published import PAPER, PAPER_WORDS
from . import io

CLAIM_IDS = ("baseline_accuracy", "accuracy_drop", "energy_ratio", "tops_per_w", "tops_per_mm2")
RULES = ("equal", "at_least", "at_most")
README_START = "<!-- claims-table:start (written by make figures: notebooks/08_claims.ipynb) -->"
README_END = "<!-- claims-table:end -->"


@dataclass(frozen=True)
class Claim:
    """One claim of the ledger: the paper's figure, the results key that reproduces it, a rule and a tolerance."""
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
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise KeyError(f"results/{stem}.json has no key {path!r} (stopped at {part!r})")
    return node


def holds(rule: str, paper: float, reproduced: float, tolerance: float) -> bool:
    """Whether `reproduced` satisfies `rule` against `paper` within `tolerance`."""
    if tolerance < 0:
        raise ValueError(f"tolerance={tolerance} must be >= 0")
    if rule == "equal":
        return abs(reproduced - paper) <= tolerance
    if rule == "at_least":
        return reproduced >= paper - tolerance
    if rule == "at_most":
        return reproduced <= paper + tolerance
    raise ValueError(f"rule={rule!r}; choose one of {list(RULES)}")


def fill(text: str, results: Mapping[str, dict]) -> str:
    """Replace each {stem:key.path} in `text` by that result value (lists joined with '-')."""
    def sub(m):
        v = lookup(results, m.group(1))
        return "-".join(map(str, v)) if isinstance(v, list) else str(v)
    return re.sub(r"\{([0-9][0-9]_[A-Za-z0-9_]+:[^}]+)\}", sub, text)


def evaluate(claims, results: Mapping[str, dict]) -> list[dict]:
    """One ledger row per claim, in the format of results/claims.json."""
    rows = []
    for c in claims:
        reproduced = float(lookup(results, c.source)) * c.scale
        tol = float(c.tolerance(results))
        rows.append({"id": c.id, "claim": c.claim, "paper": c.paper, "reproduced": reproduced, "unit": c.unit,
                     "tolerance": tol, "holds": holds(c.rule, c.paper, reproduced, tol),
                     "source": c.source, "assumptions": fill(c.assumptions, results)})
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
    """The ledger rows as the README's markdown table."""
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




def rounding(last_digit: float) -> Callable[[Mapping[str, dict]], float]:
    """Tolerance of a figure quoted to `last_digit`: half a unit of its last digit."""
    return lambda results: 0.5 * last_digit


def rounding_plus_ci(last_digit: float, ci_source: str, scale: float) -> Callable[[Mapping[str, dict]], float]:
    """Half a unit of the quoted digit plus the half-width of the reproduced figure's 95% interval."""
    def tol(results):
        lo, hi = lookup(results, ci_source)
        return 0.5 * last_digit + 0.5 * (hi - lo) * scale
    return tol


def default_claims() -> list[Claim]:
    """The ledger: the paper's five claims, then what goes beyond the paper. Sources are results keys."""
    drop_tol = ("half a unit of the quoted 0.4 (0.05 pt) plus the half-width of the 95% interval of the mean drop "
                "over chips")
    return [
        Claim("baseline_accuracy", PAPER_WORDS["baseline_accuracy"], 100 * PAPER["baseline_accuracy"], "%",
              "equal", "03_train_bnn:test_acc_mean",
              "BNN {03_train_bnn:chosen.topology} ({03_train_bnn:chosen.readout} readout), 9x9 5-bit features; "
              "mean over seeds",
              rounding(1.0), "the paper quotes whole percent: half a unit, 0.5 pt", scale=100),
        Claim("accuracy_drop", PAPER_WORDS["accuracy_drop"], 100 * PAPER["accuracy_drop"], "%",
              "equal", "05_accuracy_on_chip:naive.mean_drop",
              "naive mapping, default circuit parameters, mean over held-out simulated chips",
              rounding_plus_ci(0.1, "05_accuracy_on_chip:naive.mean_drop_ci95", 100), drop_tol, scale=100),
        Claim("energy_ratio", PAPER_WORDS["energy_ratio"], PAPER["energy_ratio"], "x", "equal",
              "06_energy:energy_ratio",
              "system scope on both sides (the in-memory macro + its digital readout against the digital baseline "
              "+ the same readout logic); one storage assumption for the baseline: every weight (layers, thresholds, "
              "readout) read from SRAM each inference; Horowitz 45-nm energies scaled to 130 nm; in-memory energy "
              "from the chip model on MNIST with the word lines settling under the precharge (silicon check against "
              "JSSC 2017's 630 pJ in 06_energy:silicon_check)",
              rounding(1.0), "the paper quotes a whole number: half a unit, 0.5"),
        Claim("tops_per_w", PAPER_WORDS["tops_per_w"], PAPER["tops_per_w"], "TOPS/W", "at_least",
              "07_efficiency:headline.tops_per_w_mac2",
              "1 MAC = 2 ops; ops and energy of the same workload: the mapped network's on-array MACs over its "
              "energy per inference on MNIST, macro scope (readout excluded); the peak over a workload driving every "
              "row and the 1-b-normalised figures are in 07_efficiency:headline",
              rounding(100.0), "'over 700' is quoted to the hundred: half a unit, 50 TOPS/W"),
        Claim("tops_per_mm2", PAPER_WORDS["tops_per_mm2"], PAPER["tops_per_mm2"], "TOPS/mm2", "equal",
              "07_efficiency:headline.tops_per_mm2_mac2",
              "1 MAC = 2 ops; the mapped network's MACs per 50-MHz cycle (one inference per cycle) over the macro "
              "area (cells + WLDACs + comparators + periphery)",
              rounding(1.0), "the paper quotes a whole number: half a unit, 0.5"),
        # beyond the paper
        Claim("accuracy_drop_calibrated", "drop after per-chip threshold calibration (beyond the paper)",
              100 * PAPER["accuracy_drop"], "%", "at_most", "05_accuracy_on_chip:calibrated.mean_drop",
              "comparator trims calibrated per chip on training images; evaluated on held-out chips",
              rounding_plus_ci(0.1, "05_accuracy_on_chip:calibrated.mean_drop_ci95", 100), drop_tol, scale=100),
        Claim("accuracy_drop_hwaware", "drop after noise-aware training + per-chip calibration (beyond the paper)",
              100 * PAPER["accuracy_drop"], "%", "at_most", "05_accuracy_on_chip:noise_aware.0.calibrated.mean_drop",
              "BNN retrained with the column error model in the loop, then calibrated; held-out chips",
              rounding_plus_ci(0.1, "05_accuracy_on_chip:noise_aware.0.calibrated.mean_drop_ci95", 100), drop_tol,
              scale=100),
        Claim("accuracy_drop_chip_p97.5", "drop of the 97.5th-percentile chip, calibrated (spread over chips)",
              100 * PAPER["accuracy_drop"], "%", "at_most", "05_accuracy_on_chip:calibrated.drop_interval95.1",
              "upper end of the central 95% of held-out chips after per-chip calibration",
              rounding(0.1), "half a unit of the quoted 0.4 (0.05 pt)", scale=100),
    ]
