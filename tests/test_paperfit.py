"""The pieces of notebook 09's paper-consistent fit that need no chip: the local models (linear and ln-linear),
the model point, the bands against the paper's figures and the ledger's tolerances, the record of a fit, and a
constant Sobol output."""
import math

import pytest

from ibnn import params
from ibnn.explore import paperfit as PF
from ibnn.explore import paperstudy as PS
from ibnn.explore import toys
from ibnn.explore.sobol import analyze
from ibnn.explore.space import Dim
from ibnn.explore.surrogate import measure_local
from ibnn.published import PAPER

DIMS = [Dim("b", 0.1, 10.0, default=1.0), Dim("c", 1.0, 100.0, default=10.0)]


def test_ln_linear_model_of_a_power_law_is_exact_and_linear_model_of_a_line_too():
    m = measure_local(toys.power_law, ["p", "q"], DIMS, {}, 0.1, "inprocess", log=["p"])
    assert m["p"].log and not m["q"].log
    for b, c in ((0.3, 2.0), (5.0, 70.0)):
        assert m["p"].predict({"b": b, "c": c}) == pytest.approx(3 * b ** 2 / c, rel=1e-9)
    # q is linear in b and c, but the log-scaled dims make it nonlinear in z: exact only at the centre
    assert m["q"].predict({"b": 1.0, "c": 10.0}) == pytest.approx(21.0)
    with pytest.raises(ValueError, match="log scale"):
        measure_local(lambda p, s: {"y": -1.0}, ["y"], DIMS[:1], {}, 0.1, "inprocess", log=["y"])


def test_model_point_and_constants():
    m = measure_local(toys.power_law, ["p"], DIMS, {}, 0.1, "inprocess", log=["p"])
    pt = PF.ModelPoint(m, {"drop_corrected": 0.004})
    out = pt({"b": 2.0}, 0)
    assert out["p"] == pytest.approx(3 * 4 / 10) and out["drop_corrected"] == 0.004
    assert pt.fingerprint() != PF.ModelPoint(m, {"drop_corrected": 0.005}).fingerprint()


def test_bands_read_the_paper_and_the_ledger_tolerances():
    bands = {b.figure: b for b in PF.paper_bands(ops="1b", basis="all_rows", area="array", drop_halfwidth=0.001)}
    assert bands["drop_corrected"].target == PAPER["accuracy_drop"]
    assert bands["drop_corrected"].width == pytest.approx(PF.DROP_TOL + 0.001)
    assert bands["tops_per_w_all_rows_1b"].rule == "at_least" and bands["tops_per_w_all_rows_1b"].target == 700
    assert bands["tops_per_mm2_all_rows_1b_array"].width == pytest.approx(0.5)
    assert bands["silicon_log2_ratio"].width == pytest.approx(1.0)
    assert PF.claim_of("tops_per_mm2_network_mac2_macro") == "tops_per_mm2"
    names, logs = PF.band_figures({"ops": "mac2"})
    assert "silicon_log2_ratio" in names and "silicon_log2_ratio" not in logs and "energy_ratio" in logs


def test_joint_record_reports_moves_and_the_naive_drop():
    P = params.load()
    d = P.entry("a_cell")
    moves = [{"name": "a_cell", "default": d.value, "value": d.high, "z": 1.0, "low": d.low, "high": d.high,
              "log": False, "inside": True, "moved": True},
             {"name": "e_comparator", "default": 1e-13, "value": 1e-13, "z": 0.0, "low": 6e-14, "high": 2e-13,
              "log": False, "inside": True, "moved": False}]
    claims = {k: {"value": 1.0, "tolerance": 0.5, "holds": True} for k in PF.CLAIM_FIGURES}
    figs = {"drop_naive": 0.02, "drop_naive_lo": 0.01, "drop_naive_hi": 0.03}
    fit = {"best": {"feasible": True, "distance": 1.0, "choices": {"pulse": 3.5e-10}, "changed_choices": ["pulse"],
                    "selection": {"ops": "mac2"}, "moves": moves, "point": {}},
           "verified": {"figures": figs, "claims": claims}}
    rec = PS.joint_record(fit, P)
    assert [m["name"] for m in rec["moved"]] == ["a_cell"] and rec["moved"][0]["unit"] == d.unit
    naive = rec["claims"]["accuracy_drop_naive"]
    assert naive["tolerance"] == pytest.approx(PF.DROP_TOL + 0.01) and not naive["holds"]
    assert not rec["holds_measured"] and "a_cell" in rec["summary"]


def test_a_constant_sobol_output_has_zero_indices():
    import numpy as np
    ix = analyze(DIMS, {"y": np.ones(8)}, 0.95, 20, 0)["y"]
    assert all(i.S1 == 0 and i.ST == 0 and not math.isnan(i.ST_conf) for i in ix)


def test_the_choices_the_fit_leaves_as_built_are_measured_paired_at_the_fitted_point():
    """unsearched_choices: every clock (the fit's among them) on the verification's seed; a claim counts as made to
    hold by another clock only against the fit's own row; the hidden code applies only with several on-array
    layers."""
    from ibnn.explore import keys as K
    joint = {"point": {"vdd": 1.1}, "claims": {
        "tops_per_mm2": {"figure": "mm2", "rule": "equal", "target": 6.0, "tolerance": 0.5, "holds": False},
        "tops_per_w": {"figure": "w", "rule": "at_least", "target": 700.0, "tolerance": 50.0, "holds": False}}}
    seeds = []

    def measure(point, seed):
        seeds.append(seed)
        return {"mm2": 3.0 * point["clock"] / 50e6, "w": 200.0}      # throughput scales with the clock

    u = PS.unsearched_choices(measure, joint, [100e6, 25e6], 50e6, 1, seed=3)
    assert [r["clock_Hz"] for r in u["clock"]] == [25e6, 50e6, 100e6]
    assert seeds == [K.point_seed({"vdd": 1.1, "clock": f}, 3, ()) for f in (25e6, 50e6, 100e6)]
    assert [r["claims"]["tops_per_mm2"]["holds"] for r in u["clock"]] == [False, False, True]
    assert u["claims_another_clock_makes_hold"] == ["tops_per_mm2"] and not u["hidden_code"]["applies"]
    assert PS.unsearched_choices(measure, joint, [], 50e6, 2)["hidden_code"]["applies"]
