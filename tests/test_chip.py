"""Simulated chips: the Chip / Nonidealities contract (docs/architecture.md)."""
import math
from dataclasses import replace as dc_replace

import pytest
import torch

from ibnn import params
from ibnn.circuit.chip import Chip, Nonidealities
from ibnn.circuit.nonideal import alone
from ibnn.params import ParamSet

P = params.load()
R = C = 128


def _weights(seed, shape=(R, C)):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(torch.int8)


def _codes(seed, b, rows=R, maxc=31):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, maxc + 1, (b, rows), generator=g)


@pytest.fixture(scope="module")
def chips():
    return Chip(P, n_chips=3, seed=7, device="cpu").program(_weights(1))


# ---------------------------------------------------------------- Nonidealities
def test_nonidealities_defaults_and_ideal():
    assert Nonidealities() == Nonidealities(1, 1, 1, 1, 1)
    assert Nonidealities.ideal().is_ideal and not Nonidealities().is_ideal
    with pytest.raises(ValueError, match="noise"):
        Nonidealities(noise=-1.0)
    with pytest.raises(ValueError, match="compression"):
        Nonidealities(compression=float("nan"))


# ---------------------------------------------------------------- ideal exactness
def test_ideal_mode_is_exact_with_ties():
    chip = Chip(P, n_chips=2, seed=0, nonideal=Nonidealities.ideal(), device="cpu")
    w = _weights(2, (2, R, C))
    chip.program(w)
    codes = _codes(3, 300)
    codes[:50, 81:] = 0                                  # unused rows
    dot = torch.einsum("br,nrc->nbc", codes.long(), w.long())
    theta = dot[:, 0, :].clone()                         # ties on input 0 of each chip ...
    theta[:, ::3] += 1                                   # ... and off-by-one either side elsewhere
    theta[:, 1::3] -= 1
    _o = chip.evaluate(codes, theta=theta, dv=True)
    dec, dv = _o.decisions, _o.dv
    expect = torch.where(dot >= theta[:, None, :], 1, -1).to(torch.int8)
    assert dec.dtype == torch.int8 and dec.shape == (2, 300, C)
    assert torch.equal(dec, expect)
    assert bool((dec[:, 0, ::3] == -1).all() and (dec[:, 0, 2::3] == 1).all())
    assert torch.allclose(dv, dot.double() * chip.volts_per_lsb)
    assert chip.volts_per_lsb == pytest.approx(P["volts_per_lsb_nominal"])
    # per-chip codes
    codes3 = torch.stack([_codes(4, 50), _codes(5, 50)])
    dot3 = torch.einsum("nbr,nrc->nbc", codes3.long(), w.long())
    assert torch.equal(chip.evaluate(codes3).decisions, torch.where(dot3 >= 0, 1, -1).to(torch.int8))


def test_ideal_sign_zero_is_plus_one():
    chip = Chip(P, nonideal=Nonidealities.ideal(), device="cpu").program(torch.ones(R, C, dtype=torch.int8))
    assert bool((chip.evaluate(torch.zeros(4, R, dtype=torch.long)).decisions == 1).all())


# ---------------------------------------------------------------- seeds and batching
def test_same_seed_same_chip_different_seed_different():
    a, b, c = (Chip(P, n_chips=1, seed=s, device="cpu") for s in (11, 11, 12))
    assert torch.equal(a.dvt, b.dvt) and torch.equal(a.offset, b.offset)
    assert torch.equal(a.dac_bit_error, b.dac_bit_error) and torch.equal(a.dbeta, b.dbeta)
    assert not torch.equal(a.dvt, c.dvt) and not torch.equal(a.offset, c.offset)


def test_batch_over_chips_equals_loop(chips):
    codes = _codes(6, 500)
    theta = torch.linspace(-50, 50, C)
    _o = chips.evaluate(codes, theta=theta, noise_seed=9, dv=True)
    dec, dv = _o.decisions, _o.dv
    for k in range(chips.n_chips):
        one = Chip(P, n_chips=1, seed=7, device="cpu", first_chip=k).program(_weights(1))
        assert torch.equal(one.dvt[0], chips.dvt[k]) and torch.equal(one.offset[0], chips.offset[k])
        _o = one.evaluate(codes, theta=theta, noise_seed=9, dv=True)
        d1, v1 = _o.decisions, _o.dv
        assert torch.equal(d1[0], dec[k])
        assert torch.allclose(v1[0], dv[k], atol=1e-6)
    # chips differ from each other
    assert not torch.equal(dec[0], dec[1])


def test_noise_seed_reproducible(chips):
    codes = _codes(8, 400)
    a = chips.evaluate(codes, noise_seed=1).decisions
    b = chips.evaluate(codes, noise_seed=1).decisions
    c = chips.evaluate(codes, noise_seed=2).decisions
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_scales_multiply_fixed_draws():
    a = Chip(P, seed=3, device="cpu")
    b = Chip(P, seed=3, device="cpu", nonideal=Nonidealities(cell_mismatch=0.5, comparator_offset=2.0))
    assert torch.allclose(b.dvt, 0.5 * a.dvt) and torch.allclose(b.offset, 2.0 * a.offset)


# ---------------------------------------------------------------- mismatch statistics
def test_mismatch_statistics_match_declared_sigmas():
    chip = Chip(P, n_chips=4, seed=21, device="cpu")
    n_cells, n_off = chip.dvt.numel(), chip.offset.numel()
    tol_c = 4 / math.sqrt(2 * n_cells)
    tol_o = 4 / math.sqrt(2 * n_off)
    assert float(chip.dvt.std()) == pytest.approx(P["sigma_vt_cell"], rel=tol_c)
    assert float(chip.dbeta.std()) == pytest.approx(P["sigma_beta_cell"], rel=tol_c)
    assert float(chip.offset.std()) == pytest.approx(P["comp_offset_sigma"], rel=tol_o)
    e = chip.dac_bit_error[..., 0]                       # LSB source: sigma_u
    assert float(e.std()) == pytest.approx(P["sigma_dac_unit"], rel=4 / math.sqrt(2 * e.numel()))


def test_comparator_offset_seen_in_decisions():
    """With only offsets on, a column's decision flips where theta * volts_per_lsb crosses -offset."""
    ni = alone("comparator_offset")
    chip = Chip(P, seed=5, nonideal=ni, device="cpu").program(torch.ones(R, C, dtype=torch.int8))
    codes = torch.zeros(1, R, dtype=torch.long)
    codes[0, :10] = 10                                   # dot = 100 on every column
    thetas = torch.arange(60, 141, dtype=torch.float64)
    flips = []
    for th in thetas:
        flips.append(chip.evaluate(codes, theta=torch.full((C,), float(th)), noise_seed=0).decisions[0, 0])
    flips = torch.stack(flips)                           # (thetas, C)
    first_minus = (flips == -1).double().argmax(0)
    est = (thetas[first_minus] - 100) * chip.volts_per_lsb   # ~ offset (within one LSB)
    assert torch.allclose(est, chip.offset[0], atol=chip.volts_per_lsb * 1.01)


# ---------------------------------------------------------------- separable approximation
def test_separable_approximation_error_bound(chips):
    g = torch.Generator().manual_seed(4)
    r, c, k = (torch.randint(0, hi, (4000,), generator=g) for hi in (R, C, 32))
    for chip_id in range(chips.n_chips):
        exact = chips.cell_current(chip_id, r, c, k, exact=True)
        approx = chips.cell_current(chip_id, r, c, k, exact=False)
        err_lsb = (approx - exact).abs() / chips.i_lsb
        assert float(err_lsb.max()) < 0.01             # per cell, in LSB
    assert chips.approx_residual_lsb <= 0.01


def test_dv_matches_exact_row_sums(chips):
    """dV from the chip against the exact per-cell model summed in float64 and the same closed form: each cell's
    charge is its start-of-pulse current x t_eval x the window charge q(c), and the word-line kick takes
    a(c) x (mean first-pass drop of all 2 x cols lines) of it, both in the chip."""
    from ibnn.circuit.column import discharge
    codes = _codes(10, 4)
    codes[:, 81:] = 0
    dv = chips.evaluate(codes, noise_seed=0, dv=True).dv
    rows = torch.arange(R)[:, None]
    cols = torch.arange(C)[None, :]
    w = chips.weights[0]
    scale = chips.t_eval / chips.c_bl
    for b in range(codes.shape[0]):
        i = chips.cell_current(0, rows, cols, codes[b][:, None], exact=True)          # (R, C) A
        i = i * chips.window_charge[codes[b]][:, None]
        lines = lambda cur: torch.stack([(cur * (w == -1)).sum(0), (cur * (w == 1)).sum(0)]) * scale  # noqa: E731
        s = lines(i)                                                                   # [BL, BLB] (2, C) V
        mean_drop = (chips.vdd - discharge(s, chips.drain_law)).mean()
        s = s - mean_drop * lines(i * chips.coupling[codes[b]][:, None])
        ref = discharge(s[0], chips.drain_law) - discharge(s[1], chips.drain_law)
        assert torch.allclose(dv[0, b].double(), ref, atol=0.05 * chips.volts_per_lsb)


# ---------------------------------------------------------------- silicon behaviour
def test_code_zero_rows_leak_and_all_columns_discharge():
    chip = Chip(P, seed=1, device="cpu").program(_weights(3))
    _o = chip.evaluate(torch.zeros(2, R, dtype=torch.long), noise_seed=0, dv=True)
    _, dv = _o.decisions, _o.dv
    assert bool((dv != 0).any())                                   # leakage of code-0 rows
    assert float(dv.abs().max()) < chip.volts_per_lsb              # ... but well below one LSB
    ideal = Chip(P, seed=1, device="cpu", nonideal=Nonidealities.ideal()).program(_weights(3))
    _o = ideal.evaluate(torch.zeros(2, R, dtype=torch.long), dv=True)
    _, dv0 = _o.decisions, _o.dv
    assert bool((dv0 == 0).all())


def test_compression_of_large_dot_products():
    w = torch.ones(R, C, dtype=torch.int8)
    ni = alone("compression")
    chip = Chip(P, seed=0, nonideal=ni, device="cpu").program(w)
    codes = torch.zeros(8, R, dtype=torch.long)
    for b, n in enumerate((1, 2, 4, 8, 16, 32, 64, 128)):
        codes[b, :n] = 31
    _o = chip.evaluate(codes, noise_seed=0, dv=True)
    _, dv = _o.decisions, _o.dv
    gain = dv[0, :, 0].double() / (codes.sum(1).double() * chip.volts_per_lsb)
    assert bool((gain[1:] < gain[:-1]).all())                      # compresses more with larger sums
    assert float(gain[0]) > 0.9 and float(gain[-1]) < 0.5       # (gain[0] < 1: INL of code 31)
    assert float(dv.max()) <= chip.vdd                              # bit-line floor bounds the swing


def test_noisy_chip_tracks_ideal_far_from_threshold():
    chip = Chip(P, seed=2, device="cpu").program(_weights(5))
    codes = _codes(11, 2000, maxc=7)                     # MNIST-like regime: 81 rows, small codes,
    codes[:, 81:] = 0                                    # line swings of a few hundred mV
    dot = (codes.long() @ chip.weights[0].long())
    dec = chip.evaluate(codes, noise_seed=0).decisions[0]
    far = dot.abs() > 60
    ideal = torch.where(dot >= 0, 1, -1).to(torch.int8)
    assert float((dec[far] == ideal[far]).double().mean()) > 0.97


# ---------------------------------------------------------------- errors
def test_bad_codes_weights_theta(chips):
    good = _codes(1, 4)
    with pytest.raises(ValueError, match="codes contains 32"):
        chips.evaluate(good.clone().fill_(32))
    with pytest.raises(ValueError, match="codes contains -1"):
        chips.evaluate(good.clone().fill_(-1))
    with pytest.raises(ValueError, match="codes must be an integer"):
        chips.evaluate(good.double())
    with pytest.raises(ValueError, match=r"codes shape=\(4, 100\)"):
        chips.evaluate(good[:, :100])
    with pytest.raises(ValueError, match=r"codes shape=\(2, 4, 128\)"):
        chips.evaluate(good.expand(2, 4, R))
    with pytest.raises(ValueError, match=r"theta shape=\(100,\)"):
        chips.evaluate(good, theta=torch.zeros(100))
    with pytest.raises(ValueError, match="theta contains nan"):
        chips.evaluate(good, theta=torch.full((C,), float("nan")))
    with pytest.raises(ValueError, match="noise_seed"):
        chips.evaluate(good, noise_seed=-1)
    with pytest.raises(ValueError, match="weights contain 0"):
        chips.program(torch.zeros(R, C, dtype=torch.int8))
    with pytest.raises(ValueError, match="weights contain 2"):
        chips.program(torch.full((R, C), 2))
    with pytest.raises(ValueError, match=r"weights shape=\(128, 64\)"):
        chips.program(torch.ones(R, 64, dtype=torch.int8))
    with pytest.raises(ValueError, match="weights must be an integer"):
        chips.program(torch.ones(R, C))
    with pytest.raises(ValueError, match="program"):
        Chip(P, device="cpu").evaluate(good)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="n_chips"):
        Chip(P, n_chips=0)
    with pytest.raises(ValueError, match="seed"):
        Chip(P, seed=-1)
    with pytest.raises(ValueError, match="nonideal"):
        Chip(P, nonideal={"noise": 0})
    with pytest.raises(ValueError, match="params"):
        Chip({"vdd": 1.2})


@pytest.mark.parametrize("name,value", [("t_eval", -1e-9), ("c_bl", float("nan")),
                                        ("comp_offset_sigma", -0.01), ("sigma_vt_cell", float("inf")),
                                        ("cell_lsb_current", 0.0)])
def test_bad_parameter_values(name, value):
    bad = ParamSet({**P.entries, name: dc_replace(P.entry(name), value=value)})
    with pytest.raises(ValueError, match=name):
        Chip(bad)
