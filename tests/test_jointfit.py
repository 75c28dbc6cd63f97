"""The joint fit finds the analytic closest point at which every band holds, picks the discrete choice that
needs the smallest move, reports parameters outside their ranges, and reports the closest miss where no point
within the ranges satisfies the bands."""
import math

import pytest

from ibnn.explore import engine as E
from ibnn.explore import jointfit as J
from ibnn.explore import toys
from ibnn.explore.space import Dim

# toys.bands_toy in range units za = (a - 1) / 2, zb = log10(b) / 2: f = 1 + offset + 2 (za + zb),
# h = 1 + 2 (za - zb); c enters only g, which no band constrains.
DIMS = [Dim("a", 0.0, 2.0, default=1.0), Dim("b", 0.1, 10.0, default=1.0), Dim("c", 1.0, 10.0, default=5.0)]
BANDS = [J.Band("f", 2.0, "at_least"), J.Band("h", 1.2, "equal", tol=0.01)]


def fit(bands=BANDS, **kw):
    return J.joint_fit(toys.bands_toy, DIMS, bands, **{"n_starts": 3, "engine": "inprocess", **kw})


def test_the_closest_feasible_point_is_the_analytic_one():
    # min za^2 + zb^2 s.t. za + zb >= 0.5, 0.095 <= za - zb <= 0.105  ->  za = 0.2975, zb = 0.2025
    r = fit(fixed={"offset": 0.0})
    assert r.feasible and all(b.holds for b in r.best.bands)
    z = {m.name: m.z for m in r.best.moves}
    assert z["a"] == pytest.approx(0.2975, abs=1e-5) and z["b"] == pytest.approx(0.2025, abs=1e-5)
    assert r.best.point["a"] == pytest.approx(1.595, abs=1e-4)
    assert r.best.point["b"] == pytest.approx(10 ** 0.405, rel=1e-4)
    assert r.best.distance == pytest.approx(math.hypot(0.2975, 0.2025), abs=1e-5)
    assert [m.name for m in r.moved()] == ["a", "b"]             # c enters no band: it stays at its default
    assert all(m.inside for m in r.best.moves) and DIMS[1].log and not DIMS[0].log


def test_the_discrete_choice_needing_the_smallest_move_wins():
    # offset = 1 satisfies f at the defaults; h alone needs za - zb = 0.095 -> za = -zb = 0.0475
    r = fit(choices={"offset": [0.0, 1.0]})
    assert r.feasible and r.best.choices == {"offset": 1.0} and r.best.changed == ["offset"]
    assert r.best.distance == pytest.approx(math.hypot(0.0475, 0.0475), abs=1e-5)
    assert [f.choices["offset"] for f in r.fits] == [1.0, 0.0] and all(f.feasible for f in r.fits)
    assert r.as_dict()["best"]["moves"][0]["name"] == "a"


def test_no_point_within_the_ranges_gives_the_closest_miss():
    # f <= 3 + offset inside the ranges (za = zb = 0.5): f >= 10 is missed by 6 at best (offset 1)
    r = fit([J.Band("f", 10.0, "at_least")], choices={"offset": [0.0, 1.0]})
    assert not r.feasible and r.best.choices == {"offset": 1.0}
    (band,) = r.best.bands
    assert not band.holds and band.value == pytest.approx(4.0, abs=1e-5)
    assert band.miss == pytest.approx(6.0, abs=1e-5) and band.rel_miss == pytest.approx(0.6, abs=1e-6)
    assert r.best.point["a"] == pytest.approx(2.0, abs=1e-5) and r.best.point["b"] == pytest.approx(10.0, rel=1e-4)
    assert "least violation" in r.best.message and "no point" in r.best.message


def test_extending_the_ranges_finds_a_point_outside_them():
    # f >= 5 needs za + zb >= 1.5 with offset 1: za = zb = 0.75, half a range beyond each end
    r = fit([J.Band("f", 5.0, "at_least")], choices={"offset": [0.0, 1.0]}, extend=1.0)
    assert r.feasible and r.best.choices == {"offset": 1.0}
    moved = {m.name: m for m in r.moved()}
    assert moved["a"].value == pytest.approx(2.5, abs=1e-4) and not moved["a"].inside
    assert moved["b"].value == pytest.approx(10 ** 1.5, rel=1e-4) and not moved["b"].inside


def test_fit_points_are_cached_and_share_one_seed(tmp_path):
    r1 = fit(fixed={"offset": 0.0}, cache_dir=tmp_path, code_version="t", n_starts=1)
    n = E.PointCache(tmp_path).count()
    assert n == r1.n_points > 0
    r2 = fit(fixed={"offset": 0.0}, cache_dir=tmp_path, code_version="t", n_starts=1)
    assert E.PointCache(tmp_path).count() == n and r2.best.point == r1.best.point


def test_bad_bands_and_dims_are_refused():
    with pytest.raises(ValueError, match="rule"):
        J.Band("f", 1.0, "about")
    with pytest.raises(ValueError, match="tol"):
        J.Band("f", 1.0, tol=-1.0)
    with pytest.raises(ValueError, match="no default"):
        J.joint_fit(toys.bands_toy, [Dim("a", 0.0, 2.0)], BANDS, engine="inprocess")
    with pytest.raises(ValueError, match="not among the figures"):
        fit([J.Band("nope", 1.0)], fixed={"offset": 0.0})
    with pytest.raises(ValueError, match="options"):
        fit(choices={"offset": 1.0})
