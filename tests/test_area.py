"""Area model: cells, WLDACs, comparators, periphery; units and ValueError paths."""
import pytest

from ibnn import params
from ibnn.cost import area, ops

P = params.load()


def test_array_area_is_cells_times_cell_area():
    assert area.array_area(P) == pytest.approx(128 * 128 * P["a_cell"])
    assert area.mm2(area.array_area(P)) == pytest.approx(128 * 128 * P["a_cell"] * 1e6)


def test_macro_breakdown():
    bd = area.macro_breakdown(P)
    assert set(bd) == set(area.AREA_COMPONENTS)
    assert area.macro_area(P) == pytest.approx(sum(bd.values()))
    assert area.macro_area(P) > area.array_area(P)
    assert bd["periphery"] == pytest.approx(P["periphery_overhead"] * (bd["cells"] + bd["wldac"] + bd["comparator"]))
    assert area.macro_area(P.replace(a_cell=P.entry("a_cell").high)) > area.macro_area(P)


def test_density_units():
    # peak ops per second over the macro area
    ops_s = ops.throughput_ops_per_s(ops.array_ops_per_cycle("mac2", 128, 128, 5), P["f_classify"])
    d = ops.tops_per_mm2(ops_s, area.macro_area(P))
    assert d == pytest.approx(ops_s / 1e12 / (area.macro_area(P) * 1e6))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_areas(bad):
    with pytest.raises(ValueError, match="area_m2"):
        area.mm2(bad)
    with pytest.raises(ValueError, match=r"a_cell=.*out of range"):
        P.replace(a_cell=bad)


def test_bad_sizes():
    with pytest.raises(ValueError, match=r"array_rows=0(\.0)? is out of range"):
        P.replace(array_rows=0)
    with pytest.raises(ValueError, match="array_cols=1.5 must be a whole number"):
        area.macro_area(P.replace(array_cols=1.5))
