"""Replica-cell mismatch (ibnn.circuit.replica): the exact solve of the diode-connected law, the near
one-for-one shift, Pelgrom scaling at the replica's area."""
import math

import pytest
import torch

from ibnn import params
from ibnn.circuit.bitcell import ekv_current, ekv_current_slope
from ibnn.circuit.replica import cell_current_change, replica_sigmas, shift_per_dvt, word_line_voltage
from ibnn.circuit.wldac import WLDAC

P = params.load()
CODES = torch.tensor([1, 4, 16, 31])


@pytest.fixture(scope="module")
def dac():
    return WLDAC(P)


def test_no_mismatch_is_the_tabulated_replica_and_the_solve_is_exact(dac):
    i = dac.dac_current(torch.arange(32))
    assert torch.equal(word_line_voltage(dac, i), dac.word_line_voltage(i))
    assert float(word_line_voltage(dac, torch.tensor(0.0), 0.01)) == 0.0
    v = word_line_voltage(dac, i, torch.tensor(0.03), torch.tensor(0.05))
    residual = dac.ratio * 1.05 * dac.cell.current(v, v, torch.tensor(0.03)) - i
    assert float((residual[1:] / i[1:]).abs().max()) < 1e-9


def test_split_solve_meets_the_full_law_at_rounding_level_and_each_element_alone(dac):
    """The split solve meets the replica law (through bitcell's nested stack solve) to ~1e-13 relative; an
    element's V_WL does not depend on the others (each stops on its own step), up to the rounding of vectorised
    transcendental functions."""
    g = torch.Generator().manual_seed(3)
    sv, sb = replica_sigmas(P)
    bit_err = 0.05 * torch.randn(64, 1, dac.bits, generator=g, dtype=torch.float64)
    i = dac.dac_current(torch.arange(1, 32)[None, :], bit_err)                           # (64, 31)
    d, b = (4 * s * torch.randn(64, 1, generator=g, dtype=torch.float64) for s in (sv, sb))
    v = word_line_voltage(dac, i, d, b)
    law = dac.ratio * (1 + b) * dac.cell.current(v, v, d)                # the nested stack solve of bitcell
    assert float(((law - i) / i).abs().max()) < 1e-11
    part = word_line_voltage(dac, i[5:7, 3:9], d[5:7], b[5:7])             # alone: only rounding differs
    assert float((part - v[5:7, 3:9]).abs().max()) < 1e-14


def test_a_current_beyond_the_replica_at_vdd_gives_vdd_like_the_table(dac):
    i = 2 * dac.replica_current(torch.tensor(dac.vdd))
    assert float(dac.word_line_voltage(i)) == dac.vdd
    v = float(word_line_voltage(dac, i, torch.tensor(0.01, dtype=torch.float64), torch.tensor(0.02)))
    assert abs(v - dac.vdd) <= 1e-14


def test_ekv_slope_is_the_derivative_of_the_current(dac):
    x = torch.linspace(0.0, 0.3, 31, dtype=torch.float64)
    for dev, vg, vd, vs, dirs in ((dac.cell.pulldown, dac.vdd, x, 0.0, (0.0, 1.0, 0.0)),
                                  (dac.cell.access, 0.2 + x, 0.2 + x, 0.01, (1.0, 1.0, 0.0))):
        i, slope = ekv_current_slope(dev, vg, vd, vs, 0.02, *dirs)
        assert torch.equal(i, ekv_current(dev, vg, vd, vs, 0.02))
        h = 1e-6
        move = [torch.as_tensor(t, dtype=torch.float64) + h * e for t, e in zip((vg, vd, vs), dirs)]
        back = [torch.as_tensor(t, dtype=torch.float64) - h * e for t, e in zip((vg, vd, vs), dirs)]
        fd = (ekv_current(dev, *move, 0.02) - ekv_current(dev, *back, 0.02)) / (2 * h)
        assert torch.allclose(slope, fd, rtol=1e-6, atol=1e-15)


def test_sigmas_follow_pelgrom_at_the_replica_area():
    for k in (1.0, 4.0, 9.0):
        sv, sb = replica_sigmas(P, k)
        assert sv == pytest.approx(P["sigma_vt_cell"] / math.sqrt(k))
        assert sb == pytest.approx(P["sigma_beta_cell"] / math.sqrt(k))
    with pytest.raises(ValueError, match="replica ratio"):
        replica_sigmas(P, 0.0)


def test_shift_is_slightly_below_one_for_one_because_the_drain_moves_too(dac):
    s = shift_per_dvt(dac, CODES)
    assert bool((s < 1).all()) and bool((s > 0.85).all())
    s0 = shift_per_dvt(WLDAC(P.replace(ptm_eta0=0.0, clm=0.0)), CODES)        # no drain effects
    assert torch.allclose(s0, torch.ones_like(s0), atol=2e-3)


def test_a_weak_replica_raises_every_cell_current_most_at_small_codes(dac):
    sv, sb = replica_sigmas(P)
    up, dn = cell_current_change(dac, CODES, dvt=sv), cell_current_change(dac, CODES, dvt=-sv)
    assert bool((up > 0).all()) and bool((dn < 0).all())
    assert bool((up[1:] < up[:-1]).all())               # weak inversion (small codes) is most sensitive
    assert float(up[0]) > abs(float(dn[0]))             # exponential: +sigma gains more than -sigma loses
    ch = cell_current_change(dac, CODES, dbeta=sb)      # a stronger replica lowers V_WL
    assert bool((ch < 0).all()) and bool((ch.abs() < sb).all())


def test_bad_mismatch():
    with pytest.raises(ValueError, match="dbeta > -1"):
        word_line_voltage(WLDAC(P), torch.tensor(1e-6), 0.0, -1.5)
    with pytest.raises(ValueError, match="i_dac"):
        word_line_voltage(WLDAC(P), torch.tensor(-1e-6), 0.01)
