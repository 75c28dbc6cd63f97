"""ibnn.analysis: drop statistics, per-chip calibration (recovers known offsets), guards against test-set
calibration and bad chip counts."""
from __future__ import annotations

import pytest
import torch
from conftest import OffsetChip, make_folded, random_codes

from ibnn import params
from ibnn.analysis import calibration, noise_aware, stats
from ibnn.mapping import map_network

P = params.load()


def test_drop_stats():
    s = stats.drop_stats(torch.tensor([0.93, 0.94, 0.92, 0.935]), 0.94)
    assert s.n_chips == 4
    assert s.mean_drop == pytest.approx(0.00875)
    assert s.mean_ci95[0] < s.mean_drop < s.mean_ci95[1]
    assert s.worst_drop == pytest.approx(0.02)
    with pytest.raises(ValueError, match="accuracies"):
        stats.drop_stats(torch.tensor([]), 0.9)


def test_calibration_recovers_offsets_and_accuracy():
    net = make_folded(seed=21, sizes=(81, 60, 40))
    m = map_network(net, P)
    chip = OffsetChip(n_chips=2, sigma=25.0, noise=0.0, seed=1)
    cal_codes = random_codes(250, seed=30)
    test_codes = random_codes(1000, seed=31)
    soft = net.predict(test_codes)
    naive = m.run(chip, test_codes).labels
    trims = (torch.arange(-80.0, 81.0, 8.0), torch.arange(-7.0, 8.0, 1.0))
    cal = calibration.calibrate_trim(m, chip, cal_codes, split="train", method="grid", trims=trims)
    cal_b = calibration.calibrate_trim(m, chip, cal_codes, split="train")
    fixed_b = m.run(chip, test_codes, theta=cal_b.theta).labels
    assert (fixed_b == soft[None]).double().mean() > 0.9
    fixed = m.run(chip, test_codes, theta=cal.theta).labels
    agree_naive = (naive == soft[None]).double().mean()
    agree_cal = (fixed == soft[None]).double().mean()
    assert agree_cal > agree_naive
    assert agree_cal > 0.9 and agree_naive < 0.8
    for b, a in zip(cal.mismatch_before, cal.mismatch_after):
        assert a <= b
    # layer 0 (dense integer dot products): the trims recover the comparator offsets to a few LSB
    L0 = m.layers[0]
    err = (cal.trim[:, L0.cols] - chip.offset[:, L0.cols]).abs()
    assert float(err.median()) < 5


def test_calibration_rejects_test_set():
    net = make_folded()
    m = map_network(net, P)
    chip = OffsetChip(1)
    test_codes = random_codes(300, seed=40)
    with pytest.raises(ValueError, match="test"):
        calibration.calibrate_trim(m, chip, test_codes[:100], split="test")
    with pytest.raises(ValueError, match="drawn from the test set"):
        calibration.calibrate_trim(m, chip, test_codes[:100], split="train", test_codes=test_codes)
    with pytest.raises(ValueError, match="split"):
        calibration.check_calibration_set("holdout")
    calibration.check_calibration_set("train", random_codes(50, seed=41), test_codes)


def test_bad_chip_count():
    with pytest.raises(ValueError, match="n_chips"):
        stats.make_chips(P, 0)
    with pytest.raises(ValueError, match="n_chips"):
        stats.make_chips(P, -3)


def test_flip_rates_and_column_error_model():
    net = make_folded(seed=22)
    m = map_network(net, P)
    chip = OffsetChip(n_chips=2, sigma=10.0, noise=3.0)
    codes = random_codes(300, seed=50)
    acts = m.run(chip, codes, layers=True, noise_seed=1).activations
    ref = m.reference(codes, layers=True).activations
    fr = stats.layer_flip_rates(acts, ref)
    assert len(fr) == 2 and 0 < fr[0]["flip_rate"] < 0.5
    em = noise_aware.measure_column_error(m, chip, codes, split="train")
    assert len(em.sigma0) == 2 and abs(em.gain[0]) < 0.05
    assert 5 < em.sigma0[0] < 15
    noise = noise_aware.preact_noise_from(em, m, seed=0)
    z = torch.zeros(1000, 4)
    assert 5 < float(noise(0, z).std()) < 15


def test_train_noise_aware_caches(tmp_path):
    pytest.importorskip("ibnn.nn")
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 32, (300, 81), generator=g)
    labels = torch.randint(0, 10, (300,), generator=g)
    meta = {"topology": [81, 16, 10], "on_array": [16], "readout": "digital", "epochs": 1, "lr": 1e-2,
            "batch_size": 100, "seed": 0, "size": 9, "bits": 5, "data_checksums": {}}
    path = tmp_path / "hwaware_noise.pt"
    f1, info1 = noise_aware.train_noise_aware(codes, labels, 5.0, meta, cache_path=path)
    assert not info1["cached"] and path.exists()
    f2, info2 = noise_aware.train_noise_aware(codes, labels, 5.0, meta, cache_path=path)
    assert info2["cached"]
    assert torch.equal(f1.predict(codes), f2.predict(codes))
    _, info3 = noise_aware.train_noise_aware(codes, labels, 6.0, meta, cache_path=path)
    assert not info3["cached"]
