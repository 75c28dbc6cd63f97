"""Notebook 09's point function on a small chip run: the silicon check is the cost room's own (the same energy
study as notebook 06 on the same chip and images), choices change only the JETCAS point, bad entries are refused."""
import pytest
import torch

from ibnn import data, nn, params
from ibnn.circuit import Chip
from ibnn.cost.study import EnergyStudy
from ibnn.explore import correct
from ibnn.explore import paperpoint as PP
from ibnn.mapping import map_network
from ibnn.published import JSSC2017


@pytest.fixture(scope="module")
def setup():
    P = params.load()
    folded = nn.load_network(nn.find_checkpoint("full", None))
    images, labels = data.load_mnist("test")
    train, _ = data.load_mnist("train")
    D = correct.eval_data(folded, torch.as_tensor(data.features(images[:40])), torch.as_tensor(labels[:40]),
                          torch.as_tensor(data.features(train[-10:])))
    res = PP.Resolution(n_chips=1, n_images=20, n_cal=10, n_energy=20, n_boot=20, n_all_rows=4)
    PP.clear_caches()
    return P, folded, D, PP.PaperPoint(P, folded, D, res)


def test_silicon_check_is_the_cost_rooms_energy_study(setup):
    P, folded, D, pp = setup
    f = pp({}, 0)
    study = EnergyStudy(P, map_network(folded, P), D.codes[:20], D.labels[:20], noise_seed=0)
    _, act = study.run(Chip(P, n_chips=1, seed=0))
    assert f["silicon_J"] == pytest.approx(study.energies(P, act)["imc_J"], rel=1e-9)
    assert f["silicon_ratio"] == pytest.approx(f["silicon_J"] / JSSC2017["energy_per_decision_J"])
    assert {"drop_naive", "drop_corrected", "energy_ratio", "tops_per_w_all_rows_1b",
            "tops_per_mm2_network_mac2_macro"} <= set(f)


def test_choices_move_the_jetcas_point_not_the_silicon_check(setup):
    _, _, _, pp = setup
    f0, f1 = pp({}, 0), pp({"pulse": 0.35e-9, "drive": 4.0}, 0)
    assert f1["silicon_J"] == pytest.approx(f0["silicon_J"], rel=1e-12)
    assert f1["tops_per_w_network_mac2"] > f0["tops_per_w_network_mac2"]


def test_bad_entries_are_refused(setup):
    _, _, _, pp = setup
    with pytest.raises(ValueError, match="neither parameters nor choices"):
        pp({"no_such_thing": 1.0}, 0)
    with pytest.raises(ValueError, match="drive"):
        pp({"drive": 0.5}, 0)
    with pytest.raises(ValueError, match="gating"):
        pp({"gating": "rows"}, 0)


def test_skipped_work_changes_no_computed_figure(setup):
    P, folded, D, pp = setup
    full = pp({"pulse": 0.35e-9}, 0)
    lean = PP.PaperPoint(P, folded, D, pp.res, silicon=False, peak=False)({"pulse": 0.35e-9}, 0)
    assert lean and not any(k.startswith(("silicon", "tops_per_w_all_rows", "energy_all_rows")) for k in lean)
    assert lean == {k: full[k] for k in lean}
    energy = PP.PaperPoint(P, folded, D, pp.res, drops=False)({"pulse": 0.35e-9}, 0)
    assert energy == {k: full[k] for k in energy}          # the dropper's chip 0 is the energy point's chip


def test_a_chip_free_entry_reuses_the_chip_and_gives_what_a_fresh_run_gives(setup):
    P, folded, D, pp = setup
    pt = {"precharge_sag_max": 0.8 * P["precharge_sag_max"]}
    pp({}, 0)
    n_chips = len(PP._CHIPS)
    cached = pp(pt, 0)
    assert len(PP._CHIPS) == n_chips
    PP.clear_caches()
    fresh = pp(pt, 0)
    assert cached == fresh
    assert fresh["energy_per_inference_J"] != pp({}, 0)["energy_per_inference_J"]
    assert fresh["drop_corrected"] == pp({}, 0)["drop_corrected"]
