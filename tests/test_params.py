"""The circuit parameter set: schema, citations, derivations and variants."""
import math

import pytest

from ibnn import params

CIRCUIT = ["array_rows", "array_cols", "input_bits", "vdd", "vt0_n", "slope_factor", "kp_n", "dibl", "clm",
           "w_access", "l_access", "w_pulldown", "a_vt", "a_beta", "sigma_vt_cell", "sigma_beta_cell",
           "cell_lsb_current", "replica_ratio", "dac_unit_current", "sigma_dac_unit", "c_bl", "t_eval",
           "volts_per_lsb_nominal", "comp_offset_sigma", "comp_noise_sigma"]


@pytest.fixture(scope="module")
def P():
    return params.load()


def test_circuit_entries_complete(P):
    for name in CIRCUIT:
        e = P.entry(name)
        assert e.section == "circuit"
        assert e.kind in params.KINDS and e.source.strip() and e.unit.strip()
        assert math.isfinite(e.value)
        if e.kind == "derived":
            assert e.formula
        if e.low is not None:
            assert e.low <= e.value <= e.high


def test_array_matches_jssc2017(P):
    assert (P["array_rows"], P["array_cols"], P["input_bits"]) == (128, 128, 5)
    assert "10.1109/JSSC.2016.2642198" in P.entry("array_rows").source


def test_derived_values(P):
    assert P["c_bl"] == pytest.approx(P["c_bl_per_cell"] * P["array_rows"])
    assert P["sigma_vt_cell"] == pytest.approx(P["a_vt"] / math.sqrt(P["w_access"] * P["l_access"]))
    assert P["sigma_beta_cell"] == pytest.approx(P["a_beta"] / math.sqrt(P["w_access"] * P["l_access"]))
    assert P["volts_per_lsb_nominal"] == pytest.approx(P["cell_lsb_current"] * P["t_eval"] / P["c_bl"])
    assert P["dac_unit_current"] == pytest.approx(P["replica_ratio"] * P["cell_lsb_current"])
    assert P["thermal_voltage"] == pytest.approx(0.025852, rel=1e-4)


def test_default_regime_is_physically_consistent(P):
    # ~2 mV per LSB, per-cell full-code current ~ tens of uA, comparator sigma within 5-20 mV
    assert 1e-3 <= P["volts_per_lsb_nominal"] <= 5e-3
    assert 5e-6 <= 31 * P["cell_lsb_current"] <= 50e-6
    assert 5e-3 <= P["comp_offset_sigma"] <= 20e-3
    assert 130e-15 <= P["c_bl"] <= 200e-15


def test_replace_rederives(P):
    Q = P.replace(c_bl_per_cell=1.5e-15, a_vt=4e-9)
    assert Q["c_bl"] == pytest.approx(1.5e-15 * 128)
    assert Q["sigma_vt_cell"] == pytest.approx(4e-9 / math.sqrt(P["w_access"] * P["l_access"]))
    assert P["c_bl"] == pytest.approx(1.2e-15 * 128)          # the original is untouched


def test_replace_rejects_bad_values(P):
    with pytest.raises(ValueError, match="c_bl_per_cell"):
        P.replace(c_bl_per_cell=-1e-15)
    with pytest.raises(ValueError, match="t_eval"):
        P.replace(t_eval=float("inf"))
    with pytest.raises(ValueError, match="comp_offset_sigma"):
        P.replace(comp_offset_sigma=-0.01)
    with pytest.raises(ValueError, match="derived"):
        P.replace(c_bl=1e-13)


def test_sigmas_may_be_zero(P):
    Q = P.replace(a_vt=0.0, comp_offset_sigma=0.0)
    assert Q["sigma_vt_cell"] == 0.0 and Q["comp_offset_sigma"] == 0.0


def test_ranged_parameters(P):
    r = P.ranged("circuit")
    for name in ("vdd", "a_vt", "a_beta", "c_bl_per_cell", "t_eval", "comp_offset_sigma"):
        assert name in r
    assert "c_bl" not in r
