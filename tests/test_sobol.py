"""Sobol indices through the engine recover the known indices of analytic functions within their bootstrap
intervals, for several outputs at once, with log-uniform sampling where a range spans decades."""
import math

import pytest

from ibnn import params
from ibnn.explore import sobol, toys
from ibnn.explore.points import ParamPoint
from ibnn.explore.space import Dim, dims_from_params, spans_decade

PI = math.pi
ISHIGAMI = [Dim("x1", -PI, PI), Dim("x2", -PI, PI), Dim("x3", -PI, PI)]


@pytest.fixture(scope="module")
def ishigami():
    return sobol.sobol_indices(toys.ishigami, ISHIGAMI, 1024, engine="inprocess", conf_level=0.99,
                               num_resamples=200, seed=1)


def test_ishigami_indices_lie_within_their_intervals(ishigami):
    exact = toys.ishigami_indices()
    for name, ref in exact.items():
        ix = ishigami.index("ishigami", name)
        assert abs(ix.S1 - ref["S1"]) <= ix.S1_conf, (name, ix, ref)
        assert abs(ix.ST - ref["ST"]) <= ix.ST_conf, (name, ix, ref)
        assert 0 < ix.S1_conf < 0.15 and 0 < ix.ST_conf < 0.15    # informative intervals at N = 1024
    assert ishigami.ranking("ishigami", "ST") == ["x1", "x2", "x3"]
    assert ishigami.n_points == 1024 * 5


def test_a_second_output_comes_from_the_same_evaluations(ishigami):
    # lin = x1 + 2 x2, x_i iid: S1 = ST = 1/5, 4/5, 0
    for name, ref in {"x1": 0.2, "x2": 0.8, "x3": 0.0}.items():
        ix = ishigami.index("lin", name)
        assert abs(ix.S1 - ref) <= ix.S1_conf and abs(ix.ST - ref) <= ix.ST_conf
    assert set(ishigami.as_dict()["indices"]) == {"ishigami", "lin"}
    assert ishigami.sweep["engine"]["kind"] == "inprocess" and ishigami.sweep["n_points"] == 5120


def test_decade_ranges_are_sampled_log_uniformly():
    dims = [Dim("c", 1.0, 100.0), Dim("u", 0.0, 1.0)]
    assert dims[0].log and not dims[1].log
    r = sobol.sobol_indices(toys.log_linear, dims, 512, engine="inprocess", conf_level=0.99, seed=2)
    for name in ("c", "u"):                                      # log10(c) and 2u: equal variances
        ix = r.index("y", name)
        assert abs(ix.S1 - 0.5) <= ix.S1_conf and abs(ix.ST - 0.5) <= ix.ST_conf
    points = sobol.sobol_points(dims, 512, seed=2)
    below_10 = sum(p["c"] < 10 for p in points) / len(points)
    assert below_10 == pytest.approx(0.5, abs=0.02)              # half the decades, half the points


def test_dims_from_the_parameter_set_use_the_cited_ranges():
    P = params.load()
    dims = dims_from_params(P)
    assert [d.name for d in dims] == P.ranged() and len(dims) >= 10
    for d in dims:
        e = P.entry(d.name)
        assert (d.low, d.high, d.default) == (e.low, e.high, e.value)
        assert d.log == spans_decade(e.low, e.high)
    with pytest.raises(ValueError, match="no cited low/high"):
        dims_from_params(P, ["array_rows"])


def test_through_the_parameter_set_derived_values_follow_every_point():
    # volts_per_lsb_nominal = cell_lsb_current * t_eval / c_bl (derived): with all three inputs log-uniform,
    # log10 of it is a sum, and S_i = w_i^2 / sum w^2 with w_i the width of each range in decades
    P = params.load()
    names = ["cell_lsb_current", "t_eval", "c_bl_per_cell"]
    dims = dims_from_params(P, names, log={n: True for n in names})
    r = sobol.sobol_indices(ParamPoint(P, _lsb_figures), dims, 64, engine="inprocess", conf_level=0.99)
    w2 = {d.name: d.width ** 2 for d in dims}
    for name in names:
        ix = r.index("log10_v_lsb", name)
        exact = w2[name] / sum(w2.values())
        assert abs(ix.S1 - exact) <= ix.S1_conf and abs(ix.ST - exact) <= ix.ST_conf
    assert r.ranking("log10_v_lsb") == names


def _lsb_figures(P, seed):
    return {"log10_v_lsb": math.log10(P["volts_per_lsb_nominal"])}


def test_the_analysis_is_deterministic_for_every_seed():
    runs = [sobol.sobol_indices(toys.ishigami, ISHIGAMI, 64, engine="inprocess", seed=0) for _ in range(2)]
    assert runs[0].indices == runs[1].indices                      # seed 0 included (SALib ignores a 0 seed)


def test_bad_designs_are_refused():
    with pytest.raises(ValueError, match="power of two"):
        sobol.sobol_points(ISHIGAMI, 1000)
    with pytest.raises(ValueError, match="also sampled"):
        sobol.sobol_points(ISHIGAMI, 8, base={"x1": 0.0})
    with pytest.raises(ValueError, match="missing or not a number"):
        sobol.sobol_indices(toys.ishigami, ISHIGAMI, 8, outputs=["nope"], engine="inprocess")
