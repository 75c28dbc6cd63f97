"""The claims ledger: sections (the paper's claims apart from the findings beyond it), rules, lookups, one software
reference for the baseline and the drops, the claims.json format and the README tables."""
import pytest

from ibnn.repro import claims

KEYS = set(claims.ROW_KEYS)


def _method(drop, diff):
    return {"mean_drop": drop, "ci95": [drop - 0.002, drop + 0.002], "n_chips": 20, "n_images": 10000,
            "ci_method": "two-level bootstrap (chips x images)",
            "vs_naive": {"difference": diff, "ci95": [diff - 0.002, diff + 0.002]}}


def synthetic_results(drop=0.004, ratio=26.0, tpw=650.0):
    corr = {k: _method(d, d - drop) for k, d in (("bias_row_rewrite", 0.004), ("readout_retraining", 0.015),
                                                 ("bias_row_rewrite+readout_retraining", 0.0039),
                                                 ("noise_aware_x1+bias_row_rewrite", 0.0038))}
    return {
        "03_train_bnn": {"chosen": {"topology": [81, 128, 10], "readout": "digital"}},
        "05_accuracy_on_chip": {
            "n_chips": 20, "n_test": 10000,
            "reference": {"network": "bnn.pt", "software_accuracy": 0.9476, "ci95": [0.9433, 0.9519],
                          "n_images": 10000},
            "naive": {"mean_drop": drop, "ci95": [drop - 0.001, drop + 0.001]},
            "corrections": corr,
            "comparisons": {"noise_aware_x1+bias_row_rewrite - bias_row_rewrite":
                            {"difference": -0.0002, "ci95": [-0.004, 0.0036]}}},
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
    rows = claims.evaluate(claims.default_claims(claims.JETCAS_FACTORIES), synthetic_results())
    assert [r["id"] for r in rows][:5] == list(claims.CLAIM_IDS)
    for r in rows:
        assert set(r) == KEYS
    by_id = {r["id"]: r for r in rows}
    assert by_id["baseline_accuracy"]["reproduced"] == pytest.approx(94.76)
    assert by_id["baseline_accuracy"]["tolerance"] == pytest.approx(0.5 + 0.43)   # rounding + images' CI
    assert by_id["accuracy_drop"]["tolerance"] == pytest.approx(0.05 + 0.1)   # rounding + CI half-width
    assert by_id["accuracy_drop"]["ci95"] == pytest.approx([0.3, 0.5])
    assert by_id["accuracy_drop"]["holds"] is True
    assert by_id["tops_per_w"]["holds"] is True                               # 650 >= 700 - 50
    assert by_id["tops_per_mm2"]["holds"] is False
    assert "81-128-10" in by_id["baseline_accuracy"]["assumptions"]
    # a different result changes the verdict: nothing is typed in
    rows = claims.evaluate(claims.default_claims(claims.JETCAS_FACTORIES),
                           synthetic_results(drop=0.02, ratio=80.0, tpw=600.0))
    by_id = {r["id"]: r for r in rows}
    assert not by_id["accuracy_drop"]["holds"] and not by_id["energy_ratio"]["holds"]
    assert not by_id["tops_per_w"]["holds"] and by_id["energy_ratio"]["reproduced"] == 80.0


def test_the_paper_s_claims_and_the_findings_beyond_it_are_separate_sections():
    secs = claims.default_sections(claims.JETCAS_FACTORIES)
    assert [s.id for s in secs][:2] == [claims.PAPER_SECTION, claims.BEYOND_SECTION]
    paper = [c for c in secs[0].rows]
    assert [c.id for c in paper] == list(claims.CLAIM_IDS) and all(isinstance(c, claims.Claim) for c in paper)
    rows = claims.evaluate(claims.default_claims(claims.JETCAS_FACTORIES), synthetic_results())
    beyond = [r for r in rows if r["section"] == claims.BEYOND_SECTION]
    assert {"drop_bias_row_rewrite", "drop_readout_retraining"} <= {r["id"] for r in beyond}
    for r in beyond:                      # no paper figure beside a method the paper did not use, no verdict
        assert r["paper"] is None and r["holds"] is None and r["tolerance"] is None
        assert r["ci95"] is not None and r["vs"] is not None
    rw = {r["id"]: r for r in beyond}["drop_bias_row_rewrite"]
    assert rw["reproduced"] == pytest.approx(0.4) and rw["vs"]["difference"] == pytest.approx(0.0)
    assert rw["vs"]["resolved"] is False and "20 held-out chips x 10000 test images" in rw["assumptions"]


def test_stems_include_what_the_assumptions_read():
    assert claims.stems(claims.default_claims(claims.JETCAS_FACTORIES)) == [
        "03_train_bnn", "05_accuracy_on_chip", "06_energy", "07_efficiency"]


def test_one_software_reference_for_the_baseline_and_the_drops():
    by_src = {c.id: c.source for c in claims.default_claims(claims.JETCAS_FACTORIES)}
    assert by_src["baseline_accuracy"] == "05_accuracy_on_chip:reference.software_accuracy"
    assert by_src["accuracy_drop"].startswith("05_accuracy_on_chip:")


def test_another_section_plugs_in():
    extra = lambda: claims.Section("prototype", "The prototype chip", (    # noqa: E731
        claims.Claim("x", "a prototype figure", 1.0, "", "equal", "05_accuracy_on_chip:n_chips", "",
                     claims.rounding(1.0), "whole number", section="prototype"),))
    facts = claims.JETCAS_FACTORIES + (extra,)
    rows = claims.evaluate(claims.default_claims(facts), synthetic_results())
    assert rows[-1]["section"] == "prototype" and rows[-1]["reproduced"] == 20.0
    table = claims.markdown_table(rows, claims.default_sections(facts))
    assert table.count("\n| --- ") == 3 and "**The prototype chip**" in table    # one table per section
    with pytest.raises(ValueError, match="unique"):
        claims.default_sections(claims.JETCAS_FACTORIES + (claims.paper_section,))


def test_missing_result_key_is_named():
    res = synthetic_results()
    del res["06_energy"]["energy_ratio"]
    with pytest.raises(KeyError, match="06_energy.json has no key 'energy_ratio'"):
        claims.evaluate(claims.default_claims(claims.JETCAS_FACTORIES), res)
    with pytest.raises(KeyError, match="not loaded"):
        claims.lookup({}, "06_energy:energy_ratio")


def test_readme_table_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{claims.README_START}\nSTALE-TABLE\n{claims.README_END}\noutro\n")
    table = claims.markdown_table(claims.evaluate(claims.default_claims(claims.JETCAS_FACTORIES), synthetic_results()))
    assert claims.update_readme(readme, table) is True
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE-TABLE" not in text
    assert table in text
    assert claims.update_readme(readme, table) is False          # idempotent
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the claims-table markers"):
        claims.update_readme(readme, table)


def test_full_ledger_has_the_prototype_and_fit_sections_and_the_fit_column():
    from test_claims_fit import _results as fit_results
    from test_claims_prototype import synthetic as jssc_results

    results = {**synthetic_results(tpw=600.0), **jssc_results(), **fit_results(tops=720.0)}
    assert claims.stems(claims.default_claims())[-2:] == ["08_jssc_prototype", "09_joint_fit"]
    rows = claims.evaluate(claims.default_claims(), results)
    assert [s.id for s in claims.default_sections()] == ["paper", "beyond", "jssc2017", "paper_fit"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["tops_per_w"]["holds"] is False and by_id["tops_per_w"]["fit"]["holds"] is True   # 600 / 720
    assert by_id["baseline_accuracy"]["fit"] is None                   # the fit has no baseline of its own
    assert all(r["fit"] is None for r in rows if r["section"] != "paper")
    table = claims.markdown_table(rows)
    assert "| paper-consistent fit | holds (fit) |" in table and "the fitted set: text" in table
    assert table.count("| paper-consistent fit |") == 1               # only the paper's section has the column
