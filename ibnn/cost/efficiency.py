"""TOPS/W and TOPS/mm2 tables over every op basis, op definition and scope (notebook 07), and the area inverse.

Scopes, stated wherever a figure appears:
- energy "array": bit-line recharge + word-line charging + WLDAC static current (the array and its drivers);
  energy "macro": the in-memory macro: array + comparators + control/clocking + input registers;
  energy "system": macro + the digital readout (everything per inference; the energy ratio uses this scope on
  both sides).
- ops "network": the mapped BNN's on-array multiply-accumulates (sum of fan_in * fan_out) per inference, plus,
  in the "system" scope only, the readout's MACs; ops "array_peak": every cell of the 128 x 128 array once per
  classify cycle (2 * 128 * 128 "mac2"), energy per cycle = energy per inference / cycles per inference.
- area "array": bit-cells; area "macro": cells + WLDACs + comparators + periphery.
"""
from __future__ import annotations

from ..analysis.sensitivity import solve_parameter
from ..validate import check_choice, check_int
from . import area as _area
from . import ops as E

ENERGY_SCOPES = ("array", "macro", "system")


AREA_SCOPES = ("array", "macro")


OP_BASES = ("network", "array_peak")


def tops_per_w_table(P, imc: dict, layer_shapes, readout: dict | None = None) -> dict:
    """TOPS/W for every op basis x op definition x energy scope, from an `imc_inference_energy` result
    (keys n_cycles, array_J, macro_J, total_J) of the array of P; readout: kwargs of `digital.readout_energy`
    (its MACs count in the "system" scope only)."""
    rows, cols, input_bits = P.int("array_rows"), P.int("array_cols"), P.int("input_bits")
    n_cycles = check_int("n_cycles", imc["n_cycles"], 1)
    energies = {"array": imc["array_J"], "macro": imc["macro_J"], "system": imc["total_J"]}
    ro = readout or {"kind": "none", "n_in": 1, "n_classes": 2}
    out: dict = {}
    for basis in OP_BASES:
        out[basis] = {}
        for d in E.OP_DEFINITIONS:
            extra = E.readout_ops(d, ro["kind"], ro.get("n_in", 1), ro.get("n_classes", 2))
            if basis == "network":
                ops, per = E.ops_per_inference(d, layer_shapes, input_bits), 1
            else:
                ops, per = E.array_ops_per_cycle(d, rows, cols, input_bits), n_cycles
            out[basis][d] = {s: E.tops_per_w(ops + (extra / per if s == "system" else 0.0), energies[s] / per)
                             for s in ENERGY_SCOPES}
    return out


def tops_per_mm2_table(P, layer_shapes, n_cycles: int) -> dict:
    """TOPS/mm2 for every op basis x op definition x area scope at the classify clock f_classify
    (one array evaluation per cycle; the network needs n_cycles cycles per inference)."""
    n_cycles = check_int("n_cycles", n_cycles, 1)
    rows, cols, input_bits = P.int("array_rows"), P.int("array_cols"), P.int("input_bits")
    areas = {"array": _area.array_area(P), "macro": _area.macro_area(P)}
    f = P["f_classify"]
    out: dict = {}
    for basis in OP_BASES:
        out[basis] = {}
        for d in E.OP_DEFINITIONS:
            if basis == "network":
                ops_s = E.ops_per_inference(d, layer_shapes, input_bits) * f / n_cycles
            else:
                ops_s = E.throughput_ops_per_s(E.array_ops_per_cycle(d, rows, cols, input_bits), f)
            out[basis][d] = {s: E.tops_per_mm2(ops_s, areas[s]) for s in AREA_SCOPES}
    return out


def solve_area_parameter(P, name: str, target_tops_per_mm2: float, ops_per_s: float, scope: str = "macro",
                         span: float = 1e3) -> dict:
    """The value of area parameter `name` alone that gives `target_tops_per_mm2` at `ops_per_s` (bisection)."""
    check_choice("scope", scope, ENERGY_SCOPES)
    e = P.entry(name)
    fn = lambda p: E.tops_per_mm2(ops_per_s, _area.macro_area(p) if scope == "macro" else _area.array_area(p))  # noqa: E731,E501
    lo, hi = (e.low or e.value) / span, (e.high or e.value) * span
    try:
        v = solve_parameter(P, name, fn, target_tops_per_mm2, lo, hi, log=True, rtol=1e-6)
    except ValueError:
        v = None
    return {"name": name, "unit": e.unit, "default": e.value, "low": e.low, "high": e.high, "solution": v,
            "inside_cited_range": None if v is None or e.low is None else bool(e.low <= v <= e.high),
            "factor_vs_default": None if v is None else v / e.value}


AREA_PARAMS = ("a_cell", "a_wldac", "a_comparator", "periphery_overhead")
