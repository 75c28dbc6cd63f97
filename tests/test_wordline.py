"""The word line as a waveform (ibnn.circuit.wordline): settling physics, the C/k scaling law, charge
conservation, the charge factors of the cycle plan, and the sizing of the replica."""
import numpy as np
import pytest

from ibnn import params
from ibnn.circuit.wordline import CyclePlan, WordLine, drive_tables, gated_drive_tables, min_replica_ratio

P = params.load()


@pytest.fixture(scope="module")
def wl():
    return WordLine(P)


@pytest.fixture(scope="module")
def plan():
    return CyclePlan.from_params(P)


@pytest.fixture(scope="module")
def charges(wl, plan):
    return wl.charges(plan)


def test_plan_splits_the_cycle_and_rejects_an_overfull_one(plan):
    assert plan.t_allot + plan.t_eval + plan.t_strobe + plan.t_wl_reset == pytest.approx(1 / P["f_classify"])
    with pytest.raises(ValueError, match="t_cycle"):
        CyclePlan(5e-9, 1e-9, 3e-9, 2e-9)
    with pytest.raises(ValueError, match="settle"):
        CyclePlan.from_params(P, settle="later")


def test_small_codes_settle_last_and_every_code_settles_in_time(wl, plan):
    ts = wl.settle_times()
    assert ts[0] == 0.0
    assert bool((np.diff(ts[1:]) < 0).all())          # more DAC current: faster slew and smaller tau
    assert ts.max() <= plan.t_allot                    # every code settles within its allotted time


def test_settling_time_scales_as_c_over_k():
    """V_WL(c) does not depend on k (I_DAC / k = c I_LSB), so every time of the rise is (C_WL / k) J(c)."""
    a, b = WordLine(P, replica_ratio=4.0), WordLine(P, replica_ratio=12.0)
    assert np.allclose(a.settle_times() * a.k / a.c_node, b.settle_times() * b.k / b.c_node, rtol=1e-6)
    assert np.allclose(a.v_final, b.v_final, atol=1e-9)


def test_min_replica_ratio_just_meets_the_allotted_time(plan):
    k = min_replica_ratio(P, plan.t_allot)
    assert WordLine(P, replica_ratio=k).settle_times().max() == pytest.approx(plan.t_allot, rel=1e-6)
    k3 = min_replica_ratio(P, plan.t_allot, corner_sigma=P["wl_settle_corner_sigma"])
    assert k < k3 <= P["replica_ratio"]                 # the design's k covers the corner row
    with pytest.raises(ValueError, match="t_allot"):
        min_replica_ratio(P, 1e-12)


def test_quadrature_agrees_with_the_time_stepped_waveform(wl):
    ts = wl.settle_times()
    t, v = wl.waveform(20e-9)
    thr = wl.i_final - P["wl_settle_lsb"] * wl.i_lsb
    i = wl.cell_current_pre(v)
    for c in (1, 5, 16, 31):
        assert abs(t[np.argmax(i[c] >= thr[c])] - ts[c]) <= 2 * (t[1] - t[0])


def test_waveform_rises_monotonically_without_overshoot_and_conserves_charge(wl):
    t, v = wl.waveform(6e-9)
    assert bool((np.diff(v, axis=1) >= -1e-12).all()) and bool((v <= wl.v_final[:, None] + 1e-6).all())
    assert bool((v[0] == 0).all())                     # code 0: word line stays off
    # int I_DAC dt = C_WL V(T) + int I_rep(V(t)) dt: the DAC's charge charges the line or flows in the replica
    q_rep = np.trapezoid(np.interp(v, wl._v, wl._i_rep), t, axis=1)
    assert np.allclose((wl.i_dac * t[-1])[1:], (wl.c_node * v[:, -1] + q_rep)[1:], rtol=3e-3)


def test_settled_codes_deliver_their_nominal_charge(charges, wl):
    assert np.allclose(charges.q_window[2:], 1.0, atol=2e-3)
    err_lsb = (1 - charges.q_window[1:]) * wl.i_final[1:] / wl.i_lsb    # the slowest code, within the criterion
    assert float(err_lsb.max()) <= P["wl_settle_lsb"]
    assert bool((charges.t_fight <= charges.t_lead + 1e-15).all()) and bool((np.diff(charges.t_fight[1:]) > 0).all())
    assert charges.t_on == pytest.approx(charges.t_lead + P["t_eval"])


def test_settling_in_the_window_is_a_code_dependent_gain(wl):
    q = wl.charges(CyclePlan.from_params(P, settle="discharge")).q_window
    assert bool((q[1:] < 1).all()) and bool((np.diff((q * wl.i_final)[1:]) > 0).all())
    assert q[1] < 0.01 < q[31]                          # code 1 barely conducts in the window


def test_bitline_coupling_pulls_the_word_line_down(wl, plan):
    q0, q1, q2 = (wl.charges(plan, mean_drop=d).q_window for d in (0.0, 0.3, 0.6))
    assert bool((q2[1:] < q1[1:]).all()) and bool((q1[1:] < q0[1:]).all())
    loss = 1 - q2[1:] / q0[1:]
    assert loss[0] > loss[-1]                           # slow (small) codes recover least within the window
    t = drive_tables(P)
    assert t.q[0] == 1.0 and t.a[0] == 0.0 and bool((t.a[1:] > 0).all())
    assert np.allclose(t.q[1:] * (1 - t.a[1:] * 0.6), q2[1:], rtol=1e-6)     # the secant at COUPLING_DROP


def test_a_rows_replica_mismatch_moves_its_final_voltage_and_its_rise():
    sv = P["sigma_vt_cell"] / np.sqrt(P["replica_ratio"])
    nom, weak = WordLine(P), WordLine(P, replica_dvt=3 * sv)
    shift = weak.v_final[1:] - nom.v_final[1:]
    assert bool((shift > 0.85 * 3 * sv).all()) and bool((shift < 3 * sv).all())
    assert weak.settle_times()[1] > nom.settle_times()[1]


def test_a_gated_drive_fights_the_precharge_for_less_time():
    base, gated = drive_tables(P), gated_drive_tables(P, 4 * P["replica_ratio"])
    assert gated.t_lead < base.t_lead and bool((gated.t_fight[1:] < base.t_fight[1:]).all())
    assert bool((gated.i_dac[1:] > base.i_dac[1:]).all())
    assert np.allclose(gated.q[2:], 1.0, atol=5e-3)      # still settled when the window opens


def test_bad_arguments():
    with pytest.raises(ValueError, match="replica_ratio"):
        WordLine(P, replica_ratio=0.0)
    with pytest.raises(ValueError, match="replica_dvt"):
        WordLine(P, replica_dvt=1.0)
    with pytest.raises(ValueError, match="mean_drop"):
        WordLine(P).charges(CyclePlan.from_params(P), mean_drop=-0.1)
    with pytest.raises(ValueError, match="plan"):
        WordLine(P).charges("now")


def test_waveforms_stepped_together_are_each_the_one_stepped_alone(wl, plan):
    """`charges_at` steps the waveforms of several mean drops as one array: each gives what `charges` gives alone,
    bit for bit (drive_tables takes both of its drops this way)."""
    drops = [0.0, 0.3, 0.6]
    together = wl.charges_at(plan, drops)
    for d, c in zip(drops, together):
        alone = wl.charges(plan, mean_drop=d)
        for name in ("q_window", "t_fight", "t_tail", "t_settle"):
            assert np.array_equal(getattr(c, name), getattr(alone, name)), (d, name)
    assert not np.array_equal(together[0].q_window, together[2].q_window)        # the coupling moved the charge
    with pytest.raises(ValueError, match="mean_drop"):
        wl.charges_at(plan, [0.0, -0.1])


def test_the_nominal_replica_table_is_the_dacs_solve_and_a_mismatched_one_its_own(wl):
    from ibnn.circuit.wldac import WLDAC, nominal_dac
    dac = nominal_dac(P)
    assert dac is nominal_dac(P) and wl.dac is dac                                  # once per parameter set
    fresh = WLDAC(P)
    assert all(np.array_equal(getattr(dac, k).numpy(), getattr(fresh, k).numpy()) for k in ("grid_node", "_logi"))
    assert np.array_equal(wl._i_rep, wl._i_rep_exact(wl._v))                        # the shortcut: the same bits
    weak = WordLine(P, replica_dvt=0.01)
    assert np.array_equal(weak._i_rep, weak._i_rep_exact(weak._v)) and not np.array_equal(weak._i_rep, wl._i_rep)
