"""The prototype paper's section of the claims ledger (ibnn.repro.claims_prototype), on synthetic results."""
import json

import pytest

from ibnn.published import JSSC2017
from ibnn.repro import claims, io
from ibnn.repro.claims_prototype import STEM, prototype_claims

IDS = ["jssc_accuracy_81", "jssc_digital_equivalent", "jssc_energy_per_decision", "jssc_ratio_standard",
       "jssc_ratio_same_training"]


def synthetic(acc=0.894, drop=0.009, drop_ci=(0.0, 0.019), energy=640e-12, r_std=113.2, r_same=12.8):
    """A results/08_jssc_prototype.json with just the keys the claims read."""
    return {STEM: {
        "software_accuracy": {"mean": acc, "ci95": [acc - 0.006, acc + 0.006], "n_train": 60000},
        "chip_accuracy_chip_in_the_loop": {"mean": 0.86, "n_chips": 100, "n_images": 2000,
                                           "drop": {"mean_drop": drop, "ci95": list(drop_ci)}},
        "chips": {"n_train": 2000}, "n_weak_classifiers": 120, "energy_per_decision_J": energy,
        "ratio_vs_discrete_standard": r_std, "ratio_vs_discrete_same_training": r_same,
        "energy": {"standard_training_choice": "linear"}}}


def test_five_rows_in_the_abstracts_order_with_their_own_sources():
    cs = prototype_claims()
    assert [c.id for c in cs] == IDS
    assert all(c.source.startswith(f"{STEM}:") for c in cs)
    assert not {c.id for c in cs} & {c.id for c in claims.default_claims(claims.JETCAS_FACTORIES)}   # apart
    assert [c.paper for c in cs] == pytest.approx([100 * JSSC2017["accuracy_81"], 0.0,
                                                   1e12 * JSSC2017["energy_per_decision_J"],
                                                   JSSC2017["ratio_vs_discrete_standard"],
                                                   JSSC2017["ratio_vs_discrete_same_training"]])


def test_values_and_verdicts_come_from_the_results():
    rows = {r["id"]: r for r in claims.evaluate(prototype_claims(), synthetic())}
    assert rows["jssc_accuracy_81"]["reproduced"] == pytest.approx(89.4)
    assert rows["jssc_accuracy_81"]["tolerance"] == pytest.approx(0.5 + 0.6)        # rounding + CI half-width
    assert rows["jssc_accuracy_81"]["holds"]                                          # |89.4 - 90| <= 1.1
    assert rows["jssc_digital_equivalent"]["reproduced"] == pytest.approx(0.9)
    assert rows["jssc_digital_equivalent"]["tolerance"] == pytest.approx(0.5 + 0.95)
    assert rows["jssc_digital_equivalent"]["holds"]
    assert rows["jssc_energy_per_decision"]["reproduced"] == pytest.approx(640.0)
    assert not rows["jssc_energy_per_decision"]["holds"]                              # 10 pJ off, +-5 allowed
    assert rows["jssc_ratio_standard"]["holds"] and rows["jssc_ratio_same_training"]["holds"]
    assert "120 columns" in rows["jssc_accuracy_81"]["assumptions"]
    assert "100 held-out" in rows["jssc_digital_equivalent"]["assumptions"]
    assert "(linear)" in rows["jssc_ratio_standard"]["assumptions"]
    # other results, other verdicts: nothing is typed in
    rows = {r["id"]: r for r in claims.evaluate(prototype_claims(), synthetic(
        acc=0.85, drop=0.03, drop_ci=(0.02, 0.04), energy=630e-12, r_std=31.8, r_same=100.7))}
    assert not rows["jssc_accuracy_81"]["holds"] and not rows["jssc_digital_equivalent"]["holds"]
    assert rows["jssc_energy_per_decision"]["holds"]
    assert not rows["jssc_ratio_standard"]["holds"] and not rows["jssc_ratio_same_training"]["holds"]
    assert rows["jssc_ratio_same_training"]["reproduced"] == 100.7


def test_chip_better_than_software_is_still_equivalent():
    rows = {r["id"]: r for r in claims.evaluate(prototype_claims(), synthetic(drop=-0.02, drop_ci=(-0.03, -0.01)))}
    assert rows["jssc_digital_equivalent"]["holds"]


def test_the_rows_make_a_readme_table():
    sec = claims.prototype_section()
    rows = claims.evaluate(sec.rows, synthetic())
    assert [r["id"] for r in rows] == IDS and {r["section"] for r in rows} == {claims.PROTOTYPE_SECTION}
    table = claims.markdown_table(rows, [sec])
    assert table.count("\n") == 2 + 2 + len(IDS) - 1 and "jssc_ratio_standard" in table    # title, blank, header
    assert table.startswith(f"**{sec.title}**") and "JETCAS" not in table.splitlines()[0]


def test_missing_key_is_named():
    res = synthetic()
    del res[STEM]["ratio_vs_discrete_standard"]
    with pytest.raises(KeyError, match="ratio_vs_discrete_standard"):
        claims.evaluate(prototype_claims(), res)


def test_every_source_exists_in_the_written_results():
    path = io.results_dir() / f"{STEM}.json"
    if not path.exists():
        pytest.skip(f"{path} not written (run make figures)")
    res = {STEM: json.loads(path.read_text())}
    for row in claims.evaluate(prototype_claims(), res):
        assert isinstance(row["reproduced"], float) and row["tolerance"] >= 0
