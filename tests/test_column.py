"""Bit-line discharge: closed form vs ODE, compression, floor; comparator ties."""
import pytest
import torch

from ibnn import params
from ibnn.circuit.column import REFERENCE_CODE, DrainLaw, decide, discharge, discharge_ode
from ibnn.circuit.wldac import WLDAC

P = params.load()
C, T, VDD = P["c_bl"], P["t_eval"], P["vdd"]


@pytest.fixture(scope="module")
def dac():
    return WLDAC(P)


@pytest.fixture(scope="module")
def law(dac):
    v = dac.code_to_vwl(torch.tensor(REFERENCE_CODE))
    return DrainLaw.fit(lambda vbl: dac.cell.current(v, vbl), VDD)


def test_law_normalised_and_continuous(law):
    assert float(law.f(VDD)) == pytest.approx(1.0)
    fk_sat = law.a1 + law.b1 * law.vk
    assert law.a2 + law.b2 * law.vk == pytest.approx(fk_sat)
    assert float(law.f(0.0)) == 0.0


@pytest.mark.parametrize("i_total", [5e-6, 50e-6, 300e-6, 2e-3])
def test_closed_form_equals_ode_of_separable_law(law, i_total):
    s = torch.tensor(i_total * T / C, dtype=torch.float64)
    closed = discharge(s, law)
    ode = discharge_ode(lambda v: i_total * law.f(v), C, T, VDD, steps=500)
    assert float(closed) == pytest.approx(float(ode), abs=1e-6)


def test_closed_form_vs_ode_of_exact_cell_currents(dac, law):
    """The separable drain law against the exact per-cell drain dependence (codes mixed): error bound."""
    g = torch.Generator().manual_seed(3)
    worst = 0.0
    for n_cells in (5, 20, 60):
        codes = torch.randint(1, 32, (n_cells,), generator=g)
        v = dac.code_to_vwl(codes)
        # exact summed current on a fine bit-line grid (one vectorised solve), linearly interpolated in the ODE
        grid = torch.linspace(0.0, VDD, 1201, dtype=torch.float64)
        table = dac.cell.current(v[None, :], grid[:, None]).sum(-1)
        step = VDD / 1200

        def i_of_v(vbl):
            t = (torch.as_tensor(vbl, dtype=torch.float64) / step).clamp(0, 1200 - 1e-9)
            k = t.floor().long()
            return table[k] + (t - k) * (table[k + 1] - table[k])

        s = table[-1] * T / C
        closed = discharge(s, law)
        ode = discharge_ode(i_of_v, C, T, VDD, steps=1000)
        if VDD - float(ode) < 0.6:                   # operating range: swings up to 600 mV
            worst = max(worst, abs(float(closed) - float(ode)) / (VDD - float(ode)))
    assert worst < 0.05                              # within 5 % of the swing (stated in the notebook)


def test_compression_of_large_sums(law):
    s = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    drop = VDD - discharge(s, law)
    assert bool((drop[1:] <= s[1:]).all())                       # compressed below the linear swing
    gain = drop[1:] / s[1:]
    assert bool((gain[1:] < gain[:-1]).all())                    # and more so for larger sums
    assert bool((drop[1:] > drop[:-1]).all())                    # but still monotone


def test_bitline_never_below_floor(law):
    s = torch.logspace(-4, 2, 200, dtype=torch.float64)
    for k in (1.0, 0.5, 2.0):
        v = discharge(s, law.scaled(k))
        assert bool((v >= 0).all())
    assert float(discharge(torch.tensor(50.0), law)) < 1e-3       # it does reach the floor


def test_zero_compression_is_linear(law):
    s = torch.linspace(0, 2, 5, dtype=torch.float64)
    assert torch.equal(discharge(s, law.scaled(0.0)), VDD - s)


def test_comparator_ties_give_plus_one():
    dv = torch.tensor([0.0, 1e-3, -1e-3, 2e-3])
    ref = torch.tensor([0.0, 1e-3, 0.0, 3e-3])
    assert decide(dv, ref).tolist() == [1, 1, -1, -1]
    assert decide(dv, ref, offset=torch.tensor([0.0, 0.0, 2e-3, 2e-3])).tolist() == [1, 1, 1, 1]


def test_bad_arguments(law):
    with pytest.raises(ValueError, match="c_bl"):
        discharge_ode(lambda v: v, -1.0, T, VDD)
    with pytest.raises(ValueError, match="t_eval"):
        discharge_ode(lambda v: v, C, float("nan"), VDD)
    with pytest.raises(ValueError, match="compression"):
        law.scaled(-1.0)
