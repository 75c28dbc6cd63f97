"""Area of the 128 x 128 in-memory classifier, from the one parameter set (energy.toml, area entries).

Two areas, each stated wherever a TOPS/mm2 figure uses it:
- ``array``: the bit-cells only, rows * cols * a_cell;
- ``macro``: array + one WLDAC per row + one comparator per column, times (1 + periphery_overhead) for the
  SRAM-mode periphery (decoder, precharge, write drivers, sense amplifiers), timing control and digital readout.
All areas in m2 (`mm2` converts).
"""
from __future__ import annotations

from .. import params as _params
from ..validate import check_int, check_nonneg, check_positive

AREA_COMPONENTS = ("cells", "wldac", "comparator", "periphery")


def mm2(area_m2: float) -> float:
    """m2 -> mm2."""
    return check_nonneg("area_m2", area_m2) * 1e6


def array_area(P=None, rows: int = 128, cols: int = 128) -> float:
    """Bit-cell area (m2) of a rows x cols array."""
    P = _params.load() if P is None else P
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    return rows * cols * check_positive("a_cell", P.a_cell)


def macro_breakdown(P=None, rows: int = 128, cols: int = 128) -> dict[str, float]:
    """Macro area (m2) by component (AREA_COMPONENTS)."""
    P = _params.load() if P is None else P
    cells = array_area(P, rows, cols)
    wldac = rows * check_positive("a_wldac", P.a_wldac)
    comp = cols * check_positive("a_comparator", P.a_comparator)
    periph = check_nonneg("periphery_overhead", P.periphery_overhead) * (cells + wldac + comp)
    return {"cells": cells, "wldac": wldac, "comparator": comp, "periphery": periph}


def macro_area(P=None, rows: int = 128, cols: int = 128) -> float:
    """Total macro area (m2): cells + WLDACs + comparators + periphery."""
    return float(sum(macro_breakdown(P, rows, cols).values()))
