"""ibnn.jssc: the prototype's boosted binary-weight column classifiers (JSSC 2017) on the simulated chip."""
from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import IntegerChip, OffsetChip

from ibnn import params
from ibnn.circuit import Chip
from ibnn.circuit.nonideal import NONIDEALITIES
from ibnn.cost import digital as cost_digital
from ibnn.cost import energy as cost_energy
from ibnn.jssc import costs, onchip, results, study, sweep
from ibnn.jssc import energy as jenergy
from ibnn.jssc.boost import BoostConfig, boost, prefix_votes, quantise_alpha, vote
from ibnn.jssc.columns import Layout, column_decisions
from ibnn.jssc.inloop import chip_decisions, prefix_correct, rounds_needed, train_in_loop
from ibnn.jssc.weak import BiasRows, _scan_thresholds, _threshold_table, pooled_covariance, train_weak
from ibnn.repro import io

P = params.load()


def _toy(n=600, d=81, seed=0, n_classes=10):
    """Codes 0..31 whose mean pattern depends on the class (a learnable toy problem)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    proto = torch.rand(n_classes, d, generator=g) * 31
    x = (proto[y] * 0.6 + torch.rand(n, d, generator=g) * 31 * 0.4).round().clamp(0, 31).to(torch.int64)
    return x, y


@pytest.fixture(scope="module")
def toy():
    x, y = _toy(n=240, seed=5)
    S_inv = torch.linalg.inv(pooled_covariance(x, y))
    cfg = BoostConfig(n_per_class=2, n_coarse=8)
    return x, y, S_inv, cfg, Layout.of(cfg, P)


# ---------------------------------------------------------------- bias rows, threshold scan, weak learners
@pytest.mark.parametrize("K", [0, 1, 4, 7])
def test_bias_rows_realise_every_reachable_bias_exactly(K):
    b = BiasRows(K)
    B = torch.arange(-b.reach - 2, b.reach + 3)
    ok = b.reachable(-B)
    cells = b.pattern(B[ok])
    assert cells.dtype == torch.int8 and bool(((cells == 1) | (cells == -1)).all())
    assert torch.equal((cells.to(torch.int64) * b.codes[:, None]).sum(0), B[ok])
    assert int(ok.sum()) == b.reach + 1                       # every value of the right parity in range
    with pytest.raises(ValueError, match="not reachable"):
        b.pattern(B[~ok][:1])


def test_threshold_scan_is_the_exact_minimum_over_reachable_thresholds():
    g = torch.Generator().manual_seed(1)
    z = torch.randint(-60, 61, (5, 200), generator=g).to(torch.float32)
    y = torch.where(torch.rand(5, 200, generator=g) < 0.3, 1.0, -1.0)
    d = torch.rand(5, 200, generator=g)
    d = d / d.sum(1, keepdim=True)
    bias = BiasRows(1)                                        # reach 63, odd thresholds only
    T, err = _scan_thresholds(z, d * y, torch.where(y > 0, 0.0, d).sum(1), _threshold_table(bias, 60))
    for p in range(5):
        cand = [t for t in range(-63, 64) if bool(bias.reachable(t))]
        errs = [float((d[p] * ((torch.where(z[p] >= t, 1.0, -1.0)) != y[p])).sum()) for t in cand]
        assert float(err[p]) == pytest.approx(min(errs), abs=1e-6)
        assert bool(bias.reachable(T[p]))


def test_binary_weak_learners_beat_chance_and_the_best_constant_on_weighted_data():
    x, y = _toy(n=300)
    ypm = torch.where(y == 3, 1.0, -1.0)
    g = torch.Generator().manual_seed(2)
    d = torch.rand(4, len(y), generator=g) * torch.where(ypm > 0, 9.0, 1.0)   # four weightings, class-heavy
    d = d / d.sum(1, keepdim=True)
    S_inv = torch.linalg.inv(pooled_covariance(x, y))
    const = torch.minimum((d * (ypm > 0)).sum(1), (d * (ypm < 0)).sum(1))   # best constant classifier
    L0 = train_weak(x, ypm, d, BiasRows(8), S_inv=S_inv, flips=0)
    L = train_weak(x, ypm, d, BiasRows(8), S_inv=S_inv, flips=20)
    for learners in (L0, L):
        assert learners.w.dtype == torch.int8 and bool(((learners.w == 1) | (learners.w == -1)).all())
        err = (d * (learners.decide(x) != ypm).to(torch.float32)).sum(1)
        assert torch.allclose(err.double(), learners.error, atol=1e-5)     # reported error is the true one
        assert bool((err < 0.5).all()) and bool((err < 0.75 * const).all())
    assert bool((L.error <= L0.error + 1e-7).all())                         # flips never make a learner worse


def test_multibit_reference_weights_are_integers_in_range():
    x, y = _toy(n=300, seed=4)
    L = train_weak(x, torch.where(y == 1, 1.0, -1.0), torch.ones(1, 300), BiasRows(60),
                   S_inv=torch.linalg.inv(pooled_covariance(x, y)), weight_bits=4)
    assert int(L.w.abs().max()) == 7 and float(L.error[0]) < 0.5
    z = x.double() @ L.w[0].double()
    assert torch.equal(L.decide(x)[0], torch.where(z >= L.T[0], 1, -1).to(torch.int8))


# ---------------------------------------------------------------- the vote
def test_vote_is_exact_integer_arithmetic_with_lowest_class_on_ties():
    g = torch.Generator().manual_seed(3)
    C, K, N = 12, 3, 50
    classes = torch.arange(C) % K
    a = torch.randint(-5, 9, (2, C), generator=g)
    h = (torch.randint(0, 2, (2, N, C), generator=g) * 2 - 1).to(torch.int8)
    got = vote(h, a, classes, K)
    for gi, n in itertools.product(range(2), range(N)):
        scores = [sum(int(a[gi, j]) * int(h[gi, n, j]) for j in range(C) if classes[j] == k) for k in range(K)]
        assert int(got[gi, n]) == scores.index(max(scores))           # list.index: the first (lowest) maximum
    assert int(vote(torch.ones(1, 1, C, dtype=torch.int8), torch.ones(1, C, dtype=torch.int64), classes, K)[0, 0]) == 0
    assert quantise_alpha(torch.tensor([[0.5, -1.0, 2.0]]), 8).tolist() == [[32, -64, 127]]


def test_prefix_votes_are_the_truncated_classifiers_and_end_at_predict(toy):
    x, y, S_inv, cfg, _ = toy
    B = boost(x, y, cfg, S_inv)
    h = B.ideal_decisions(x)
    a = quantise_alpha(B.alpha, cfg.alpha_bits)
    pre = prefix_votes(h, a, 10)
    for r in range(1, cfg.n_per_class + 1):
        assert torch.equal(pre[r - 1], vote(h[..., :10 * r], a[:, :10 * r], B.classes[:10 * r], 10))
    assert torch.equal(pre[-1], B.predict(h))
    ok = prefix_correct(B, h, y)
    assert ok.shape == (cfg.n_per_class, 1, len(y)) and float(ok[-1].double().mean()) > 0.5
    assert rounds_needed([0.5, 0.8, 0.9], 0.85) == 3 and rounds_needed([0.5], 0.9) is None


# ---------------------------------------------------------------- chips
def test_ideal_chip_in_the_loop_trains_exactly_the_software_classifier(toy):
    x, y, S_inv, cfg, lay = toy
    sw = boost(x, y, cfg, S_inv)
    chip = IntegerChip()                 # the ideal-chip contract of Chip (tests/test_chip.py checks Chip keeps it)
    il = train_in_loop(chip, x, y, cfg, S_inv, lay)
    for f in ("w", "T", "alpha"):
        assert torch.equal(getattr(sw, f), getattr(il, f)), f
    assert torch.equal(chip_decisions(chip, sw, x, lay), sw.ideal_decisions(x))   # the array computes the columns


def test_column_subsets_are_the_full_evaluation_sliced(toy):
    x, y, S_inv, cfg, lay = toy
    chip = Chip(P, n_chips=2, seed=11)
    chip.program(lay.weights(boost(x, y, cfg, S_inv).w, boost(x, y, cfg, S_inv).T)[0])
    codes, cols = lay.codes(x[:50]), torch.tensor([0, 7, 29])
    full = chip.evaluate(codes, None, 5).decisions
    assert torch.equal(column_decisions(chip, codes, cols, 5), full[:, :, cols])


def test_column_subsets_go_through_chip_evaluate_cols():
    class Fake:
        n_chips = 1

        def evaluate(self, codes, theta=None, noise_seed=None, *, cols=None):
            self.got = (theta, noise_seed, cols)
            return type("Out", (), {"decisions": torch.ones(1, codes.shape[0], len(cols), dtype=torch.int8)})()

    fake = Fake()
    out = column_decisions(fake, torch.zeros(4, 128, dtype=torch.int64), torch.tensor([3, 5]), 9)
    assert out.shape == (1, 4, 2) and fake.got == (None, 9, [3, 5])


def test_chip_in_the_loop_reweights_by_the_chips_own_errors(toy):
    x, y, S_inv, cfg, lay = toy
    chip = OffsetChip(n_chips=2, sigma=40.0, noise=5.0)
    il = train_in_loop(chip, x, y, cfg, S_inv, lay, noise_seed=1)
    assert il.w.shape == (2, cfg.n_columns, 81)
    h = chip_decisions(chip, il, x, lay, noise_seed=1)
    assert bool((h != il.ideal_decisions(x)).any())                    # the chip errs ...
    ypm = torch.where(torch.nn.functional.one_hot(y, 10).T > 0, 1, -1)   # (K, N)
    err_first = (h[:, :, :10].transpose(1, 2) != ypm[None]).double()
    d0 = torch.where(ypm > 0, 0.5 / (ypm > 0).sum(1, keepdim=True), 0.5 / (ypm < 0).sum(1, keepdim=True))
    assert torch.allclose((err_first * d0[None]).sum(2), il.train_error[:, :10], atol=0.02)   # ... alpha follows it


def test_bad_input_is_a_value_error_naming_the_parameter():
    with pytest.raises(ValueError, match="n_per_class"):
        BoostConfig(n_per_class=0)
    with pytest.raises(ValueError, match="method"):
        BoostConfig(method="svm")
    with pytest.raises(ValueError, match="columns"):
        Layout.of(BoostConfig(n_per_class=13), P)
    with pytest.raises(ValueError, match="input_bits"):
        Layout.of(BoostConfig(bits=4), P)
    with pytest.raises(ValueError, match="rows"):
        Layout(BiasRows(60), 81, 128, 128)
    with pytest.raises(ValueError, match="d must"):
        train_weak(torch.zeros(3, 2), torch.ones(3), -torch.ones(3), BiasRows(1), method="mean")
    with pytest.raises(ValueError, match="sweep_scales"):
        study.Sizes(sweep_scales=(0.5, 0.25))
    with pytest.raises(ValueError, match="sweep_chips"):
        study.Sizes(n_chips=5, sweep_chips=10)


# ---------------------------------------------------------------- energy
def test_digital_energies_extend_the_cost_rooms_accounting():
    assert 0 < jenergy.vote_energy(P, 60) < jenergy.vote_energy(P, 120)
    d1 = jenergy.digital_boosted_energy(P, 120)
    assert all(v >= 0 for v in d1.values()) and "vote" in d1
    l4, l8 = (sum(jenergy.digital_linear_energy(P, b).values()) for b in (4, 8))
    assert 0 < l4 < l8
    assert jenergy.multibit_layer_energy(P, 81, 10, 5, 1) == cost_digital.digital_layer_energy(P, 81, 10, 5)
    wq, bq = jenergy.quantised_linear(torch.tensor([[0.5, -1.0], [0.25, 0.0]]), torch.tensor([0.1, -0.2]), 3)
    assert wq.tolist() == [[2, -3], [1, 0]] and bq.dtype == torch.int64


def test_energy_of_one_decision_goes_through_the_cost_room(toy, monkeypatch):
    x, y, S_inv, cfg, lay = toy
    sw = boost(x, y, cfg, S_inv)
    calls = []
    real = cost_energy.imc_inference_energy
    monkeypatch.setattr(cost_energy, "imc_inference_energy", lambda *a, **k: calls.append(a) or real(*a, **k))
    e = jenergy.imc_decision_energy(P, Chip(P, n_chips=2, seed=3), sw, x[:30], lay)
    assert len(calls) == 1 and calls[0][1][0].drops.shape == (60, 128, 2)    # 2 chips x 30 images, every column
    assert e.n_chips == 2 and e.n_images == 30 and e.breakdown["bitline"] > 0
    assert e.breakdown["vote"] == jenergy.vote_energy(P, cfg.n_columns)
    assert e.total_J == pytest.approx(cost_energy.scope_energy(e.breakdown, "system") + e.breakdown["vote"])


# ---------------------------------------------------------------- the study, end to end on a toy problem
@pytest.fixture(scope="module")
def tiny(toy):
    x, y, S_inv, cfg, _ = toy
    xt, yt = _toy(n=120, seed=6)
    sizes = study.Sizes(n_chips=2, n_loop=len(y), n_test=len(yt), sweep_chips=2, sweep_test=100,
                        sweep_scales=(0.5,), energy_images=10, n_boot=200)
    D = study.Data(x, y, xt, yt, torch.arange(len(y)), torch.arange(len(yt)), S_inv)
    run = onchip.chip_study(P, D, sizes, cfg)
    return D, sizes, cfg, run, onchip.summarise(run, sizes.n_boot, sizes.seed)


def test_chip_study_pairs_the_arms_on_the_same_chips_and_images(tiny):
    D, sizes, cfg, run, s = tiny
    assert run.ok_a.shape == run.ok_b.shape == (cfg.n_per_class, 2, 120) and run.ok_sw.shape == (cfg.n_per_class, 120)
    for arm, ok in (("software_trained", run.ok_a), ("chip_in_the_loop", run.ok_b)):
        assert s[arm]["mean"] == pytest.approx(float(ok[-1].double().mean()))
        assert s[arm]["drop"]["mean_drop"] == pytest.approx(float(run.ok_sw[-1].double().mean()) - s[arm]["mean"])
        assert s[arm]["n_chips"] == 2 and s[arm]["ci95"][0] <= s[arm]["mean"] <= s[arm]["ci95"][1]
    g = s["gain_in_loop_over_software_trained"]
    assert g["difference"] == pytest.approx(s["chip_in_the_loop"]["mean"] - s["software_trained"]["mean"])


def test_sweep_energy_and_results_have_the_issues_keys(tiny):
    D, sizes, cfg, run, s = tiny
    alone = sweep.alone_study(P, D, sizes, cfg, run)
    assert set(alone["mechanisms"]) == set(NONIDEALITIES) | {"all"}      # every mechanism the chip has
    mm = sweep.mismatch_sweep(P, D, sizes, cfg, run, target=0.01)
    assert mm["scales"] == [0.5, 1.0] and len(mm["arms"]["software_trained"]["points"]) == 2
    linear = {"accuracy_by_weight_bits": {str(b): 1.0 for b in range(1, 9)}}
    en = costs.energy_study(P, run, D, sizes, cfg, linear, {"n_weak_classifiers_to_target": 200}, 0.5)
    assert en["standard_training_options"]["linear"]["weight_bits"] == 1
    assert en["ratio_vs_discrete_same_training"] == pytest.approx(en["digital_same_training_J"] /
                                                                  en["energy_per_decision_J"])
    sw = study.Software(study.software_interval(run.ok_sw[-1], 200, 0), [0.9], 400, cfg.n_columns, 1, 0.0, 0, 0)
    res = results.assemble(cfg, sizes, sw, linear, {"n_weak_classifiers_to_target": 200}, {
        "accuracy": {"mean": 0.9}, "n_train": 10, "n_weak_classifiers": 10}, s, alone, mm, en)
    for key in ("software_accuracy", "chip_accuracy_software_trained", "chip_accuracy_chip_in_the_loop"):
        assert {"mean", "ci95", "n_chips"} <= set(res[key])
    for key in ("n_weak_classifiers", "energy_per_decision_J", "ratio_vs_discrete_standard",
                "ratio_vs_discrete_same_training", "software_accuracy_784", "needed_change", "resolution"):
        assert key in res
    assert res["needed_change"]["dominant_nonideality"] in alone["mechanisms"]


def test_verdict_reads_both_parts_off_the_intervals():
    def summ(a, b):
        return {"software_trained": {"drop": {"mean_drop": np.mean(a), "ci95": a}},
                "chip_in_the_loop": {"drop": {"mean_drop": np.mean(b), "ci95": b}}}
    v = results.verdict(summ([0.03, 0.05], [-0.001, 0.02]))
    assert v["in_loop_digital_equivalent"] and v["software_training_insufficient"]
    v = results.verdict(summ([-0.01, 0.01], [0.005, 0.02]))
    assert not v["in_loop_digital_equivalent"] and not v["software_training_insufficient"]


def test_sizes_are_a_frozen_record():
    s = study.Sizes()
    assert s.n_chips >= 100 and replace(s, n_chips=5, sweep_chips=2).n_chips == 5


def test_written_results_are_consistent():
    """Invariants of results/08_jssc_prototype.json, the committed record (or a quick-profile run's)."""
    path = io.results_dir() / "08_jssc_prototype.json"
    if not path.exists():
        pytest.skip(f"{path} not written (run make figures)")
    r = json.loads(path.read_text())
    if r["_provenance"]["profile"] == "full":
        assert r["chip_accuracy_chip_in_the_loop"]["n_chips"] >= 100
    for arm in ("software_trained", "chip_in_the_loop"):
        a = r[f"chip_accuracy_{arm}"]
        assert a["ci95"][0] <= a["mean"] <= a["ci95"][1]
        assert a["drop"]["mean_drop"] == pytest.approx(a["software_accuracy_same_images"] - a["mean"])
    e = r["energy"]
    assert r["ratio_vs_discrete_same_training"] == pytest.approx(e["digital_same_training_J"] /
                                                                 r["energy_per_decision_J"])
    assert r["n_weak_classifiers"] == r["config"]["n_per_class"] * r["config"]["n_classes"]
    assert r["energy_per_decision_J"] == pytest.approx(sum(e["imc"]["breakdown"].values()))
