"""Bit-cell read stack: EKV currents, drain dependence, leakage, mismatch statistics."""
import math

import pytest
import torch

from ibnn import params
from ibnn.circuit.bitcell import BitCell, ekv_current, pelgrom_sigma

P = params.load()


@pytest.fixture(scope="module")
def cell():
    return BitCell(P)


def test_current_monotone_in_vwl_weak_to_strong(cell):
    v = torch.linspace(0.0, 1.2, 241, dtype=torch.float64)
    i = cell.current(v, 1.2)
    assert bool((i[1:] > i[:-1]).all())
    # spans weak inversion (< nA) to strong inversion (tens of uA)
    assert i[0] < 1e-9 and i[-1] > 30e-6


def test_subthreshold_slope(cell):
    n, ut = cell.access.n, cell.access.ut
    v = torch.tensor([0.10, 0.11], dtype=torch.float64)
    i = cell.current(v, 1.2)
    slope = float(torch.log(i[1] / i[0]) / 0.01)
    assert slope == pytest.approx(1 / (n * ut), rel=0.05)


def test_leakage_only_at_vwl_zero(cell):
    P = params.load()
    leak = float(cell.current(0.0, P["vdd"]))
    assert 0 < leak < 1e-3 * P["cell_lsb_current"]


def test_current_falls_with_bitline(cell):
    vbl = torch.linspace(0.0, 1.2, 121, dtype=torch.float64)
    for vwl in (0.3, 0.5, 0.8):
        i = cell.current(vwl, vbl)
        assert float(i[0]) == 0.0                      # floor: no current at V_BL = 0
        assert bool((i[1:] > i[:-1]).all())            # drain dependence: lower bit-line, lower current


def test_internal_node_balances_stack(cell):
    vwl = torch.linspace(0.2, 1.2, 11, dtype=torch.float64)
    x = cell.internal_node(vwl, 1.0)
    ia = ekv_current(cell.access, vwl, 1.0, x)
    ip = ekv_current(cell.pulldown, cell.vdd, x, 0.0)
    assert torch.allclose(ia, ip, rtol=1e-6)
    assert bool((x >= 0).all() and (x <= 1.0).all())


def test_mismatch_effects(cell):
    i0 = cell.current(0.5, 1.2)
    assert cell.current(0.5, 1.2, dvt=0.02) < i0 < cell.current(0.5, 1.2, dvt=-0.02)
    assert float(cell.current(0.5, 1.2, dbeta=0.1)) == pytest.approx(1.1 * float(i0), rel=1e-12)


def test_mismatch_statistics_match_pelgrom(cell):
    P = params.load()
    g = torch.Generator().manual_seed(5)
    n = 20000
    dvt, db = cell.draw_mismatch((n,), g)
    s_vt = P["a_vt"] / math.sqrt(P["w_access"] * P["l_access"])
    s_b = P["a_beta"] / math.sqrt(P["w_access"] * P["l_access"])
    tol = 4 / math.sqrt(2 * n)                         # 4 sigma of the sample std's relative error
    assert float(dvt.std()) == pytest.approx(s_vt, rel=tol)
    assert float(db.std()) == pytest.approx(s_b, rel=tol)
    assert abs(float(dvt.mean())) < 4 * s_vt / math.sqrt(n)


def test_pelgrom_sigma_and_errors():
    assert pelgrom_sigma(5e-9, 1e-6, 1e-6) == pytest.approx(5e-3)
    with pytest.raises(ValueError, match="W="):
        pelgrom_sigma(5e-9, -1e-6, 1e-6)
    with pytest.raises(ValueError, match="A="):
        pelgrom_sigma(float("nan"), 1e-6, 1e-6)
    with pytest.raises(ValueError, match="scale"):
        BitCell(P).draw_mismatch((3,), scale=-1.0)


def _illinois_on_ekv(cell, v_wl, v_bl, dvt):
    """The internal-node solve written plainly on `ekv_current` (24 Illinois steps in [0, V_BL])."""
    shape = torch.broadcast_shapes(v_wl.shape, v_bl.shape, dvt.shape)

    def h(x):
        return ekv_current(cell.access, v_wl, v_bl, x, dvt) - ekv_current(cell.pulldown, cell.vdd, x, 0.0)
    a, b = torch.zeros(shape, dtype=torch.float64), torch.clamp(v_bl, min=0.0).expand(shape).clone()
    fa, fb = h(a).expand(shape).clone(), h(b).expand(shape).clone()
    side = torch.zeros(shape, dtype=torch.int8)
    for _ in range(24):
        den = fa - fb
        x = torch.where(den != 0, (a * (-fb) + b * fa) / torch.where(den != 0, den, torch.ones_like(den)),
                        0.5 * (a + b))
        x = torch.minimum(torch.maximum(x, a), b)
        fx = h(x)
        left = fx > 0
        fb = torch.where(left & (side == 1), 0.5 * fb, fb)
        fa = torch.where(~left & (side == -1), 0.5 * fa, fa)
        a, fa = torch.where(left, x, a), torch.where(left, fx, fa)
        b, fb = torch.where(left, b, x), torch.where(left, fb, fx)
        side = torch.where(left, torch.ones_like(side), -torch.ones_like(side))
    return x


def test_internal_node_is_the_plain_solve_on_ekv_current_bit_for_bit(cell):
    """The solve hoists what does not depend on X out of its loop: the same bits as the plain Illinois iteration
    on `ekv_current`, over word lines, bit-lines (below 0 V too) and mismatch, broadcast."""
    g = torch.Generator().manual_seed(0)
    v_wl = torch.rand(400, 1, generator=g, dtype=torch.float64) * 1.3
    v_bl = torch.rand(1, 50, generator=g, dtype=torch.float64) * 1.4 - 0.1
    dvt = torch.randn(400, 50, generator=g, dtype=torch.float64) * 0.05
    assert torch.equal(cell.internal_node(v_wl, v_bl, dvt), _illinois_on_ekv(cell, v_wl, v_bl, dvt))
    v = torch.linspace(0.0, 1.2, 4097, dtype=torch.float64)
    assert torch.equal(cell.internal_node(v, v), _illinois_on_ekv(cell, v, v, torch.tensor(0.0)))
