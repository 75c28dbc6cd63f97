"""TOPS/W and TOPS/mm2 tables over every workload, op definition and scope (notebook 07), and the area inverse.

Ops and energy always come from the same workload (WORKLOADS):
- "network": the mapped BNN classifying MNIST test images: its on-array multiply-accumulates (sum of fan_in *
  fan_out) per inference, plus, in the "system" scope only, the readout's MACs, over the energy per inference of
  that run (one classify cycle per on-array layer). The headline.
- "all_rows": every row of the array driven in every cycle (codes drawn from the network's non-zero MNIST
  codes, random +-1 weights): 2 * rows * cols ops per cycle over the energy per cycle of that run; the only
  workload a peak figure may come from.
Op definitions: "mac2" (2 ops per MAC) and "1b" (x input bits x weight bits, Shanbhag & Roy, CICC 2022).
Energy scopes: `ibnn.cost.energy.SCOPES` (lists of components); area scopes: `ibnn.cost.area.AREA_SCOPES`.
"""
from __future__ import annotations

from ..analysis.sensitivity import solve_parameter
from ..validate import check_choice, check_int
from . import area as _area
from . import ops as E

ENERGY_SCOPES = ("array", "macro", "system")


AREA_SCOPES = tuple(_area.AREA_SCOPES)


OP_BASES = ("network", "all_rows")


WORKLOADS = {
    "network": "the mapped BNN on MNIST test images (its on-array MACs per inference, plus the readout's MACs in "
               "the system scope) over the energy per inference of the same run",
    "all_rows": "every row driven every cycle (codes drawn from the network's non-zero MNIST codes, random +-1 "
                "weights): 2 x rows x cols ops per cycle over the energy per cycle of the same run",
}


def _energies(e: dict) -> dict:
    return {"array": e["array_J"], "macro": e["macro_J"], "system": e["total_J"]}


def tops_per_w_table(P, imc: dict, layer_shapes, readout: dict | None = None, all_rows: dict | None = None) -> dict:
    """TOPS/W for every workload x op definition x energy scope. imc: an `imc_inference_energy` result of the
    network (keys n_cycles, array_J, macro_J, total_J: per inference); all_rows: the same keys per cycle of the
    all-rows workload (omitted from the table when None); readout: kwargs of `digital.readout_energy` (its MACs
    count in the "system" scope only, once per inference or per all-rows cycle)."""
    rows, cols, input_bits = P.int("array_rows"), P.int("array_cols"), P.int("input_bits")
    check_int("n_cycles", imc["n_cycles"], 1)
    ro = readout or {"kind": "none", "n_in": 1, "n_classes": 2}
    out: dict = {}
    for basis, e in (("network", imc), ("all_rows", all_rows)):
        if e is None:
            continue
        en = _energies(e)
        out[basis] = {}
        for d in E.OP_DEFINITIONS:
            extra = E.readout_ops(d, ro["kind"], ro.get("n_in", 1), ro.get("n_classes", 2))
            ops = (E.ops_per_inference(d, layer_shapes, input_bits) if basis == "network"
                   else E.array_ops_per_cycle(d, rows, cols, input_bits))
            out[basis][d] = {s: E.tops_per_w(ops + (extra if s == "system" else 0.0), en[s]) for s in ENERGY_SCOPES}
    return out


def tops_per_mm2_table(P, layer_shapes, n_cycles: int) -> dict:
    """TOPS/mm2 for every workload x op definition x area scope at the classify clock f_classify (one array
    evaluation per cycle; the network needs n_cycles cycles per inference, the all-rows workload one)."""
    n_cycles = check_int("n_cycles", n_cycles, 1)
    rows, cols, input_bits = P.int("array_rows"), P.int("array_cols"), P.int("input_bits")
    f = P["f_classify"]
    out: dict = {}
    for basis in OP_BASES:
        out[basis] = {}
        for d in E.OP_DEFINITIONS:
            if basis == "network":
                ops_s = E.ops_per_inference(d, layer_shapes, input_bits) * f / n_cycles
            else:
                ops_s = E.throughput_ops_per_s(E.array_ops_per_cycle(d, rows, cols, input_bits), f)
            out[basis][d] = {s: E.tops_per_mm2(ops_s, _area.scope_area(P, s)) for s in AREA_SCOPES}
    return out


def solve_area_parameter(P, name: str, target_tops_per_mm2: float, ops_per_s: float, scope: str = "macro",
                         span: float = 1e3) -> dict:
    """The value of area parameter `name` alone that gives `target_tops_per_mm2` at `ops_per_s` (bisection)."""
    check_choice("scope", scope, AREA_SCOPES)
    e = P.entry(name)
    fn = lambda p: E.tops_per_mm2(ops_per_s, _area.scope_area(p, scope))  # noqa: E731
    lo, hi = (e.low or e.value) / span, (e.high or e.value) * span
    try:
        v = solve_parameter(P, name, fn, target_tops_per_mm2, lo, hi, log=True, rtol=1e-6)
    except ValueError:
        v = None
    return {"name": name, "unit": e.unit, "default": e.value, "low": e.low, "high": e.high, "solution": v,
            "inside_cited_range": None if v is None or e.low is None else bool(e.low <= v <= e.high),
            "factor_vs_default": None if v is None else v / e.value}


AREA_PARAMS = ("a_cell", "a_wldac", "a_comparator", "periphery_overhead")
