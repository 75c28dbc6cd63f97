"""One-sided local models (ibnn.explore.surrogate.measure_local(one_sided=...)): one point per such input, and
the forward difference's slope is the central one at z0 + h/2 (off by h/2 times the second derivative)."""
import pytest

from ibnn.explore.space import Dim
from ibnn.explore.surrogate import measure_local

DIMS = [Dim("a", 0.0, 1.0, default=0.5), Dim("b", 0.0, 1.0, default=0.5)]


class Quadratic:
    """y = 3 z_a + 2 z_a^2 - z_b (z in range units around the defaults), counting its evaluations."""

    calls = 0

    def fingerprint(self) -> str:
        return "quadratic"

    def __call__(self, point, seed):
        Quadratic.calls += 1
        za, zb = (d.to_z(point.get(d.name, d.default)) for d in DIMS)
        return {"y": 3 * za + 2 * za ** 2 - zb}


def test_forward_differences_take_one_point_and_carry_the_stated_error():
    h = 0.2
    Quadratic.calls = 0
    central = measure_local(Quadratic(), ["y"], DIMS, {}, h, "inprocess")["y"]
    assert Quadratic.calls == 5
    Quadratic.calls = 0
    fwd = measure_local(Quadratic(), ["y"], DIMS, {}, h, "inprocess", one_sided=["a"])["y"]
    assert Quadratic.calls == 4 and fwd.one_sided == ("a",)
    assert central.slopes == pytest.approx((3.0, -1.0), abs=1e-12)
    assert fwd.slopes == pytest.approx((3.0 + 2.0 * h, -1.0), abs=1e-12)      # h/2 x y'' = h/2 x 4
