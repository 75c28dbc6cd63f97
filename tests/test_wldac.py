"""Word-line DAC: code 0 off, monotone transfer, mirror accuracy, bit-error statistics, INL/DNL, bad codes."""
import math

import pytest
import torch

from ibnn import params
from ibnn.circuit.wldac import WLDAC, inl_dnl

P = params.load()


@pytest.fixture(scope="module")
def dac():
    return WLDAC(P)


def test_code_zero_keeps_row_off(dac):
    assert float(dac.code_to_vwl(torch.tensor(0))) == 0.0
    i0 = float(dac.cell_current(torch.tensor(0)))
    assert i0 < 1e-3 * params.load()["cell_lsb_current"]


def test_nominal_transfer_monotone(dac):
    t = dac.transfer()
    assert bool((t[1:] > t[:-1]).all())
    v = dac.code_to_vwl(torch.arange(32))
    assert bool((v[1:] > v[:-1]).all())


def test_monte_carlo_transfer_monotone_in_mean(dac):
    g = torch.Generator().manual_seed(1)
    n = 400
    err = dac.draw_bit_errors((n,), g)
    dvt, db = dac.cell.draw_mismatch((n,), g)
    codes = torch.arange(32)
    i = dac.cell_current(codes[None, :], err[:, None, :], dvt[:, None], db[:, None])      # (n, 32)
    mean = i.mean(0)
    assert bool((mean[1:] > mean[:-1]).all())


def test_replica_mirrors_dac_current(dac):
    codes = torch.arange(1, 32)
    i_dac = dac.dac_current(codes)
    i_rep = dac.replica_current(dac.word_line_voltage(i_dac))
    assert torch.allclose(i_rep, i_dac, rtol=1e-4)


def test_dac_current_is_binary_weighted(dac):
    codes = torch.arange(32)
    assert torch.allclose(dac.dac_current(codes), dac.unit_current * codes.double())


def test_bit_error_statistics(dac):
    g = torch.Generator().manual_seed(2)
    n = 20000
    err = dac.draw_bit_errors((n,), g)
    tol = 4 / math.sqrt(2 * n)
    for b in range(dac.bits):
        assert float(err[:, b].std()) == pytest.approx(dac.sigma_unit / math.sqrt(2 ** b), rel=tol)
    # full-scale current spread: sigma_u / sqrt(31) relative (31 independent unit sources)
    i = dac.dac_current(torch.full((n,), 31), err)
    assert float(i.std() / i.mean()) == pytest.approx(dac.sigma_unit / math.sqrt(31), rel=tol)


def test_inl_dnl_of_ideal_ramp_is_zero():
    inl, dnl = inl_dnl(torch.arange(32.0) * 3 + 1)
    assert float(inl.abs().max()) < 1e-12 and float(dnl.abs().max()) < 1e-12
    inl, dnl = inl_dnl(torch.tensor([0.0, 1.0, 3.0, 3.0]))
    assert torch.allclose(dnl, torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))


def test_nominal_inl_is_finite_and_bounded(dac):
    inl, dnl = inl_dnl(dac.transfer())
    assert float(inl.abs().max()) < 5 and float(dnl.min()) > -1     # monotone: DNL > -1


@pytest.mark.parametrize("bad", [torch.tensor([0, 32]), torch.tensor([-1, 3]), torch.tensor([1.0, 2.0])])
def test_bad_codes(dac, bad):
    with pytest.raises(ValueError, match="codes"):
        dac.dac_current(bad)


def test_bad_inputs(dac):
    with pytest.raises(ValueError, match="i_dac"):
        dac.word_line_voltage(torch.tensor([-1e-6]))
    with pytest.raises(ValueError, match="scale"):
        dac.draw_bit_errors((2,), scale=float("nan"))
