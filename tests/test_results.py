"""Invariants of the results the notebooks wrote (in the manner of pyhf's notebook tests).

Run on the committed record (results/ of the repository) by the unit stage, and on the scratch output root of
the quick-profile notebook run by the nbval stage of `make test` (IBNN_OUTPUT_ROOT points there)."""
from __future__ import annotations

import json
import os

import pytest

from ibnn import params
from ibnn.cost import efficiency, ops
from ibnn.repro import claims, io, provenance


@pytest.fixture(autouse=True)
def record_root(monkeypatch):
    """The root under test is IBNN_OUTPUT_ROOT or the repository (not the scratch root hand runs write into)."""
    monkeypatch.setenv("IBNN_OUTPUT_ROOT", os.environ.get("IBNN_OUTPUT_ROOT") or str(io.REPO_ROOT))


def flat(d: dict, prefix: str = "") -> dict:
    """{"a.b.c": value} of a nested dict."""
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def load(stem: str) -> dict:
    path = io.results_dir() / f"{stem}.json"
    if not path.exists():
        pytest.skip(f"{path} not written (run make figures)")
    return json.loads(path.read_text())


@pytest.mark.parametrize("stem", ["01_data", "02_circuit_models", "03_train_bnn", "04_map_to_array",
                                  "05_accuracy_on_chip", "06_energy", "07_efficiency", "10_claims"])
def test_every_result_is_current_with_its_inputs(stem):
    provenance.check_provenance(stem, load(stem))


def test_ideal_chip_equals_software_exactly():
    r = load("04_map_to_array")
    assert r["ideal_label_mismatches"] == 0 and r["reference_label_mismatches"] == 0
    assert r["ideal_activation_mismatches"] == 0 and r["ideal_agreement"] == 1.0


def test_folded_networks_equal_trained_and_the_mean_is_the_mean():
    r = load("03_train_bnn")
    assert all(r["folded_equals_trained"].values())
    accs = [r["test_acc"][str(s)] for s in r["seeds"]]
    assert r["test_acc_mean"] == pytest.approx(sum(accs) / len(accs))


def _dicts(node, path=""):
    """Every dict in a nested result, with its key path."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _dicts(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _dicts(v, f"{path}.{i}")


def test_every_drop_carries_its_interval_and_method():
    r = load("05_accuracy_on_chip")
    n = 0
    for path, d in _dicts(r):
        if "mean_drop" in d:
            n += 1
            assert d.get("ci_method") == "two-level bootstrap (chips x images)", path
            assert len(d["ci95"]) == 2 and d["ci95"][0] <= d["mean_drop"] <= d["ci95"][1], path
            if "chip_accuracy" in d:       # software minus chip accuracy, paired per image
                assert d["mean_drop"] == pytest.approx(d["software_accuracy"] - d["chip_accuracy"]), path
    assert n > 0


def test_corrections_on_held_out_chips_with_paired_differences():
    r = load("05_accuracy_on_chip")
    for name in ("bias_row_rewrite", "readout_retraining"):
        c = r["corrections"][name]
        assert c["n_chips"] == r["n_chips"] and c["n_images"] == r["n_test"]
        assert c["vs_naive"]["paired"] and len(c["vs_naive"]["ci95"]) == 2
        assert c["mean_drop"] - r["naive"]["mean_drop"] == pytest.approx(c["vs_naive"]["difference"])
    assert r["reference"]["software_accuracy"] == pytest.approx(r["naive"]["software_accuracy"])


def test_no_trim_beyond_its_declared_range():
    r = load("05_accuracy_on_chip")
    trims = [(p, d) for p, d in _dicts(r) if "theta_abs_max_lsb" in d]
    assert trims and all(name != "comparator_trim_hypothetical" for name in r["corrections"])
    for path, d in trims:
        assert d["theta_abs_max_lsb"] <= d["theta_max_lsb"] <= r["trim_comparison"]["theta_max_lsb"], path
    assert "not a circuit of the JSSC 2017 prototype" in r["trim_comparison"]["circuit"]


def test_sweeps_cover_every_mechanism_and_state_their_resolution():
    from ibnn.circuit.nonideal import NONIDEALITIES
    r = load("05_accuracy_on_chip")
    if r["_provenance"]["profile"] == "full":
        assert set(r["sweeps"]) == set(NONIDEALITIES)
    for name, sw in r["sweeps"].items():
        assert sw["resolution"]["halfwidth"] > 0 and "tells drops apart by" in sw["resolution"]["text"], name


def test_tops_per_w_is_ops_over_energy_of_the_same_run():
    r06, r07 = load("06_energy"), load("07_efficiency")
    if "all_rows" not in r06 or "workload_ops" not in r07.get("headline", {}):
        pytest.skip("results/06 and 07 predate the all-rows workload: rerun make figures")
    P = params.load()
    imc = {"n_cycles": r06["n_cycles"], "array_J": r06["energy_per_inference_imc_array_J"],
           "macro_J": r06["energy_per_inference_imc_macro_J"], "total_J": r06["energy_per_inference_imc_J"]}
    peak = {k: r06["all_rows"][k] for k in ("array_J", "macro_J", "total_J")}
    table = efficiency.tops_per_w_table(P, imc, [tuple(s) for s in r06["layer_shapes"]], r06["readout"], peak)
    assert flat(table) == pytest.approx(flat(r07["tops_per_w"]), rel=1e-12)
    net = ops.ops_per_inference("mac2", [tuple(s) for s in r06["layer_shapes"]], P.int("input_bits"))
    assert r07["tops_per_w"]["network"]["mac2"]["macro"] == pytest.approx(net / imc["macro_J"] / 1e12)
    # the headline's ops and energy come from one workload
    h = r07["headline"]
    assert h["workload_ops"] == h["workload_energy"] == "network"
    assert h["tops_per_w_mac2"] == pytest.approx(r07["tops_per_w"]["network"]["mac2"]["macro"])


def test_silicon_check_and_word_line_settling():
    r02, r06 = load("02_circuit_models"), load("06_energy")
    if "wl_settling" not in r02 or "silicon_check" not in r06:
        pytest.skip("results/02 and 06 predate the word-line physics: rerun make figures")
    s = r02["wl_settling"]
    assert len(s["codes"]) == len(s["t_settle_s"]) and max(s["t_settle_s"]) <= s["t_allotted_s"]
    c = r06["silicon_check"]
    assert c["ratio"] == pytest.approx(c["modelled_J"] / c["published_J"]) and 0.5 <= c["ratio"] <= 2.0


def test_claims_rows_recompute_from_the_results():
    rows = json.loads((io.results_dir() / "claims.json").read_text()) if (io.results_dir() / "claims.json").exists() \
        else pytest.skip("results/claims.json not written")
    results = {s: load(s) for s in claims.stems(claims.default_claims())}
    assert claims.evaluate(claims.default_claims(), results) == rows
