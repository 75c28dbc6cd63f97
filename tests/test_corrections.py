"""ibnn.analysis corrections: on an ideal chip every correction changes nothing; on a chip with static offsets the
bias-row rewrite recovers them within the reachable sums; per-chip readout retraining reproduces the software
accuracy on an ideal chip and repairs a chip whose columns are inverted; every calibration refuses test images;
a retrained readout scored on a kept run equals a rerun; the training pools are disjoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FakeFolded, IntegerChip, OffsetChip, make_folded, random_codes

from ibnn import params
from ibnn.analysis import calibration, corrections, evaluation, experiment, readout
from ibnn.mapping import map_network
from ibnn.nn.folded import DigitalReadout

P = params.load()


def digital_net(seed=0, hidden=48, label_noise=0.1, n=4000):
    """A one-layer network 81 -> hidden with a random digital readout, and data labelled by the network itself
    with `label_noise` of the labels replaced at random (so the software accuracy is about 1 - label_noise)."""
    base = make_folded(sizes=(81, hidden), seed=seed, theta_scale=0.1)
    g = torch.Generator().manual_seed(seed + 100)
    ro = DigitalReadout(torch.randint(0, 2, (hidden, 10), generator=g) * 2 - 1, torch.zeros(10))
    net = FakeFolded(base.layers, ro, {"size": 9, "bits": 5, "readout_kind": "digital", "n_classes": 10})
    codes = random_codes(n, seed=seed + 7)
    labels = ro.predict(net.hidden(codes)[-1])
    noisy = torch.rand(n, generator=g) < label_noise
    return net, codes, torch.where(noisy, torch.randint(0, 10, (n,), generator=g), labels)


class InvertingChip(IntegerChip):
    """Ideal, except that the comparators of `cols` give the inverted decision (a gross per-chip column fault)."""

    def __init__(self, n_chips, cols):
        super().__init__(n_chips)
        self.cols = cols

    def evaluate(self, codes, theta=None, noise_seed=None, *, dv=False, drops=False):
        out = super().evaluate(codes, theta, noise_seed, dv=dv, drops=drops)
        out.decisions[..., self.cols] = -out.decisions[..., self.cols]
        return out


def test_reachable_bias_patterns_are_the_mapping_s():
    m = map_network(make_folded(seed=3), P)
    for L in m.layers:
        sums, pats = corrections.reachable_bias(L)
        assert torch.all(sums[1:] > sums[:-1])
        assert int(sums[-1]) == int(L.bias_codes.sum()) and int(sums[0]) == -int(L.bias_codes.sum())
        assert torch.equal((pats.long() * L.bias_codes[None]).sum(1), sums)
        idx = torch.searchsorted(sums, L.bias_sum)
        assert torch.equal(pats[idx], m.weights[L.bias_rows[:, None], L.cols[None, :]].T)


def test_every_correction_changes_nothing_on_an_ideal_chip():
    m = map_network(make_folded(seed=4), P)
    chip = IntegerChip(2)
    cal, test = random_codes(300, seed=5), random_codes(1000, seed=6)
    ref = m.reference(test).labels
    for corr in (corrections.calibrate_bias_rows(m, chip, cal, "train"),
                 corrections.calibrate_trim(m, chip, cal, "train")):
        assert corr.weights is None
        assert torch.equal(corr.theta, m.theta[None].expand_as(corr.theta))
        assert torch.equal(calibration.run_corrected(m, chip, test, corr).labels, ref[None].expand(2, -1))
        assert all(L["mismatch_before"] == L["mismatch_after"] == 0 for L in corr.info["layers"])


def test_bias_rewrite_recovers_static_offsets_within_its_range():
    net = make_folded(seed=21, sizes=(81, 60, 40))
    m = map_network(net, P)
    chip = OffsetChip(n_chips=2, sigma=12.0, seed=1)
    cal, test = random_codes(300, seed=30), random_codes(1000, seed=31)
    soft = net.predict(test)
    corr = corrections.calibrate_bias_rows(m, chip, cal, "train")
    L0 = m.layers[0]
    sums, _ = corrections.reachable_bias(L0)
    w = corr.weights[:, L0.bias_rows][:, :, L0.cols].long()
    rewritten = (w * L0.bias_codes[None, :, None]).sum(1)                 # (n_chips, fan_out) bias sums
    assert torch.isin(rewritten, sums).all()                             # quantised to the reachable sums
    inside = (rewritten > sums[0]) & (rewritten < sums[-1])
    err = (rewritten - L0.bias_sum[None] + chip.offset[:, L0.cols]).abs()[inside]   # dot + B + offset >= theta
    assert float(err.median()) <= 2.0
    assert torch.equal(corr.theta, m.theta[None].expand_as(corr.theta))  # the comparator reference is untouched
    naive = (m.run(chip, test).labels == soft[None]).double().mean()
    fixed = (calibration.run_corrected(m, chip, test, corr).labels == soft[None]).double().mean()
    assert fixed > naive + 0.1 and fixed > 0.9
    assert corr.info["layers"][0]["mismatch_after"] < corr.info["layers"][0]["mismatch_before"]


def test_readout_retraining_on_an_ideal_chip_reproduces_the_software_accuracy():
    net, codes, labels = digital_net(seed=1)
    m = map_network(net, P)
    chip = IntegerChip(2)
    tr, va, te = slice(0, 2500), slice(2500, 3000), slice(3000, 4000)
    corr = readout.readout_retraining(m, chip, codes[tr], labels[tr], "train", val_codes=codes[va],
                                      val_labels=labels[va])
    soft = float((net.predict(codes[te]) == labels[te]).double().mean())
    acc = calibration.correct_matrix(m, chip, codes[te], labels[te], corr).double().mean(1)
    assert torch.all((acc - soft).abs() <= 0.01)


def test_readout_retraining_repairs_inverted_columns_and_is_batch_independent():
    net, codes, labels = digital_net(seed=2)
    m = map_network(net, P)
    chip = InvertingChip(3, cols=torch.arange(0, 8))
    tr, te = slice(0, 3000), slice(3000, 4000)
    soft = float((net.predict(codes[te]) == labels[te]).double().mean())
    naive = float(calibration.correct_matrix(m, chip, codes[te], labels[te]).double().mean())
    kw = dict(epochs=30, latent=0.25, lr=3e-2, bias_lr=0.3)
    corr = readout.readout_retraining(m, chip, codes[tr], labels[tr], "train", **kw)
    fixed = calibration.correct_matrix(m, chip, codes[te], labels[te], corr).double().mean(1)
    assert naive < soft - 0.2
    assert torch.all(fixed > naive + 0.3), (naive, soft, fixed)     # most of the repair (not the exact one)
    h = readout.chip_hidden(m, chip, codes[tr], "train")
    one, _ = readout.retrain_readout(h[1:2], labels[tr], m.readout, **kw)
    assert torch.equal(one.weight[0], corr.readout.weight[1]) and torch.equal(one.bias[0], corr.readout.bias[1])
    assert torch.equal(corr.readout.for_chip(1).predict(h[1].to(torch.int64)), corr.readout.predict(h)[1])


def test_a_retrained_readout_scored_on_a_kept_run_equals_a_rerun():
    net, codes, labels = digital_net(seed=5, n=2000)
    m = map_network(net, P)
    chip = OffsetChip(n_chips=2, sigma=8.0, noise=2.0, seed=3)
    bed = evaluation.TestBed.of(net, codes[1500:], labels[1500:])
    base = experiment.naive(m, chip, bed, noise_seed=4)
    pools = experiment.Pools(codes[:200], codes[200:1200], labels[200:1200], codes[1200:1500], labels[1200:1500])
    ro = experiment.readout_retrained(m, chip, bed, base, pools, 1000, epochs=3)
    rerun = calibration.correct_matrix(m, chip, bed.codes, bed.labels, ro.correction, noise_seed=4)
    assert torch.equal(ro.correct, rerun)
    assert ro.correction.cycles == len(m.layers) * (1000 + 300)


def test_every_calibration_refuses_test_images():
    net, codes, labels = digital_net(seed=3, n=600)
    m = map_network(net, P)
    chip = IntegerChip(1)
    calls = [lambda: corrections.calibrate_bias_rows(m, chip, codes[:100], "test"),
             lambda: corrections.calibrate_trim(m, chip, codes[:100], "test"),
             lambda: readout.readout_retraining(m, chip, codes[:100], labels[:100], "test"),
             lambda: corrections.calibrate_bias_rows(m, chip, codes[:100], "train", test_codes=codes)]
    for call in calls:
        with pytest.raises(ValueError, match="test"):
            call()


def test_training_pools_are_disjoint_and_from_the_training_indices():
    g = np.random.default_rng(0)
    images = g.integers(0, 256, (400, 28, 28), dtype=np.uint8)
    labels = g.integers(0, 10, 400)
    train_idx = np.arange(100, 400)
    pools = experiment.training_pools(images, labels, train_idx, 9, 5, 50, 100, 30, seed=0)
    assert pools.cal.shape[0] == 50 and pools.readout.shape[0] == 100 and pools.holdout.shape[0] == 30
    again = experiment.training_pools(images, labels, train_idx, 9, 5, 50, 100, 30, seed=0)
    assert torch.equal(pools.cal, again.cal) and torch.equal(pools.readout_labels, again.readout_labels)
    keys = [{bytes(r.numpy().tobytes()) for r in x} for x in (pools.cal, pools.readout, pools.holdout)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    with pytest.raises(ValueError, match="n_readout"):
        experiment.training_pools(images, labels, train_idx, 9, 5, 50, 300, 30, seed=0)
