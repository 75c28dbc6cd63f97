"""The claims ledger: rules, lookups, the claims.json format and the README table."""
import pytest

from ibnn.repro import claims

KEYS = {"id", "claim", "paper", "reproduced", "unit", "tolerance", "holds", "source", "assumptions"}


def synthetic_results(drop=0.004, ratio=26.0, tpw=650.0):
    return {
        "03_train_bnn": {"test_acc_mean": 0.9447, "chosen": {"topology": [81, 128, 10], "readout": "digital"}},
        "05_accuracy_on_chip": {
            "naive": {"mean_drop": drop, "mean_drop_ci95": [drop - 0.001, drop + 0.001]},
            "calibrated": {"mean_drop": 0.003, "mean_drop_ci95": [0.0025, 0.0035], "drop_interval95": [0.0, 0.006]},
            "noise_aware": [{"scale": 1.0, "calibrated": {"mean_drop": 0.002, "mean_drop_ci95": [0.0015, 0.0025]}}]},
        "06_energy": {"energy_ratio": ratio},
        "07_efficiency": {"headline": {"tops_per_w_mac2": tpw, "tops_per_mm2_mac2": 12.0}},
    }


@pytest.mark.parametrize("rule, paper, rep, tol, expect", [
    ("equal", 26, 26.4, 0.5, True), ("equal", 26, 26.6, 0.5, False), ("equal", 26, 25.4, 0.5, False),
    ("at_least", 700, 651, 50, True), ("at_least", 700, 649, 50, False), ("at_least", 700, 5000, 50, True),
    ("at_most", 0.4, 0.44, 0.05, True), ("at_most", 0.4, 0.46, 0.05, False), ("at_most", 0.4, 0.0, 0.05, True),
])
def test_holds_rules(rule, paper, rep, tol, expect):
    assert claims.holds(rule, paper, rep, tol) is expect


def test_holds_rejects_bad_rule_and_tolerance():
    with pytest.raises(ValueError, match="rule='near'"):
        claims.holds("near", 1, 1, 0)
    with pytest.raises(ValueError, match="tolerance=-1"):
        claims.holds("equal", 1, 1, -1)


def test_ledger_format_and_values_come_from_results():
    rows = claims.evaluate(claims.default_claims(), synthetic_results())
    assert [r["id"] for r in rows][:5] == list(claims.CLAIM_IDS)
    for r in rows:
        assert set(r) == KEYS
    by_id = {r["id"]: r for r in rows}
    assert by_id["baseline_accuracy"]["reproduced"] == pytest.approx(94.47)
    assert by_id["accuracy_drop"]["tolerance"] == pytest.approx(0.05 + 0.1)   # rounding + CI half-width
    assert by_id["accuracy_drop"]["holds"] is True
    assert by_id["tops_per_w"]["holds"] is True                               # 650 >= 700 - 50
    assert by_id["tops_per_mm2"]["holds"] is False
    assert "81-128-10" in by_id["baseline_accuracy"]["assumptions"]
    # a different result changes the verdict: nothing is typed in
    rows = claims.evaluate(claims.default_claims(), synthetic_results(drop=0.02, ratio=80.0, tpw=600.0))
    by_id = {r["id"]: r for r in rows}
    assert not by_id["accuracy_drop"]["holds"] and not by_id["energy_ratio"]["holds"]
    assert not by_id["tops_per_w"]["holds"] and by_id["energy_ratio"]["reproduced"] == 80.0


def test_missing_result_key_is_named():
    res = synthetic_results()
    del res["06_energy"]["energy_ratio"]
    with pytest.raises(KeyError, match="06_energy.json has no key 'energy_ratio'"):
        claims.evaluate(claims.default_claims(), res)
    with pytest.raises(KeyError, match="not loaded"):
        claims.lookup({}, "06_energy:energy_ratio")


def test_readme_table_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{claims.README_START}\nSTALE-TABLE\n{claims.README_END}\noutro\n")
    table = claims.markdown_table(claims.evaluate(claims.default_claims(), synthetic_results()))
    assert claims.update_readme(readme, table) is True
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE-TABLE" not in text
    assert table in text
    assert claims.update_readme(readme, table) is False          # idempotent
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the claims-table markers"):
        claims.update_readme(readme, table)
