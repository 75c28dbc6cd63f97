"""The claims ledger: the paper's headline figures side by side with what this companion computes, and, in their
own sections, what goes beyond the paper.

The ledger is a list of sections (`Section`: an id, a title, rows), built by the factories in `SECTION_FACTORIES`
(the hook: a module with more rows adds its factory there, or a caller passes its own tuple of factories to
`default_sections` / `default_claims`); every row carries its section's id. `prototype_section` (the JSSC 2017
chip's claims, notebook 08) and `fit_section` (the claims at notebook 09's paper-consistent fit) are such factories.
Each row of the paper's section also carries a second column, "fit" (`ibnn.explore.claims_fit.second_column`): the
same claim under the fitted parameter set, with its own tolerance and verdict, beside the cited defaults.
Two kinds of row:
* `Claim` (the paper's claims): the paper's figure, the result key that reproduces it (`source`), a tolerance with
  its reason and a rule: "equal" (|reproduced - paper| <= tolerance), "at_least" (a "more than" claim:
  reproduced >= paper - tolerance) or "at_most".
* `Finding` (beyond the paper): a reproduced figure with its 95% interval and its paired difference to a stated
  reference method; no paper figure and no verdict, since the paper did not use the method.
One software reference: the baseline accuracy and every drop are measured against the deployed network (notebook
03's checkpoint, chosen on validation accuracy) on the same test images (notebook 05's `reference`), since the drop
is what that network loses on chip. Drop tolerances add the half-width of the two-level bootstrap interval (chips x
test images, `ibnn.analysis.bootstrap`) to the precision the paper quotes. Nothing reproduced is typed here:
`evaluate` reads every number from results/.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from ..explore import claims_fit
from ..published import PAPER, PAPER_WORDS
from . import io

CLAIM_IDS = ("baseline_accuracy", "accuracy_drop", "energy_ratio", "tops_per_w", "tops_per_mm2")
PAPER_SECTION, BEYOND_SECTION, PROTOTYPE_SECTION = "paper", "beyond", "jssc2017"
ROW_KEYS = ("section", "id", "claim", "paper", "reproduced", "unit", "ci95", "tolerance", "holds", "vs", "source",
            "assumptions", "fit")
RULES = ("equal", "at_least", "at_most")
README_START = "<!-- claims-table:start (written by make figures: notebooks/10_claims.ipynb) -->"
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
    section: str = PAPER_SECTION
    ci_source: str | None = None      # "<stem>:<key>" of the reproduced figure's 95% interval, where it has one

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"claim {self.id}: rule={self.rule!r}; choose one of {list(RULES)}")
        if ":" not in self.source:
            raise ValueError(f"claim {self.id}: source={self.source!r} must be '<results stem>:<key.path>'")


@dataclass(frozen=True)
class Finding:
    """A row beyond the paper: a reproduced figure with its 95% interval and its paired difference to a reference
    method (`vs_source`: a result dict with "difference" and "ci95"); no paper figure, no verdict."""
    id: str
    claim: str
    unit: str
    source: str
    ci_source: str
    assumptions: str
    vs_source: str | None = None
    vs_label: str = ""
    scale: float = 1.0
    section: str = BEYOND_SECTION
    tolerance_reason: str = "none: a finding beyond the paper has no paper figure to hold against"

    def __post_init__(self):
        for name in ("source", "ci_source") + (("vs_source",) if self.vs_source else ()):
            if ":" not in getattr(self, name):
                raise ValueError(f"finding {self.id}: {name}={getattr(self, name)!r} must be '<results stem>:<key>'")


@dataclass(frozen=True)
class Section:
    """One section of the ledger: an id (every row's "section"), a title, and its rows (Claims or Findings)."""
    id: str
    title: str
    rows: tuple


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


def stems(claims) -> list[str]:
    """Every results stem the rows read: their sources, intervals, paired differences and the {stem:key}
    placeholders of their assumptions (what notebook 10 must load)."""
    out = set()
    for c in claims:
        for src in (c.source, c.ci_source, getattr(c, "vs_source", None)):
            if src:
                out.add(src.split(":")[0])
        out.update(m.split(":")[0] for m in re.findall(r"\{([0-9][0-9]_[A-Za-z0-9_]+:[^}]+)\}", c.assumptions))
    return sorted(out)


def _interval(results, source: str | None, scale: float):
    if source is None:
        return None
    lo, hi = lookup(results, source)
    return [float(lo) * scale, float(hi) * scale]


def _row(c, results: Mapping[str, dict]) -> dict:
    """One ledger row (keys ROW_KEYS) of a Claim or a Finding."""
    reproduced = float(lookup(results, c.source)) * c.scale
    row = {"section": c.section, "id": c.id, "claim": c.claim, "paper": None, "reproduced": reproduced,
           "unit": c.unit, "ci95": _interval(results, c.ci_source, c.scale), "tolerance": None, "holds": None,
           "vs": None, "source": c.source, "assumptions": fill(c.assumptions, results), "fit": None}
    if isinstance(c, Claim):
        tol = float(c.tolerance(results))
        row.update(paper=c.paper, tolerance=tol, holds=holds(c.rule, c.paper, reproduced, tol))
    elif c.vs_source:
        d = lookup(results, c.vs_source)
        row["vs"] = {"label": c.vs_label, "difference": float(d["difference"]) * c.scale,
                     "ci95": [float(v) * c.scale for v in d["ci95"]],
                     "resolved": bool(d["ci95"][0] > 0 or d["ci95"][1] < 0)}
    return row


def evaluate(claims, results: Mapping[str, dict]) -> list[dict]:
    """One ledger row per claim or finding (`ROW_KEYS`), in the format of results/claims.json; where the
    paper-consistent fit (results of notebook 09) is loaded, the paper's rows carry its column under "fit"."""
    rows = [_row(c, results) for c in claims]
    if claims_fit.STEM not in results:
        return rows
    return [{**r, "fit": f.get("fit")} if r["section"] == PAPER_SECTION else r
            for r, f in zip(rows, claims_fit.second_column(rows, results))]


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


def _ci(ci: list | None) -> str:
    return f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""


def _yes(h: bool) -> str:
    return "yes" if h else "**no**"


def _claim_table(rows: list[dict]) -> list[str]:
    """A section of claims; with the fit's column ("paper-consistent fit", its own tolerance and verdict) beside
    the cited defaults where the rows carry one."""
    fit = any(r.get("fit") for r in rows)
    at_fit = all(r["section"] == claims_fit.FIT_SECTION for r in rows)
    head = f"| claim | paper | {'at the fit' if at_fit else 'cited defaults (95% CI)'} | tolerance | holds |"
    head += " paper-consistent fit | holds (fit) |" if fit else ""
    lines = [head + " assumptions |", "| --- " * (head.count("|")) + "|"]
    for r in rows:
        line = (f"| {r['id']}: {r['claim']} | {_fmt(r['paper'])} {r['unit']} | "
                f"{_fmt(r['reproduced'])} {r['unit']}{_ci(r['ci95'])} | ±{_fmt(r['tolerance'])} | {_yes(r['holds'])} |")
        if fit:
            f = r.get("fit")
            line += (f" {_fmt(f['reproduced'])} {r['unit']} (±{_fmt(f['tolerance'])}) | {_yes(f['holds'])} |"
                     if f else " | |")
        lines.append(f"{line} {r['assumptions']} |")
    return lines


def _finding_table(rows: list[dict]) -> list[str]:
    lines = ["| finding | reproduced (95% CI) | paired difference (95% CI) | assumptions |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        vs = r["vs"]
        vs_txt = (f"{vs['label']}: {_fmt(vs['difference'])} {r['unit']}{_ci(vs['ci95'])}"
                  f"{'' if vs['resolved'] else ' (not resolved)'}") if vs else ""
        lines.append(f"| {r['id']}: {r['claim']} | {_fmt(r['reproduced'])} {r['unit']}{_ci(r['ci95'])} | "
                     f"{vs_txt} | {r['assumptions']} |")
    return lines


def markdown_table(rows: list[dict], sections: list[Section] | None = None) -> str:
    """The ledger rows as the README's markdown: one table per section, in order, under the section's title
    (a section of claims with paper figures and verdicts; a section of findings with intervals and paired
    differences, no verdict)."""
    titles = {s.id: s.title for s in (default_sections() if sections is None else sections)}
    order = list(dict.fromkeys(r["section"] for r in rows))
    parts = []
    for sec in order:
        these = [r for r in rows if r["section"] == sec]
        table = _claim_table(these) if any(r["paper"] is not None for r in these) else _finding_table(these)
        parts.append("\n".join([f"**{titles.get(sec, sec)}**", ""] + table))
    return "\n\n".join(parts)


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


def paper_section() -> Section:
    """The paper's five claims (JETCAS 2019 abstract, `ibnn.published`)."""
    drop_tol = ("half a unit of the quoted 0.4 (0.05 pt) plus the half-width of the drop's 95% two-level bootstrap "
                "interval (chips x test images)")
    return Section(PAPER_SECTION, "The paper's claims (J. Zhang, N. Verma, JETCAS 2019)", (
        Claim("baseline_accuracy", PAPER_WORDS["baseline_accuracy"], 100 * PAPER["baseline_accuracy"], "%",
              "equal", "05_accuracy_on_chip:reference.software_accuracy",
              "the deployed BNN {05_accuracy_on_chip:reference.network} ({03_train_bnn:chosen.topology}, "
              "{03_train_bnn:chosen.readout} readout, 9x9 5-bit features; notebook 03's checkpoint, chosen on "
              "validation accuracy), {05_accuracy_on_chip:reference.n_images} test images: the reference of every drop",
              rounding_plus_ci(1.0, "05_accuracy_on_chip:reference.ci95", 100),
              "the paper quotes whole percent (0.5 pt) plus the half-width of the accuracy's 95% interval over test "
              "images", scale=100, ci_source="05_accuracy_on_chip:reference.ci95"),
        Claim("accuracy_drop", PAPER_WORDS["accuracy_drop"], 100 * PAPER["accuracy_drop"], "%",
              "equal", "05_accuracy_on_chip:naive.mean_drop",
              "naive mapping, default circuit parameters, {05_accuracy_on_chip:n_chips} held-out simulated chips x "
              "{05_accuracy_on_chip:n_test} test images, against the deployed network's software accuracy",
              rounding_plus_ci(0.1, "05_accuracy_on_chip:naive.ci95", 100), drop_tol, scale=100,
              ci_source="05_accuracy_on_chip:naive.ci95"),
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
    ))


def _drop_finding(method: str, what: str, assumptions: str, vs: str = "vs_naive",
                  vs_label: str = "minus the naive drop") -> Finding:
    src = f"05_accuracy_on_chip:corrections.{method}"
    vs_source = f"{src}.{vs}" if vs == "vs_naive" else f"05_accuracy_on_chip:comparisons.{vs}"
    return Finding(f"drop_{method}", what, "%", f"{src}.mean_drop", f"{src}.ci95", assumptions,
                   vs_source, vs_label, scale=100)


def beyond_section() -> Section:
    """What goes beyond the paper: the drops after per-chip corrections this chip can make (notebook 05)."""
    held = ("{05_accuracy_on_chip:corrections.%s.n_chips} held-out chips x {05_accuracy_on_chip:corrections.%s."
            "n_images} test images; calibration on training images only")
    return Section(BEYOND_SECTION, "Beyond the paper: per-chip corrections this chip can make (notebook 05)", (
        _drop_finding("bias_row_rewrite", "drop after rewriting each chip's bias-row cells (SRAM), chip in the loop",
                      held % ("bias_row_rewrite", "bias_row_rewrite")),
        _drop_finding("readout_retraining", "drop after retraining each chip's digital readout on its own outputs",
                      held % ("readout_retraining", "readout_retraining")),
        _drop_finding("bias_row_rewrite+readout_retraining", "drop after both, bias rows first",
                      held % (("bias_row_rewrite+readout_retraining",) * 2)),
        _drop_finding("noise_aware_x1+bias_row_rewrite",
                      "drop of the noise-aware network after the bias-row rewrite, against its own software accuracy",
                      held % (("noise_aware_x1+bias_row_rewrite",) * 2),
                      "noise_aware_x1+bias_row_rewrite - bias_row_rewrite", "minus the base network's rewrite drop"),
    ))


def prototype_section() -> Section:
    """The prototype chip's claims (J. Zhang, Z. Wang, N. Verma, JSSC 2017; `ibnn.repro.claims_prototype`,
    results of notebook 08) as a section of their own, apart from the JETCAS claims."""
    from .claims_prototype import prototype_claims  # imported here: that module imports this one
    return Section(PROTOTYPE_SECTION, "The prototype chip's claims (J. Zhang, Z. Wang, N. Verma, JSSC 2017)",
                   tuple(replace(c, section=PROTOTYPE_SECTION) for c in prototype_claims()))


def fit_section() -> Section:
    """The paper's claims at notebook 09's paper-consistent fit (`ibnn.explore.claims_fit`), with the fitted
    values and their distances from the defaults as each row's assumptions."""
    return Section(claims_fit.FIT_SECTION, claims_fit.FIT_TITLE,
                   tuple(Claim(**k) for k in claims_fit.claim_specs()))


#: The JETCAS paper's sections alone (what notebooks 03-07 give).
JETCAS_FACTORIES: tuple[Callable[[], Section], ...] = (paper_section, beyond_section)
#: The ledger's sections, in order (the hook): a module with more rows adds its factory here.
SECTION_FACTORIES: tuple[Callable[[], Section], ...] = JETCAS_FACTORIES + (prototype_section, fit_section)


def default_sections(factories=SECTION_FACTORIES) -> list[Section]:
    """The ledger's sections (ids unique)."""
    secs = [f() for f in factories]
    ids = [s.id for s in secs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"section ids {ids} must be unique")
    return secs


def default_claims(factories=SECTION_FACTORIES) -> list:
    """Every row of the ledger (Claims and Findings), section by section; sources are results keys."""
    return [row for sec in default_sections(factories) for row in sec.rows]
