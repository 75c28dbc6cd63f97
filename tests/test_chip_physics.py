"""The chip model's mechanisms from the word-line and comparator physics: replica mismatch per row,
the window charge, the word-line kick of the falling bit-lines, physical temporal noise, the comparator's
common-mode offset; their draws come after the earlier ones; a column subset evaluates like the full array."""
import dataclasses
import math

import pytest
import torch

from ibnn import params
from ibnn.circuit import NONIDEALITIES, Chip, Nonidealities, alone
from ibnn.circuit.replica import replica_sigmas

P = params.load()
R = C = 128
BASE = Nonidealities.ideal()


def _chip(n=2, **kw):
    return Chip(P, n_chips=n, seed=3, nonideal=dataclasses.replace(BASE, compression=1.0, **kw), device="cpu")


def test_every_field_is_a_mechanism_and_ideal_switches_all_off():
    assert NONIDEALITIES[:5] == ("cell_mismatch", "dac_mismatch", "comparator_offset", "noise", "compression")
    new = {"replica_mismatch", "window_charge", "wl_coupling", "physical_noise", "comparator_cm"}
    assert new <= set(NONIDEALITIES) and Nonidealities.ideal().is_ideal
    one = alone("replica_mismatch")
    assert all(getattr(one, n) == (1.0 if n == "replica_mismatch" else 0.0) for n in NONIDEALITIES)


def test_new_draws_come_last_and_leave_the_earlier_ones_unchanged():
    a = Chip(P, n_chips=1, seed=4, nonideal=dataclasses.replace(BASE, dac_mismatch=1.0, comparator_offset=1.0))
    b = Chip(P, n_chips=1, seed=4, nonideal=Nonidealities())
    assert torch.equal(a.dac_bit_error, b.dac_bit_error) and torch.equal(a.offset, b.offset)
    assert bool((a.replica_dvt == 0).all()) and not bool((b.replica_dvt == 0).any())
    assert not torch.equal(b.offset_n, b.offset_p)


def test_replica_mismatch_scales_every_cell_of_a_row_alike():
    ref, rep = _chip(), _chip(replica_mismatch=1.0)
    rows, cols, codes = torch.arange(R)[:, None], torch.arange(C)[None, :], torch.full((1,), 8)
    ratio = rep.cell_current(0, rows, cols, codes) / ref.cell_current(0, rows, cols, codes)     # (R, C)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-9)                     # shared by the row
    assert float(rep.replica_dvt.std()) == pytest.approx(replica_sigmas(P)[0], rel=0.2)
    assert float(ratio[:, 0].std()) > 0.03                    # a row-wise gain error of several % at code 8


def test_window_charge_multiplies_each_code_and_retimes_exactly():
    chip = _chip(window_charge=1.0).program(torch.ones(R, C, dtype=torch.int8))
    assert chip.window_charge[0] == 1.0 and float(chip.window_charge[1]) < 1.0
    assert torch.allclose(chip.window_charge[2:], torch.ones(30, dtype=torch.float64), atol=1e-3)
    P2 = P.replace(t_eval=1.5e-9)
    fresh = Chip(P2, n_chips=2, seed=3, nonideal=chip.nonideal, device="cpu")
    fresh.program(torch.ones(R, C, dtype=torch.int8))
    codes = torch.zeros(3, R, dtype=torch.long)
    codes[:, :30] = torch.tensor([1, 2, 16])[:, None]
    a = chip.retimed(P2).evaluate(codes, noise_seed=0, dv=True).dv
    b = fresh.evaluate(codes, noise_seed=0, dv=True).dv
    assert torch.allclose(a, b, atol=1e-6)


def test_physical_noise_has_the_ktc_plus_shot_variance():
    """Only physical noise on, all weights +1 (only BLB falls): a reference one expected sigma above dV gives +1
    with probability Phi(-1) over 128 identical columns x 30 noise seeds."""
    w = torch.ones(R, C, dtype=torch.int8)
    chip, quiet = _chip(physical_noise=1.0).program(w), _chip().program(w)
    codes = torch.zeros(1, R, dtype=torch.long)
    codes[0, :20] = 10
    dv = float(quiet.evaluate(codes, noise_seed=0, dv=True).dv[0, 0, 0])
    q, kt = P["q_electron"], P["q_electron"] * P["thermal_voltage"]
    sigma = math.sqrt(2 * kt / P["c_bl"] + q * abs(dv) / P["c_bl"])
    theta = torch.full((C,), (dv + sigma) / chip.volts_per_lsb)
    dec = torch.stack([chip.evaluate(codes, theta=theta, noise_seed=s).decisions[0, 0] for s in range(30)])
    assert float((dec > 0).double().mean()) == pytest.approx(0.1587, abs=0.025)


def test_falling_bitlines_kick_every_word_line_down():
    """Linear bit-line (compression 0): with the coupling each line's swing is S0 (1 - a(c) mean_drop), the mean
    taken over all 2 x 128 lines of the first pass."""
    w = torch.ones(R, C, dtype=torch.int8)
    w[:, ::2] = -1
    codes = torch.zeros(1, R, dtype=torch.long)
    codes[0, :30] = 16
    plain = Chip(P, n_chips=1, seed=3, nonideal=BASE, device="cpu").program(w)
    kick = Chip(P, n_chips=1, seed=3, nonideal=alone("wl_coupling"), device="cpu").program(w)
    dv0, dv1 = plain.evaluate(codes, noise_seed=0, dv=True).dv, kick.evaluate(codes, noise_seed=0, dv=True).dv
    mean_drop = float(dv0[0, 0].abs().mean()) / 2                # in every column one line falls, one stays
    a16 = float(kick.coupling[16])
    assert a16 > 0
    ratio = dv1.double().abs() / dv0.abs()
    assert torch.allclose(ratio, torch.full_like(ratio, 1 - a16 * mean_drop), rtol=2e-3)


def test_common_mode_offset_grows_as_the_lines_fall():
    """Comparator offsets only: at the precharge level the offset is the static draw (NMOS pair alone); with
    both lines low the PMOS pair takes over and the decision threshold moves."""
    ni = dataclasses.replace(BASE, comparator_offset=1.0, comparator_cm=1.0)
    chip = Chip(P, n_chips=1, seed=5, nonideal=ni, device="cpu").program(torch.ones(R, C, dtype=torch.int8))
    assert float(chip.cm_offset.weight(torch.tensor([P["vdd"]]))[0]) < 1e-3
    low = 1 - chip.cm_offset.weight(torch.tensor([0.2]))
    assert float(low[0]) < 0.5


def test_a_column_subset_is_the_full_evaluation_restricted():
    w = torch.where(torch.rand(R, C, generator=torch.Generator().manual_seed(1)) > 0.5, 1, -1)
    chip = Chip(P, n_chips=2, seed=9, device="cpu").program(w)
    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 32, (50, R), generator=g)
    codes[:, 90:] = 0
    theta = torch.randn(C, generator=g, dtype=torch.float64) * 20
    full = chip.evaluate(codes, theta=theta, noise_seed=4, dv=True, drops=True)
    sel = [5, 77, 3]
    sub = chip.evaluate(codes, theta=theta[sel], noise_seed=4, dv=True, drops=True, cols=sel)
    assert torch.equal(sub.decisions, full.decisions[..., sel])
    assert torch.equal(sub.dv, full.dv[..., sel]) and torch.equal(sub.drops, full.drops[:, :, sel])
    ideal = Chip(P, n_chips=1, seed=9, nonideal=BASE, device="cpu").program(torch.ones(R, C, dtype=torch.int8))
    assert ideal.evaluate(codes, cols=[0]).decisions.shape == (1, 50, 1)
    for bad in ([], [128], [1, 1], [[1]]):
        with pytest.raises(ValueError, match="cols="):
            chip.evaluate(codes, cols=bad)
    with pytest.raises(ValueError, match="theta shape"):
        chip.evaluate(codes, theta=theta, cols=sel)


def test_row_currents_are_the_sum_of_the_cells():
    chip = _chip(n=1, cell_mismatch=1.0, replica_mismatch=1.0)
    rows = torch.tensor([0, 17, 90])
    rc = chip.row_currents(0)[rows]
    cols, codes = torch.arange(C)[None, None, :], torch.tensor([0, 1, 8, 31])
    exact = chip.cell_current(0, rows[:, None, None], cols, codes[None, :, None]).sum(-1)
    assert torch.allclose(rc[:, codes], exact, rtol=1e-3, atol=1e-9)
    sub = chip.cell_current(0, rows[:, None, None], cols[..., :2], codes[None, :, None]).sum(-1)
    assert torch.allclose(chip.row_currents(0, [0, 1])[rows][:, codes], sub, rtol=1e-3, atol=1e-9)
