"""Sobol indices from a response surface (ibnn.explore.emulated): exact for a function of the surface's form
(analytic indices recovered, leave-one-out error ~0), and the stated error exposes a function it cannot carry."""
import numpy as np
import pytest

from ibnn.explore import emulated as EM
from ibnn.explore.sobol import sobol_points
from ibnn.explore.space import Dim

DIMS = [Dim("a", 0.0, 1.0), Dim("b", 0.0, 1.0), Dim("c", 1.0, 100.0)]     # c: log-uniform


def _values(points, f):
    u = EM.unit_coordinates(DIMS, points)
    return u, f(u)


def test_a_function_of_the_surfaces_form_gets_its_analytic_indices():
    pts = sobol_points(DIMS, 8, seed=1)                          # 40 real points
    u, y = _values(pts, lambda u: 2.0 * u[:, 0] + u[:, 1] ** 2 - 1.0)   # c does nothing
    assert EM.inert_inputs(DIMS, {"y": y}, 8) == {"y": ["c"]}
    r = EM.emulated_sobol(DIMS, pts, {"y": y}, n_base=2048, seed=0)
    s = r.surfaces["y"]
    assert s.q2 > 1 - 1e-9 and s.loo_rms < 1e-8
    var_a, var_b = 4.0 / 12.0, 1.0 / 5.0 - 1.0 / 9.0            # Var(2u), Var(u^2) for u ~ U(0, 1)
    ix = {i.name: i for i in r.indices["y"]}
    for name, want in (("a", var_a / (var_a + var_b)), ("b", var_b / (var_a + var_b)), ("c", 0.0)):
        assert abs(ix[name].S1 - want) <= max(ix[name].S1_conf, 0.02)
        assert abs(ix[name].ST - want) <= max(ix[name].ST_conf, 0.02)
        assert ix[name].ST_conf < 0.05


def test_the_stated_error_exposes_what_the_surface_cannot_carry():
    pts = sobol_points(DIMS, 8, seed=1)
    _, y = _values(pts, lambda u: np.sin(9.0 * u[:, 0]) * np.cos(7.0 * u[:, 1]))
    s = EM.fit_surface("y", EM.unit_coordinates(DIMS, pts), y)
    assert s.q2 < 0.5


def test_positive_outputs_are_fitted_as_logs_and_too_few_points_are_refused():
    pts = sobol_points(DIMS, 8, seed=1)
    u, y = _values(pts, lambda u: np.exp(0.5 + u[:, 0] - 2.0 * u[:, 2]))
    s = EM.fit_surface("y", u, y)
    assert s.log and s.loo_rms < 1e-9
    assert np.allclose(s.predict_unit(u), y, rtol=1e-9)
    with pytest.raises(ValueError, match="at least 4 points"):
        EM.fit_surface("y", u[:3], y[:3])


def test_resolved_indices_take_the_surface_only_where_it_predicts_the_variance():
    from ibnn.explore.paperstudy import Q2_MIN, resolved_sobol
    ix = {"x": {"S1": 0.5, "S1_conf": 0.1, "ST": 0.5, "ST_conf": 0.1}}
    direct = {"indices": {"good": ix, "bad": ix}, "ranking": {"good": ["x"], "bad": ["x"]}, "n_base": 4,
              "n_points": 12}
    emu_ix = {"x": {"S1": 0.9, "S1_conf": 0.01, "ST": 0.9, "ST_conf": 0.01}}
    emu = {"indices": {"good": emu_ix, "bad": emu_ix}, "ranking": {"good": ["x"], "bad": ["x"]}, "n_base": 4096,
           "n_points": 12288, "surfaces": {"good": {"q2": Q2_MIN + 0.01}, "bad": {"q2": Q2_MIN - 0.01}}}
    r = resolved_sobol(direct, emu)
    assert r["indices"]["good"] is emu_ix and r["source"]["good"]["source"] == "emulated"
    assert r["indices"]["bad"] is ix and r["source"]["bad"]["source"] == "direct"


def test_a_noisy_drop_like_output_is_fitted_as_y_where_asked_and_its_error_states_the_noise():
    """An output named in `linear` is fitted as y although every value is positive (a drop near zero, whose log
    would magnify its noise); its leave-one-out error reflects the noise added to a quadratic trend."""
    pts = sobol_points(DIMS, 8, seed=1)
    u, trend = _values(pts, lambda u: 0.05 + 0.1 * u[:, 0] ** 2 + 0.02 * u[:, 1])
    noise = np.random.default_rng(0).normal(0.0, 0.002, len(trend))
    r = EM.emulated_sobol(DIMS, pts, {"drop": trend + noise}, n_base=256, seed=0, linear=("drop",))
    s = r.surfaces["drop"]
    assert not s.log and 0.9 < s.q2 < 1 - 1e-6            # the noise is seen, the trend carried
    ix = {i.name: i for i in r.indices["drop"]}
    assert ix["a"].ST > 0.8 and ix["a"].ST - ix["a"].ST_conf > ix["b"].ST + ix["b"].ST_conf
    assert EM.emulated_sobol(DIMS, pts, {"drop": trend + noise}, n_base=256, seed=0).surfaces["drop"].log
