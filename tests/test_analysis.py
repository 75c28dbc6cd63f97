"""ibnn.analysis: the hypothetical trim stays within its declared range, guards against test-set calibration and bad
chip counts, flip rates, the column error model and noise-aware training's cache."""
from __future__ import annotations

import pytest
import torch
from conftest import OffsetChip, make_folded, random_codes

from ibnn import params
from ibnn.analysis import calibration, corrections, noise_aware, stats
from ibnn.mapping import map_network

P = params.load()


def test_trim_stays_within_the_declared_range_and_recovers_offsets_inside_it():
    """The hypothetical trim never leaves the mapping's declared +-theta_max (a wider range is refused); inside it
    the trims follow the comparator offsets, and agreement with software rises."""
    net = make_folded(seed=21, sizes=(81, 60, 40))
    m = map_network(net, P)
    chip = OffsetChip(n_chips=2, sigma=25.0, noise=0.0, seed=1)
    cal_codes, test_codes = random_codes(250, seed=30), random_codes(1000, seed=31)
    soft = net.predict(test_codes)
    cal = corrections.calibrate_trim(m, chip, cal_codes, split="train")
    used = torch.cat([L.cols for L in m.layers])
    assert float(cal.theta[:, used].abs().max()) <= m.theta_max
    assert cal.info["layers"][0]["theta_abs_max_lsb"] <= m.theta_max
    assert "not a circuit of the JSSC 2017 prototype" in cal.info["circuit"]
    tight = corrections.calibrate_trim(m, chip, cal_codes, split="train", theta_max=5.0)
    assert float(tight.theta[:, used].abs().max()) <= 5.0
    assert tight.info["layers"][0]["n_at_edge"] > cal.info["layers"][0]["n_at_edge"]
    with pytest.raises(ValueError, match="theta_max"):
        corrections.calibrate_trim(m, chip, cal_codes, split="train", theta_max=m.theta_max + 1)
    naive = (m.run(chip, test_codes).labels == soft[None]).double().mean()
    fixed = (calibration.run_corrected(m, chip, test_codes, cal).labels == soft[None]).double().mean()
    assert fixed > naive + 0.05
    for layer in cal.info["layers"]:
        assert layer["mismatch_after"] <= layer["mismatch_before"]
    L0 = m.layers[0]                           # inside the range the trims follow the offsets (a few LSB)
    inside = chip.offset[:, L0.cols].abs() < m.theta_max - 5
    err = (cal.theta[:, L0.cols] - L0.theta_ref[None] - chip.offset[:, L0.cols]).abs()[inside]
    assert float(err.median()) < 5


def test_calibration_rejects_test_set():
    net = make_folded()
    m = map_network(net, P)
    chip = OffsetChip(1)
    test_codes = random_codes(300, seed=40)
    with pytest.raises(ValueError, match="test"):
        corrections.calibrate_trim(m, chip, test_codes[:100], split="test")
    with pytest.raises(ValueError, match="drawn from the test set"):
        corrections.calibrate_trim(m, chip, test_codes[:100], split="train", test_codes=test_codes)
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


def test_sweeps_cover_every_mechanism_with_paired_points_and_a_resolution(monkeypatch):
    """sweep_all with no names sweeps every field of Nonidealities (whatever it holds), each point with a
    two-level interval; a mechanism without a physical axis is plotted against its scale."""
    from ibnn.analysis import evaluation, sweeps
    from ibnn.circuit import nonideal
    net = make_folded(seed=23, sizes=(81, 40))
    m = map_network(net, P)
    codes = random_codes(60, seed=52)
    bed = evaluation.TestBed(codes, torch.as_tensor(net.predict(codes)), torch.ones(60, dtype=torch.bool))
    out = sweeps.sweep_all(P, m, bed, None, [1.0], 1, seed=3, n_boot=50, over={"compression": 1.0})
    assert list(out) == list(nonideal.NONIDEALITIES)
    for sw in out.values():
        d = sw.as_dict()
        assert d["points"][0]["ci_method"] == "two-level bootstrap (chips x images)"
        assert d["resolution_at_parameter_set"]["halfwidth"] >= 0
        e, base = d["points"][0]["excess_over_base"], d["base"]
        assert e["paired"] and e["difference"] == pytest.approx(d["points"][0]["mean_drop"] - base["mean_drop"])
        assert base["over"] == {"compression": 1.0}
    monkeypatch.setattr(nonideal, "physical_magnitude", lambda name, s, P: (_ for _ in ()).throw(ValueError(name)))
    assert sweeps.magnitude("noise", 2.0, P) == (2.0, "noise scale (1 = parameter set)")
    with pytest.raises(ValueError):
        sweeps.magnitude("not_a_mechanism", 1.0, P)
    assert sweeps.alone_over("noise", 2.0, {"compression": 1.0}) == nonideal.Nonidealities(
        **{**{k: 0.0 for k in nonideal.NONIDEALITIES}, "noise": 2.0, "compression": 1.0})


def test_the_column_error_fit_does_not_depend_on_torchs_thread_count():
    # make figures gives each notebook its share of the cores (one thread each for two on two cores); a long sum
    # split among two threads rounds differently, so the fit runs its sums on one (the error model of 05)
    g = torch.Generator().manual_seed(3)
    dot = torch.randn(2000, 64, generator=g, dtype=torch.float64) * 50
    err = 0.01 * dot[None] + torch.randn(4, 2000, 64, generator=g, dtype=torch.float64) * 3
    load = torch.rand(2000, 1, generator=g, dtype=torch.float64).expand_as(dot)
    old = torch.get_num_threads()
    fits = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            fits.append(noise_aware._fit_error(err, dot, load))
    finally:
        torch.set_num_threads(old)
    (g1, s1), (g2, s2) = fits
    assert g1 == g2 and torch.equal(s1, s2)
