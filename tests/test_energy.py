"""Energy model: component physics, units, the digital baseline, ops accounting, efficiency, ValueError paths."""
import math

import numpy as np
import pytest

from ibnn import params
from ibnn.analysis import sensitivity
from ibnn.cost import activity, digital, energy
from ibnn.cost import ops as O

P = params.load()
VDD = P["vdd"]
C_BL = P["c_bl"]


def cycle(drops_scale=1.0, P_=P, gate=False, cols=None, B=4, seed=0, row_current=None):
    rng = np.random.default_rng(seed)
    drops = rng.uniform(0, 0.2, size=(B, 128, 2)) * drops_scale
    codes = rng.integers(0, 32, size=(B, 128))
    return energy.cycle_energy(P_, bl_drops_V=drops, codes=codes, input_bits=5, columns=cols,
                               gate_unused_columns=gate, row_current_A=row_current)


# --- component physics and units ------------------------------------------------------------------------------
def test_bitline_energy_units_and_linearity():
    # 1 fF recharged by 1 V from a 1 V supply = 1 fJ = 1e-15 J (J, not pJ)
    assert math.isclose(energy.bitline_energy([1.0], 1e-15, 1.0), 1e-15)
    e1 = energy.bitline_energy(np.full(256, 0.1), C_BL, VDD)
    assert math.isclose(e1, 256 * 0.1 * C_BL * VDD)
    assert math.isclose(energy.bitline_energy(np.full(256, 0.2), C_BL, VDD), 2 * e1)      # swing
    assert math.isclose(energy.bitline_energy(np.full(256, 0.1), 2 * C_BL, VDD), 2 * e1)  # capacitance


def test_wordline_and_wldac_energy():
    c = 150e-15
    assert math.isclose(energy.wordline_energy([0.5], c, 1.2, 1.0), c * 0.5 * 1.2)
    assert math.isclose(energy.wordline_energy([0.5], c, 1.2, 0.0), c * 0.5 ** 2)
    assert energy.wordline_energy([0.5], c, 1.2) > energy.wordline_energy([0.4], c, 1.2)
    assert math.isclose(energy.wldac_energy([1e-6, 2e-6], 2e-9, 1.2, 1e-6), (2e-6 + 3e-6) * 1.2 * 2e-9)


def test_cycle_energy_grows_with_swing_and_capacitance():
    base = cycle()
    assert set(base) == set(energy.IMC_COMPONENTS)
    assert cycle(drops_scale=2.0)["bitline"] == pytest.approx(2 * base["bitline"])
    big_c = P.replace(c_bl_per_cell=P.entry("c_bl_per_cell").high)
    assert cycle(P_=big_c)["bitline"] > base["bitline"]
    assert cycle(P_=P.replace(vdd=1.32))["bitline"] > base["bitline"]
    # the cells against the precharge: linear in the row currents; a larger LSB current draws more
    rc = np.full((128, 32), 1e-6)
    assert cycle(row_current=2 * rc)["precharge_fight"] == pytest.approx(2 * cycle(row_current=rc)["precharge_fight"])
    assert cycle(P_=P.replace(cell_lsb_current=0.6e-6))["precharge_fight"] > base["precharge_fight"]
    # a higher sag budget needs smaller precharge devices
    assert cycle(P_=P.replace(precharge_sag_max=0.2))["precharge_gates"] < base["precharge_gates"]
    # gating the unused columns can only lower the energy
    gated = cycle(gate=True, cols=range(40))
    assert gated["bitline"] < base["bitline"] and gated["comparator"] < base["comparator"]
    assert gated["precharge_fight"] < base["precharge_fight"]
    assert energy.total(gated) < energy.total(base)


def test_static_currents_over_their_on_time():
    """One active row at code 16: the WLDAC draws (I_DAC + I_bias) VDD t_on, its cells VDD I_row t_fight."""
    t = energy.drive_tables(P)
    codes = np.zeros((2, 128), dtype=np.int64)
    codes[:, 3] = 16
    rc = np.full((128, 32), 2e-4)
    e = energy.cycle_energy(P, bl_drops_V=np.zeros((2, 128, 2)), codes=codes, input_bits=5, row_current_A=rc)
    vdd = P["vdd"]
    assert e["wldac"] == pytest.approx(vdd * (t.i_dac[16] + P["wldac_bias_current"]) * t.t_on)
    assert e["precharge_fight"] == pytest.approx(vdd * 2e-4 * t.t_fight[16])
    assert e["wl_tail"] == pytest.approx(vdd * 2e-4 * t.t_tail[16])
    assert t.t_on == pytest.approx(t.t_lead + P["t_eval"]) and 0 < t.t_fight[16] <= t.t_lead
    assert energy.wordline_charge_energy(t, codes, vdd) < e["wldac"]       # charging the line: a part of it
    assert energy.cycle_energy(P, bl_drops_V=np.zeros((2, 128, 2)), codes=0 * codes, input_bits=5,
                               row_current_A=rc)["precharge_fight"] == 0.0


def test_scopes_are_lists_of_components():
    assert set(energy.SCOPES["system"]) == set(energy.IMC_COMPONENTS) | {"readout"}
    assert set(energy.SCOPES["array"]) < set(energy.SCOPES["macro"]) < set(energy.SCOPES["system"])
    bd = dict(cycle(), readout=1e-12)
    assert energy.scope_energy(bd, "system") == pytest.approx(energy.total(bd))


def test_breakdown_sums():
    a, b = cycle(seed=1), cycle(seed=2)
    s = digital.sum_breakdowns([a, b])
    assert energy.total(s) == pytest.approx(energy.total(a) + energy.total(b))


# --- digital baseline -------------------------------------------------------------------------------------------
def test_scaling_rule_is_derived():
    assert P.entry("scale_45_to_130").kind == "derived"
    assert P["scale_45_to_130"] == pytest.approx((130 / 45) * (1.2 / 0.9) ** 2)
    assert P["e_sram_read_bit"] == pytest.approx(10e-12 / 64 * P["sram_capacity_factor"] * P["scale_45_to_130"])
    P2 = P.replace(scale_exponent_node=1.5)
    assert P2["e_fa_bit"] > P["e_fa_bit"]


def test_digital_energy_components_and_monotonicity():
    shapes = [(81, 64), (64, 40)]
    d = digital.digital_inference_energy(P, shapes, 5, {"kind": "vote", "n_in": 40, "n_classes": 10})
    assert set(d) == set(digital.DIGITAL_COMPONENTS) | {"readout"}
    assert all(v > 0 for v in d.values())
    # weight reads: every weight bit once
    w = d["weight_read"]
    assert w >= (81 * 64 + 64 * 40) * P["e_sram_read_bit"]
    d2 = digital.digital_inference_energy(P.replace(sram_capacity_factor=1.0), shapes, 5)
    assert d2["weight_read"] > w
    # a wider first-layer input costs more adder energy
    assert (digital.digital_layer_energy(P, 81, 64, 5)["accumulate"]
            > digital.digital_layer_energy(P, 81, 64, 1)["accumulate"])


def test_readout_kinds():
    assert digital.readout_energy(P, "none") == {"readout": 0.0}
    assert digital.readout_energy(P, "linear", 64, 10)["readout"] > digital.readout_energy(P, "vote", 40, 10)["readout"]
    # readout weights read from SRAM cost more than weights held in latches; one assumption for the baseline
    assert (digital.readout_energy(P.replace(weights_in_sram=1.0), "digital", 128, 10)["readout"]
            > digital.readout_energy(P.replace(weights_in_sram=0.0), "digital", 128, 10)["readout"])
    assert (digital.readout_energy(P, "digital", 128, 10, weights_in_sram=0.0)
            == digital.readout_energy(P.replace(weights_in_sram=0.0), "digital", 128, 10))
    latched = digital.digital_inference_energy(P.replace(weights_in_sram=0.0), [(81, 64)], 5)
    assert latched["weight_read"] == 0.0
    assert O.readout_ops("mac2", "digital", 128, 10) == 2 * 1280
    assert O.readout_ops("1b", "vote", 40, 10) == 0
    with pytest.raises(ValueError, match="readout kind"):
        digital.readout_energy(P, "softmax", 10, 10)


def test_ratio_is_quotient():
    assert O.energy_ratio(26e-9, 1e-9) == pytest.approx(26.0)
    with pytest.raises(ValueError, match=r"imc_J=0.0 is out of range"):
        O.energy_ratio(1e-9, 0.0)


# --- ops and efficiency -----------------------------------------------------------------------------------------
def test_ops_accounting():
    shapes = [(81, 64), (64, 40)]
    assert O.ops_per_inference("mac2", shapes) == 2 * (81 * 64 + 64 * 40)
    assert O.ops_per_inference("1b", shapes, input_bits=5) == 2 * (81 * 64 * 5 + 64 * 40)
    assert O.array_ops_per_cycle("mac2", 128, 128, 5) == 2 * 128 * 128
    assert O.array_ops_per_cycle("1b", 128, 128, 5) == 2 * 128 * 128 * 5


@pytest.mark.parametrize("bad", ["mac", "MAC2", "", "1-bit", None])
def test_unknown_op_definition(bad):
    with pytest.raises(ValueError, match=r"op definition=.*choose one of \['mac2', '1b'\]"):
        O.ops_per_inference(bad, [(81, 64)])
    with pytest.raises(ValueError, match="op definition"):
        O.array_ops_per_cycle(bad, 128, 128, 5)


def test_efficiency_is_ops_over_energy():
    bd = cycle()
    e = energy.total(bd)
    ops = O.array_ops_per_cycle("mac2", 128, 128, 5)
    assert O.tops_per_w(ops, e) == pytest.approx(ops / e / 1e12)
    # 1e12 ops for 1 J is 1 TOPS/W; 1e12 ops/s on 1 mm2 is 1 TOPS/mm2
    assert O.tops_per_w(1e12, 1.0) == pytest.approx(1.0)
    assert O.tops_per_mm2(1e12, 1e-6) == pytest.approx(1.0)
    assert O.throughput_ops_per_s(2 * 128 * 128, 50e6) == pytest.approx(2 * 128 * 128 * 50e6)


# --- ValueError paths ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1e-15, 0.0, float("nan"), float("inf")])
def test_bad_capacitance(bad):
    with pytest.raises(ValueError, match=r"c_bl=.*out of range.*\(0.0, inf\)"):
        energy.bitline_energy([0.1], bad, 1.2)
    with pytest.raises(ValueError, match=r"c_wl="):
        energy.wordline_energy([0.1], bad, 1.2)


@pytest.mark.parametrize("bad", [[-0.1], [float("nan")], [float("inf")], [2.0]])
def test_bad_swings(bad):
    with pytest.raises(ValueError, match="drops_V"):
        energy.bitline_energy(bad, 1e-13, 1.2)


@pytest.mark.parametrize("bad", [-1e-12, float("nan"), float("inf")])
def test_bad_energies(bad):
    with pytest.raises(ValueError, match="e_comparator"):
        energy.comparator_energy(128, bad)
    with pytest.raises(ValueError, match="energy_J"):
        O.tops_per_w(1e6, bad)
    with pytest.raises(ValueError, match="energy component 'x'"):
        energy.total({"x": bad})


@pytest.mark.parametrize("bad", [0.0, -50e6, float("nan"), float("inf")])
def test_bad_clock(bad):
    with pytest.raises(ValueError, match=r"f_clock=.*out of range"):
        O.throughput_ops_per_s(1e3, bad)


def test_bad_area_and_params():
    with pytest.raises(ValueError, match=r"area_m2=.*out of range"):
        O.tops_per_mm2(1e12, 0.0)
    with pytest.raises(ValueError, match=r"e_comparator=-1.0 is out of range"):
        P.replace(e_comparator=-1.0)
    with pytest.raises(ValueError, match=r"f_classify=nan is out of range"):
        P.replace(f_classify=float("nan"))


def test_bad_shapes_and_codes():
    with pytest.raises(ValueError, match="layer_shapes is empty"):
        O.ops_per_inference("mac2", [])
    with pytest.raises(ValueError, match=r"layer_shapes\[0\].fan_in"):
        O.ops_per_inference("mac2", [(0, 3)])
    with pytest.raises(ValueError, match="codes must lie in"):
        energy.cycle_energy(P, bl_drops_V=np.zeros((1, 128)), codes=np.full((1, 128), 99), input_bits=5)
    with pytest.raises(ValueError, match="columns must lie in"):
        energy.cycle_energy(P, bl_drops_V=np.zeros((1, 128)), codes=np.zeros((1, 128), int), input_bits=5,
                            columns=[200], gate_unused_columns=True)
    with pytest.raises(ValueError, match="row_current_A must have shape"):
        energy.cycle_energy(P, bl_drops_V=np.zeros((1, 128)), codes=np.zeros((1, 128), int), input_bits=5,
                            row_current_A=np.zeros((3, 32)))


# --- sensitivity and inverse analysis ---------------------------------------------------------------------------
def test_tornado_and_solve():
    fig = lambda p: energy.total(cycle(P_=p))  # noqa: E731
    names = ["e_comparator", "c_bl_per_cell", "e_control_cycle"]
    bars = sensitivity.tornado(P, names, lambda p, name: fig(p))
    assert [b["name"] for b in bars] == names
    for b in bars:   # each end is the figure with that parameter alone at its cited end
        assert b["at_low"] == pytest.approx(fig(P.replace(**{b["name"]: b["low"]})))
        assert b["at_high"] == pytest.approx(fig(P.replace(**{b["name"]: b["high"]})))
        assert sensitivity.span(b) == pytest.approx(abs(b["at_high"] - b["at_low"]))
    # more comparator energy costs energy; the bit-line capacitance moves the recharge energy too
    assert bars[0]["at_high"] > bars[0]["at_low"]
    base = fig(P)
    target = 1.2 * base
    v = sensitivity.solve_parameter(P, "e_comparator", fig, target, 1e-16, 1e-11)
    assert v is not None and fig(P.replace(e_comparator=v)) == pytest.approx(target, rel=1e-5)
    assert sensitivity.solve_parameter(P, "e_comparator", fig, 1e3, 1e-16, 1e-11) is None
    with pytest.raises(ValueError, match="lo="):
        sensitivity.solve_parameter(P, "e_comparator", fig, target, 0.0, 1.0)


# --- swings from the chip model ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chip():
    import torch

    from ibnn.circuit.chip import Chip

    c = Chip(P, n_chips=1, seed=3)
    g = torch.Generator().manual_seed(0)
    c.program(torch.where(torch.rand(128, 128, generator=g) > 0.5, 1, -1))
    return c


def _reference_drops(chip, codes):
    """Drops of BL and BLB (V), (B, cols, 2), from the chip's EXACT per-cell currents (not its factored tables)
    x the window charge q(c), summed per line in float64, less the word-line kick (coupling a(c) x the mean
    first-pass drop of all lines), through the closed-form discharge: an independent reference."""
    import torch

    from ibnn.circuit.column import discharge

    R, C = chip.rows, chip.cols
    table = chip.cell_current(0, torch.arange(R)[:, None, None], torch.arange(C)[None, None, :],
                              torch.arange(chip.max_code + 1)[None, :, None], exact=True)        # (R, codes, C)
    table = table * chip.window_charge[None, :, None]
    pos = (chip.weights[0].cpu() > 0).to(torch.float64)
    cur = table[torch.arange(R)[None, :], codes.long()]                                          # (B, R, C)
    scale = chip.t_eval / chip.c_bl

    def lines(c):
        return torch.stack([torch.einsum("brc,rc->bc", c, 1 - pos), torch.einsum("brc,rc->bc", c, pos)], -1) * scale

    s = lines(cur)
    mean_drop = (chip.vdd - discharge(torch.clamp(s, min=0.0), chip.drain_law)).mean((-1, -2), keepdim=True)
    s = s - mean_drop * lines(cur * chip.coupling[codes.long()][..., None])
    return torch.clamp(chip.vdd - discharge(torch.clamp(s, min=0.0), chip.drain_law), 0.0, chip.vdd)


def test_chip_line_drops_are_its_cell_currents_through_the_discharge(chip):
    import torch

    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 32, (64, 128), generator=g)
    codes[:, 90:] = 0
    out = chip.evaluate(codes, noise_seed=0, dv=True, drops=True)
    d = out.drops[0].double()
    assert d.shape == (64, 128, 2)
    assert float(d.min()) >= 0 and float(d.max()) <= VDD
    assert torch.allclose(d, _reference_drops(chip, codes), atol=5e-4)        # factored tables: ~1e-4 V
    # V_BL - V_BLB = (VDD - dBL) - (VDD - dBLB)
    assert torch.allclose((d[..., 1] - d[..., 0]).float(), out.dv[0].float(), atol=2e-4)
    # more discharge time, more swing, more recharge energy (t_eval enters only through volts_per_lsb)
    P2 = P.replace(t_eval=P.entry("t_eval").high)
    d2 = chip.retimed(P2).evaluate(codes, noise_seed=0, drops=True).drops
    assert float(d2.sum()) > float(d.sum())
    with pytest.raises(ValueError, match="Chip.retimed: parameters"):
        chip.retimed(P.replace(vdd=1.1))
    # charge conservation: a larger C_BL swings less for the same cell charge, so C_BL * VDD * dV barely moves
    # (only through compression), whereas at fixed swings it would grow by the capacitance ratio;
    # light load (lines well above the triode knee) so compression is small
    light = torch.randint(0, 8, (64, 128), generator=g)
    light[:, 40:] = 0
    d = chip.evaluate(light, noise_seed=0, drops=True).drops
    P3 = P.replace(c_bl_per_cell=P.entry("c_bl_per_cell").high)
    d3 = chip.retimed(P3).evaluate(light, noise_seed=0, drops=True).drops
    e_def = energy.bitline_energy(d.double().numpy(), P["c_bl"], VDD)
    e_big = energy.bitline_energy(d3.double().numpy(), P3["c_bl"], VDD)
    assert float(d3.sum()) < float(d.sum())
    assert abs(e_big / e_def - 1) < 0.5 * (P3["c_bl"] / P["c_bl"] - 1)


def test_efficiency_tables_are_ops_over_energy():
    from ibnn.cost import area, efficiency

    imc = {"n_cycles": 2, "array_J": 60e-12, "macro_J": 100e-12, "total_J": 130e-12}
    rows = {"array_J": 40e-12, "macro_J": 50e-12, "total_J": 65e-12}
    shapes = [(81, 64), (64, 40)]
    ro = {"kind": "digital", "n_in": 40, "n_classes": 10}
    assert set(efficiency.tops_per_w_table(P, imc, shapes, ro)) == {"network"}      # no peak without its workload
    t = efficiency.tops_per_w_table(P, imc, shapes, ro, all_rows=rows)
    assert t["network"]["mac2"]["macro"] == pytest.approx(O.ops_per_inference("mac2", shapes) / 100e-12 / 1e12)
    assert t["network"]["mac2"]["system"] == pytest.approx(
        (O.ops_per_inference("mac2", shapes) + 2 * 40 * 10) / 130e-12 / 1e12)
    assert t["network"]["1b"]["array"] == pytest.approx(O.ops_per_inference("1b", shapes, 5) / 60e-12 / 1e12)
    assert t["all_rows"]["mac2"]["macro"] == pytest.approx(2 * 128 * 128 / 50e-12 / 1e12)
    assert t["all_rows"]["1b"]["macro"] == pytest.approx(5 * t["all_rows"]["mac2"]["macro"])
    assert t["all_rows"]["mac2"]["system"] == pytest.approx((2 * 128 * 128 + 2 * 40 * 10) / 65e-12 / 1e12)
    d = efficiency.tops_per_mm2_table(P, shapes, 2)
    assert d["all_rows"]["mac2"]["macro"] == pytest.approx(
        2 * 128 * 128 * P["f_classify"] / 1e12 / (area.macro_area(P) * 1e6))
    assert d["network"]["mac2"]["array"] == pytest.approx(
        O.ops_per_inference("mac2", shapes) * P["f_classify"] / 2 / 1e12 / (area.array_area(P) * 1e6))
    r = efficiency.solve_area_parameter(P, "a_cell", 6.0, 2 * 128 * 128 * P["f_classify"])
    assert r["solution"] is not None
    assert O.tops_per_mm2(2 * 128 * 128 * P["f_classify"],
                               area.macro_area(P.replace(a_cell=r["solution"]))) == pytest.approx(6.0, rel=1e-5)


def test_network_activity_on_an_ideal_chip():
    """Through the mapping: the ideal chip's labels equal the integer reference, and the energy of each cycle
    is built from that cycle's own word-line codes and drops."""
    import torch

    from ibnn import mapping as M
    from ibnn import nn as C
    from ibnn.circuit.chip import Chip, Nonidealities
    from ibnn.cost import study

    g = torch.Generator().manual_seed(0)
    w0 = torch.where(torch.rand(81, 20, generator=g) > 0.5, 1, -1).to(torch.int8)
    folded = C.FoldedBNN([C.FoldedLayer(w0, torch.zeros(20, dtype=torch.int64))], C.VoteReadout(2, 10),
                         {"bits": 5, "size": 9, "readout": "vote", "n_classes": 10})
    amap = M.map_network(folded, P)
    chip = Chip(P, n_chips=1, seed=0, nonideal=Nonidealities.ideal())
    codes = torch.randint(0, 32, (16, 81), generator=g)
    labels, act = activity.network_activity(amap, chip, codes)
    assert torch.equal(labels.cpu(), amap.reference(codes).labels)
    assert len(act) == 1 and act[0].input_bits == 5 and act[0].columns == list(range(20))
    wl = torch.as_tensor(act[0].codes).double()
    pos = (amap.weights > 0).double()
    expect_blb = (wl @ pos * chip.volts_per_lsb).clamp(0, VDD)
    assert np.allclose(act[0].drops[..., 1], expect_blb.numpy())
    es = study.EnergyStudy(P, amap, codes, labels)
    e = es.energies(P, act)
    assert e["imc_J"] == pytest.approx(energy.total(e["imc"]["breakdown"]))
    assert e["ratio"] == pytest.approx(e["digital_J"] / e["imc_J"])
    assert study.readout_spec(amap) == {"kind": "vote", "n_in": 20, "n_classes": 10}
