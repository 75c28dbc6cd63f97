"""The claims ledger's second column ("paper-consistent fit") from a results/09_joint_fit.json record."""
import pytest

from ibnn.explore import claims_fit as CF
from ibnn.published import PAPER


def _results(tops=720.0, drop=0.0041):
    claims = {"accuracy_drop": {"value": drop, "tolerance": 0.0008},
              "accuracy_drop_naive": {"value": 0.02, "tolerance": 0.001},
              "energy_ratio": {"value": 26.2, "tolerance": 0.5},
              "tops_per_w": {"value": tops, "tolerance": 50.0},
              "tops_per_mm2": {"value": 6.4, "tolerance": 0.5},
              "silicon_check": {"value": 0.7, "tolerance": 1.0}}
    fit = {"claims": claims, "distance": 1.5, "choices": {"pulse": 3.5e-10, "drive": 4.0},
           "changed_choices": ["pulse"], "selection": {"ops": "1b"}, "summary": "text",
           "moved": [{"name": "a_cell", "default": 2.45e-12, "value": 4e-12, "z": 0.6, "inside": True}]}
    return {CF.STEM: {"joint_fit": fit}}


def test_rows_and_holds():
    rows = CF.fit_rows(_results())
    by = {r["id"]: r for r in rows}
    assert set(by) == {f"fit_{k}" for k in CF.CLAIMS}
    assert by["fit_accuracy_drop"]["reproduced"] == pytest.approx(0.41)
    assert by["fit_accuracy_drop"]["tolerance"] == pytest.approx(0.08)
    assert by["fit_accuracy_drop"]["holds"] and by["fit_tops_per_w"]["holds"]
    assert not by["fit_accuracy_drop_naive"]["holds"]
    assert by["fit_tops_per_w"]["paper"] == PAPER["tops_per_w"]
    assert "a_cell" in by["fit_energy_ratio"]["assumptions"] and "inside" in by["fit_energy_ratio"]["assumptions"]
    assert not {r["id"]: r for r in CF.fit_rows(_results(tops=600.0))}["fit_tops_per_w"]["holds"]


def test_second_column_adds_fit_entry():
    ledger = [{"id": "tops_per_w", "holds": False}, {"id": "baseline_accuracy", "holds": True}]
    out = CF.second_column(ledger, _results())
    assert out[0]["fit"]["holds"] and out[0]["fit"]["column"] == CF.FIT_COLUMN
    assert "fit" not in out[1] and "fit" not in ledger[0]
    drop = CF.second_column([{"id": "accuracy_drop", "holds": False}], _results())[0]["fit"]
    assert drop["reproduced"] == pytest.approx(2.0) and not drop["holds"]      # the naive drop beside the naive row


def test_specs_fit_the_ledger_claim_fields():
    for s in CF.claim_specs():
        assert s["source"].startswith(f"{CF.STEM}:joint_fit.claims.") and s["rule"] in ("equal", "at_least")
        assert callable(s["tolerance"]) and s["section"] == CF.FIT_SECTION
    with pytest.raises(KeyError, match="09_joint_fit"):
        CF.fit_rows({})
