"""The energy study of notebook 06: one parameter set, one mapped network and a batch of MNIST test images tied
to the chip model: it runs the chip (accuracy, bit-line swings and row currents from the same run), evaluates the
in-memory energy and the digital baseline, and does the sensitivity (tornado), the swing sweep (chip accuracy
against its own software accuracy, with two-level bootstrap intervals, and energy) and the inverse analysis."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..analysis.bootstrap import accuracy_ci
from ..analysis.sensitivity import _evaluable_upper, solve_parameter, tornado
from ..published import JSSC2017
from ..validate import check_bool, check_choice, check_int
from . import activity as A
from . import digital as D
from . import energy as E
from . import ops as O
from .efficiency import AREA_PARAMS, tops_per_w_table

#: Ranged circuit parameters that act on the energy only through the decisions (mismatch and noise magnitudes):
#: left out of a tornado over the energy figures (their effect on accuracy is notebook 05's sweeps).
DECISION_ONLY = ("a_vt", "a_beta", "a_vt_p", "dac_unit_w", "dac_unit_l", "dac_unit_vov", "comp_offset_sigma",
                 "comp_noise_sigma")

FIGURES = ("ratio", "ratio_without_readout", "tops_per_w_mac2", "tops_per_w_1b", "imc_J", "imc_macro_J",
           "digital_J", "silicon_ratio")


def readout_spec(mapping) -> dict:
    """kwargs of `energy.readout_energy` for a mapping's readout."""
    r = mapping.readout_logic
    kind = str(r["kind"])
    kind = "vote" if "vote" in kind else ("digital" if kind in ("digital", "linear", "dense") else "none")
    return {"kind": kind, "n_in": int(r["n_inputs"]), "n_classes": int(r["n_classes"])}


@dataclass
class EnergyStudy:
    """One parameter set + mapped network + test images; see the module docstring."""

    P: object
    mapping: object
    codes: object            # (B, n_features) int
    labels: object           # (B,) int
    gate_unused_columns: bool = False
    noise_seed: int = 0
    tables: object = None    # DriveTables of P (default: ibnn.circuit.wordline.drive_tables(P))
    readout: dict = field(init=False)
    layer_shapes: list = field(init=False)
    input_bits: int = field(init=False)

    def __post_init__(self):
        check_bool("gate_unused_columns", self.gate_unused_columns)
        self.codes = torch.as_tensor(self.codes).to(torch.int64)
        self.labels = torch.as_tensor(self.labels).to(torch.int64)
        self.readout = readout_spec(self.mapping)
        self.layer_shapes = [(L.fan_in, L.fan_out) for L in self.mapping.layers]
        self.input_bits = int(self.mapping.bits)
        if self.tables is None:
            self.tables = E.drive_tables(self.P)

    # --- one evaluation --------------------------------------------------------------------------------------
    def run(self, chip, n: int | None = None):
        """(accuracy of instance 0, its activity) of the mapped network on `chip` for the first n images."""
        n = len(self.labels) if n is None else check_int("n", n, 1, len(self.labels))
        pred, act = A.network_activity(self.mapping, chip, self.codes[:n], noise_seed=self.noise_seed)
        return float((pred.cpu() == self.labels[:n]).double().mean()), act

    def energies(self, P, activity, tables=None) -> dict:
        """IMC and digital energy per inference (J), their breakdowns and the ratios (with the shared readout:
        system scope on both sides; without it: the baseline less its readout against the macro)."""
        tables = self.tables if tables is None else tables
        imc = E.imc_inference_energy(P, activity, self.readout, self.gate_unused_columns, tables)
        dig = D.digital_inference_energy(P, self.layer_shapes, self.input_bits, self.readout)
        dig_J = E.total(dig)
        return {"imc": imc, "digital": dig, "imc_J": imc["total_J"], "digital_J": dig_J,
                "ratio": O.energy_ratio(dig_J, imc["total_J"]),
                "ratio_without_readout": O.energy_ratio(dig_J - dig["readout"], imc["macro_J"])}

    def figures(self, P, activity, tables=None) -> dict:
        """The headline numbers of one evaluation (FIGURES): energies, both ratios, TOPS/W of the network
        workload (ops and energy of the same run, macro scope), and the silicon-check ratio (system / 630 pJ)."""
        e = self.energies(P, activity, tables)
        t = tops_per_w_table(P, e["imc"], self.layer_shapes, self.readout)["network"]
        return {"imc_J": e["imc_J"], "imc_macro_J": e["imc"]["macro_J"], "digital_J": e["digital_J"],
                "ratio": e["ratio"], "ratio_without_readout": e["ratio_without_readout"],
                "tops_per_w_mac2": t["mac2"]["macro"], "tops_per_w_1b": t["1b"]["macro"],
                "silicon_ratio": e["imc_J"] / JSSC2017["energy_per_decision_J"]}

    # --- sensitivity --------------------------------------------------------------------------------------------
    def tornado(self, chip, names_fixed_swing: Sequence[str], names_retimed: Sequence[str] = (),
                names_rebuilt: Sequence[str] = (), n: int | None = None,
                build_chip: Callable | None = None) -> tuple[dict, list[dict]]:
        """Figures at each ranged parameter's low and high end, one at a time.

        names_fixed_swing: parameters that change neither the swings nor the word line (energy-only constants):
            the activity of `chip` is reused. names_retimed: t_eval / c_bl_per_cell, evaluated on
            `chip.retimed(P')` (new swings and window factors, same cell model). names_rebuilt: any other
            circuit parameter, evaluated on `build_chip(P')` (a new chip model and word line).
        Returns (base figures, bars): bars are dicts name, low, high, kind, section and the figures at each end.
        """
        _, act0 = self.run(chip, n)
        fixed, retimed = set(names_fixed_swing), set(names_retimed)
        if names_rebuilt and build_chip is None:
            raise ValueError("names_rebuilt needs build_chip(P) -> a programmed-ready Chip")

        def figure(P2, name):
            if name in fixed:
                return self.figures(P2, act0)
            tables = E.drive_tables(P2)
            if name in retimed:
                return self.figures(P2, self.run(chip.retimed(P2), n)[1], tables)
            return self.figures(P2, self.run(build_chip(P2), n)[1], tables)

        bars = tornado(self.P, [*names_fixed_swing, *names_retimed, *names_rebuilt], figure)
        return self.figures(self.P, act0), bars

    # --- accuracy vs energy --------------------------------------------------------------------------------------
    def sweep_t_eval(self, chips, t_evals: Sequence[float], n: int | None = None, n_boot: int = 1000) -> list[dict]:
        """At each discharge time: the accuracy of every instance of `chips` against the software accuracy on the
        same first n images (two-level bootstrap over chips x images, `ibnn.analysis.bootstrap.accuracy_ci`),
        and the energy of instance 0's run (one parameter set feeds both)."""
        n = len(self.labels) if n is None else check_int("n", n, 1, len(self.labels))
        software = (self.mapping.reference(self.codes[:n]).labels.cpu() == self.labels[:n])
        out = []
        for t in t_evals:
            P2 = self.P.replace(t_eval=float(t))
            run = A.network_run(self.mapping, chips.retimed(P2), self.codes[:n], noise_seed=self.noise_seed)
            correct = run.labels.cpu() == self.labels[:n][None, :]
            ci = accuracy_ci(correct, software, n_boot=n_boot, seed=self.noise_seed)
            f = self.figures(P2, run.activity, E.drive_tables(P2))
            stats = [a.swing_stats() for a in run.activity]
            out.append({"t_eval_s": float(t), "accuracy": ci.accuracy, "accuracy_ci95": list(ci.ci95),
                        "software_accuracy": ci.software_accuracy, "software_ci95": list(ci.software_ci95),
                        "drop": ci.drop.mean_drop,
                        "drop_ci95": list(ci.drop.ci95), "n_chips": chips.n_chips, "n_images": n, **f,
                        "mean_abs_dv_own_columns_V": float(np.mean([s["mean_abs_dv_own_columns_V"] for s in stats])),
                        "mean_drop_per_line_V": float(np.mean([s["mean_drop_per_line_V"] for s in stats]))})
        return out

    # --- inverse analysis ------------------------------------------------------------------------------------------
    def inverse(self, chip, figure: str, target: float, names_fixed_swing: Sequence[str],
                names_retimed: Sequence[str] = (), n: int | None = None, span: float = 1e3) -> list[dict]:
        """For each parameter alone: the value that makes `figure` (one of FIGURES) equal `target`, by log-scale
        bisection over [low / span, high * span] (None where no value in that bracket does). Reports whether the
        value lies inside the parameter's cited range."""
        check_choice("figure", figure, FIGURES)
        _, act0 = self.run(chip, n)
        rows = []
        for name in [*names_fixed_swing, *names_retimed]:
            e = self.P.entry(name)
            linear = e.valid == "fraction" or (e.low is not None and e.low <= 0)
            if linear:        # a fraction (or a range that starts at 0): bisect linearly over its domain
                lo, hi = (0.0, 1.0) if e.valid == "fraction" else (e.low, e.high * span)
            else:
                lo = (e.low if e.low is not None else e.value) / span
                hi = (e.high if e.high is not None else e.value) * span
            if name in names_fixed_swing:
                fn = lambda p: self.figures(p, act0)[figure]  # noqa: E731
            else:
                fn = lambda p: self.figures(p, self.run(chip.retimed(p), n)[1], E.drive_tables(p))[figure]  # noqa: E731
            hi = _evaluable_upper(self.P, name, fn, lo, hi)
            v = None if hi is None else solve_parameter(self.P, name, fn, target, lo, hi, log=not linear,
                                                          rtol=1e-4)
            inside = None if v is None or e.low is None else bool(e.low <= v <= e.high)
            rows.append({"name": name, "section": e.section, "unit": e.unit, "default": e.value, "low": e.low,
                         "high": e.high, "solution": v, "inside_cited_range": inside,
                         "factor_vs_default": None if v is None or e.value == 0 else v / e.value})
        return rows


#: Ranged circuit parameters that size something the chip model does not contain (the precharge devices): they
#: act on the energy alone, so a tornado reuses the swings for them.
ENERGY_ONLY_CIRCUIT = ("precharge_sag_max",)


def energy_params(P) -> list[str]:
    """Ranged parameters that act on the energy alone, not on the swings: the energy section (the area ones
    excluded) and ENERGY_ONLY_CIRCUIT."""
    return [n for n in P.ranged("energy") if n not in AREA_PARAMS] + [n for n in ENERGY_ONLY_CIRCUIT if n in P]


def clean_bar(b: dict) -> dict:
    """A tornado bar with only the fields the results keep."""
    return {k: b[k] for k in ("name", "section", "kind", "unit", "default", "low", "high", "at_low", "at_high")}


def span_key(b: dict, key: str) -> tuple:
    """Sort key of a tornado bar: its span in figure `key` rounded to a relative 1e-9 (so 1e-13 float noise
    cannot reorder bars), then its name."""
    s = abs(b["at_high"][key] - b["at_low"][key])
    return (float(f"{s:.9g}"), b["name"])


def span_of(bars: Sequence[dict], key: str) -> tuple[float, float]:
    """(min, max) of figure `key` over both ends of every bar."""
    vals = [v for b in bars for v in (b["at_low"][key], b["at_high"][key])]
    return min(vals), max(vals)


def verdict(name: str, value: float, paper: float, lo: float, hi: float, at_least: bool = False) -> str:
    """A sentence: this model's figure, the paper's, and whether the one-at-a-time span of the cited ranges
    reaches the paper's figure."""
    inside = lo <= paper <= hi or (at_least and hi >= paper)
    return (f"{name}: this model {value:.1f}, paper {'>' if at_least else ''}{paper:g}; the cited ranges, one "
            f"parameter at a time, span {lo:.1f} .. {hi:.1f}: the paper's figure is "
            f"{'inside' if inside else 'OUTSIDE'} what the cited assumptions give.")
