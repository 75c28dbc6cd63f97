"""Area of the 128 x 128 in-memory classifier, from the one parameter set (energy.toml, area entries).

Two areas, each stated wherever a TOPS/mm2 figure uses it:
- ``array``: the bit-cells only, rows * cols * a_cell;
- ``macro``: array + one WLDAC per row + one comparator per column, times (1 + periphery_overhead) for the
  SRAM-mode periphery (decoder, precharge, write drivers, sense amplifiers), timing control and digital readout.
All areas in m2 (`mm2` converts).
"""
from __future__ import annotations

from .. import params as _params
from ..validate import check_choice, check_int, check_nonneg, check_positive

AREA_COMPONENTS = ("cells", "wldac", "comparator", "periphery")


#: Area scopes, each defined once as the list of components it sums; stated wherever a TOPS/mm2 figure uses one.
AREA_SCOPES = {"array": ("cells",), "macro": AREA_COMPONENTS}


def mm2(area_m2: float) -> float:
    """m2 -> mm2."""
    return check_nonneg("area_m2", area_m2) * 1e6


def array_area(P) -> float:
    """Bit-cell area (m2) of the array_rows x array_cols array of P."""
    P = _params.require(P)
    rows = check_int("array_rows", P.int("array_rows"), 1)
    cols = check_int("array_cols", P.int("array_cols"), 1)
    return rows * cols * check_positive("a_cell", P.a_cell)


def macro_breakdown(P) -> dict[str, float]:
    """Macro area (m2) by component (AREA_COMPONENTS): one WLDAC per row, one comparator per column."""
    P = _params.require(P)
    cells = array_area(P)
    wldac = P.int("array_rows") * check_positive("a_wldac", P.a_wldac)
    comp = P.int("array_cols") * check_positive("a_comparator", P.a_comparator)
    periph = check_nonneg("periphery_overhead", P.periphery_overhead) * (cells + wldac + comp)
    return {"cells": cells, "wldac": wldac, "comparator": comp, "periphery": periph}


def macro_area(P) -> float:
    """Total macro area (m2): cells + WLDACs + comparators + periphery."""
    return float(sum(macro_breakdown(P).values()))


def scope_area(P, scope: str) -> float:
    """The area (m2) of `scope` (a key of AREA_SCOPES): the sum of its components."""
    check_choice("scope", scope, tuple(AREA_SCOPES))
    bd = macro_breakdown(P)
    return float(sum(bd[k] for k in AREA_SCOPES[scope]))
