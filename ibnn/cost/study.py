"""The energy study of notebook 06: one parameter set, one mapped network and a batch of MNIST test images tied
to the chip model: it runs the chip (accuracy and bit-line swings from the same run), evaluates the in-memory
energy and the digital baseline, and does the sensitivity (tornado), the swing sweep (accuracy vs energy) and the
inverse analysis."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..analysis.sensitivity import _evaluable_upper, solve_parameter, tornado
from ..validate import check_bool, check_choice, check_int
from . import activity as A
from . import digital as D
from . import energy as E
from . import ops as O
from .efficiency import AREA_PARAMS, tops_per_w_table


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
    luts: tuple | None = None
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
        if self.luts is None:
            self.luts = E.wldac_luts(self.P)

    # --- one evaluation --------------------------------------------------------------------------------------
    def run(self, chip, n: int | None = None):
        """(accuracy, activity) of the mapped network on `chip` for the first n images (default all)."""
        n = len(self.labels) if n is None else check_int("n", n, 1, len(self.labels))
        pred, act = A.network_activity(self.mapping, chip, self.codes[:n], noise_seed=self.noise_seed)
        acc = float((pred.cpu() == self.labels[:n]).double().mean())
        return acc, act

    def energies(self, P, activity, luts=None) -> dict:
        """IMC and digital energy per inference (J), their breakdowns and the ratio, for parameter set P."""
        luts = self.luts if luts is None else luts
        imc = E.imc_inference_energy(P, activity, self.readout, self.gate_unused_columns, luts)
        dig = D.digital_inference_energy(P, self.layer_shapes, self.input_bits, self.readout)
        dig_J = E.total(dig)
        return {"imc": imc, "digital": dig, "imc_J": imc["total_J"], "digital_J": dig_J,
                "ratio": O.energy_ratio(dig_J, imc["total_J"])}

    def figures(self, P, activity, luts=None) -> dict:
        """The headline numbers of one evaluation: energies (system scope), ratio and peak TOPS/W (mac2 and 1b,
        in-memory macro scope)."""
        e = self.energies(P, activity, luts)
        t = tops_per_w_table(P, e["imc"], self.layer_shapes, self.readout)
        return {"imc_J": e["imc_J"], "imc_macro_J": e["imc"]["macro_J"], "digital_J": e["digital_J"],
                "ratio": e["ratio"],
                "tops_per_w_mac2": t["array_peak"]["mac2"]["macro"], "tops_per_w_1b": t["array_peak"]["1b"]["macro"]}

    # --- sensitivity --------------------------------------------------------------------------------------------
    def tornado(self, chip, names_fixed_swing: Sequence[str], names_retimed: Sequence[str] = (),
                names_rebuilt: Sequence[str] = (), n: int | None = None,
                build_chip: Callable | None = None) -> tuple[dict, list[dict]]:
        """Figures at each ranged parameter's low and high end, one at a time.

        names_fixed_swing: parameters that do not change the bit-line swings (energy-only constants): the
            activity of `chip` is reused. names_retimed: t_eval / c_bl_per_cell, evaluated on
            `chip.retimed(P')` (new swings, same cell model). names_rebuilt: any other circuit
            parameter, evaluated on `build_chip(P')` (a new chip model).
        Returns (base figures, bars): bars are dicts name, low, high, kind, section and the figures at each end.
        """
        _, act0 = self.run(chip, n)
        fixed, retimed = set(names_fixed_swing), set(names_retimed)
        if names_rebuilt and build_chip is None:
            raise ValueError("names_rebuilt needs build_chip(P) -> a programmed-ready Chip")

        def figure(P2, name):
            if name in fixed:
                return self.figures(P2, act0)
            if name in retimed:
                return self.figures(P2, self.run(chip.retimed(P2), n)[1])
            return self.figures(P2, self.run(build_chip(P2), n)[1], luts=E.wldac_luts(P2))

        bars = tornado(self.P, [*names_fixed_swing, *names_retimed, *names_rebuilt], figure)
        return self.figures(self.P, act0), bars

    # --- accuracy vs energy --------------------------------------------------------------------------------------
    def sweep_t_eval(self, chip, t_evals: Sequence[float], n: int | None = None) -> list[dict]:
        """Accuracy (chip model) and energy (this model) at each discharge time: one parameter set feeds both."""
        out = []
        for t in t_evals:
            P2 = self.P.replace(t_eval=float(t))
            acc, act = self.run(chip.retimed(P2), n)
            f = self.figures(P2, act)
            stats = [a.swing_stats() for a in act]
            out.append({"t_eval_s": float(t), "accuracy": acc, **f,
                        "mean_abs_dv_own_columns_V": float(np.mean([s["mean_abs_dv_own_columns_V"] for s in stats])),
                        "mean_drop_per_line_V": float(np.mean([s["mean_drop_per_line_V"] for s in stats]))})
        return out

    # --- inverse analysis ------------------------------------------------------------------------------------------
    def inverse(self, chip, figure: str, target: float, names_fixed_swing: Sequence[str],
                names_retimed: Sequence[str] = (), n: int | None = None, span: float = 1e3) -> list[dict]:
        """For each parameter alone: the value that makes `figure` ("ratio", "tops_per_w_mac2", ...) equal
        `target`, by log-scale bisection over [low / span, high * span] (None where no value in that bracket
        does). Reports whether the value lies inside the parameter's cited range."""
        check_choice("figure", figure, ("ratio", "tops_per_w_mac2", "tops_per_w_1b", "imc_J", "imc_macro_J",
                                        "digital_J"))
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
                fn = lambda p: self.figures(p, self.run(chip.retimed(p), n)[1])[figure]  # noqa: E731
            hi = _evaluable_upper(self.P, name, fn, lo, hi)
            v = None if hi is None else solve_parameter(self.P, name, fn, target, lo, hi, log=not linear,
                                                          rtol=1e-4)
            inside = None if v is None or e.low is None else bool(e.low <= v <= e.high)
            rows.append({"name": name, "section": e.section, "unit": e.unit, "default": e.value, "low": e.low,
                         "high": e.high, "solution": v, "inside_cited_range": inside,
                         "factor_vs_default": None if v is None or e.value == 0 else v / e.value})
        return rows


def energy_params(P) -> list[str]:
    """Ranged energy-section parameters that act on energy (the area ones excluded)."""
    return [n for n in P.ranged("energy") if n not in AREA_PARAMS]
