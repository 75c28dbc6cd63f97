"""ibnn.nn (binary, folded, train, checkpoint): binary semantics, STE, exact folding (incl. negative gamma and
ties), determinism, checkpoints, validation. Small synthetic data only, except the check of the committed
checkpoint on real MNIST."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ibnn import data
from ibnn import nn as C
from ibnn.nn import binary
from ibnn.repro import io


def train(x, y, *val, seed=0, preact_noise=None, recalibrate=True, **recipe):
    """train_bnn with the recipe fields as keywords (hidden, readout, bits, epochs, batch_size, lr)."""
    if "hidden" in recipe:
        recipe["hidden"] = tuple(recipe["hidden"])
    return C.train_bnn(x, y, *val, recipe=C.Recipe(**recipe), seed=seed, preact_noise=preact_noise,
                       recalibrate=recalibrate)


def usage(hidden, readout, bias_rows=8):
    return C.array_usage(hidden, readout, n_in=81, bias_rows=bias_rows, rows=128, cols=128)

CKPT = io.REPO_ROOT / "results" / "checkpoints" / "bnn.pt"
REAL_CACHE = io.REPO_ROOT / ".cache" / "mnist" / "mnist_test.npz"

@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are tiny: one thread is fastest and does not fight other processes for the CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


META = {"size": 3, "bits": 5, "seed": 0, "data_checksums": dict(data.DATA_CHECKSUMS)}


def toy_data(n=600, n_in=9, bits=5, seed=0):
    """Codes with a learnable class structure: the class sets which inputs are bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    proto = rng.integers(0, 2 ** bits, (10, n_in))
    x = np.clip(proto[y] + rng.integers(-4, 5, (n, n_in)), 0, 2 ** bits - 1).astype(np.uint8)
    return x, y.astype(np.uint8)


def randomize_bn(model, seed=0, integer_t=False):
    """Random BN statistics with mixed-sign gains (one zero gain with each sign of beta in the first layer)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for li, layer in enumerate(model.layers):
            bn, n = layer.bn, layer.fan_out
            z_scale = layer.fan_in * layer.max_input / 4
            bn.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * z_scale)
            bn.running_var.copy_(torch.rand(n, generator=g) * z_scale ** 2 / 4 + 1)
            bn.weight.copy_(torch.randn(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g))
            if integer_t:  # t = mu exactly on an integer: ties at z == t
                bn.running_mean.copy_(bn.running_mean.round())
                bn.bias.zero_()
            if li == 0 and n >= 2:
                bn.weight[0] = 0.0
                bn.weight[1] = 0.0
                bn.bias[0] = 0.5
                bn.bias[1] = -0.5
    return model


def random_codes(n, n_in, bits=5, seed=1):
    return torch.randint(0, 2 ** bits, (n, n_in), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ primitives

def test_sign_tie_rule():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0])
    assert binary.binarize(x).tolist() == [-1, 1, 1, 1, -1, 1]


def test_ste_is_clipped_identity():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0001, 3.0], requires_grad=True)
    y = binary.sign_ste(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1]
    g = torch.arange(1.0, 9.0)
    y.backward(g)
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0, 0]


def test_eval_decision_equals_bn_then_sign():
    """The exact threshold form used in eval mode agrees with BN(z) >= 0 computed directly in float64."""
    model = randomize_bn(C.BNN([12], "digital", n_in=9), seed=3).eval()
    layer = model.layers[0]
    codes = random_codes(500, 9).double()
    z = codes @ layer.binary_weight().double()
    bn = layer.bn
    y = (z - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps) * bn.weight.double() \
        + bn.bias.double()
    expect = torch.where(y >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(layer(codes).numpy(), expect.numpy())


# ------------------------------------------------------------------------------------------------ folding

@pytest.mark.parametrize("hidden,readout,integer_t", [([16, 8], "digital", False), ([16, 8], "digital", True),
                                                      ([12, 20], "vote", False), ([30], "vote", True)])
def test_folded_equals_model(hidden, readout, integer_t):
    torch.manual_seed(0)
    model = randomize_bn(C.BNN(hidden, readout, n_in=9), seed=1, integer_t=integer_t).eval()
    if readout == "digital":
        with torch.no_grad():
            model.head.bias.copy_(torch.randn(10) * 3)
    folded = C.fold(model)
    codes = random_codes(2000, 9)
    assert any(bool((l.bn.weight < 0).any()) for l in model.layers)
    # layer by layer
    x = codes.double()
    for layer, fl in zip(model.layers, folded.hidden(codes)):
        x = layer(x)
        np.testing.assert_array_equal(x.numpy().astype(np.int8), fl.numpy())
    np.testing.assert_array_equal(model.predict(codes).numpy(), folded.predict(codes).numpy())
    for fl in folded.layers:
        assert fl.weight.dtype == torch.int8 and fl.theta.dtype == torch.int64
        assert set(fl.weight.unique().tolist()) <= {-1, 1}


def test_fold_ties_and_negative_gamma():
    """z == t gives +1 for either sign of gamma; a negative gamma flips weights and threshold."""
    model = C.BNN([2], "vote" if False else "digital", n_in=2, bits=5).eval()
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))  # W_b = +1: z = x0 + x1
        bn = model.layers[0].bn
        bn.running_mean.copy_(torch.tensor([10.0, 10.0]))
        bn.running_var.copy_(torch.tensor([4.0, 4.0]) - bn.eps)  # sd = 2 exactly
        bn.weight.copy_(torch.tensor([1.0, -1.0]))
        bn.bias.copy_(torch.tensor([-0.5, -0.5]))                # t = 10 + 1 = 11 (gamma>0), 10 - 1 = 9 (gamma<0)
    folded = C.fold(model)
    fl = folded.layers[0]
    assert fl.theta.tolist() == [11, -9]
    assert fl.weight[:, 0].tolist() == [1, 1] and fl.weight[:, 1].tolist() == [-1, -1]
    codes = torch.tensor([[5, 5], [5, 6], [6, 6], [4, 4], [4, 5], [0, 0]])  # z = 10, 11, 12, 8, 9, 0
    out = fl(codes)
    assert out[:, 0].tolist() == [-1, 1, 1, -1, -1, -1]  # z >= 11
    assert out[:, 1].tolist() == [-1, -1, -1, 1, 1, 1]   # z <= 9
    np.testing.assert_array_equal(model.layers[0](codes.double()).numpy().astype(np.int8), out.numpy())


def test_fold_non_integer_threshold_uses_ceil():
    model = C.BNN([1], "digital", n_in=1, bits=5).eval()
    with torch.no_grad():
        model.layers[0].weight.fill_(0.3)
        bn = model.layers[0].bn
        bn.running_mean.fill_(7.25)
        bn.running_var.fill_(1.0 - bn.eps)
        bn.bias.fill_(0.0)
    assert C.fold(model).layers[0].theta.tolist() == [8]   # z >= 7.25  <=>  z >= 8
    with torch.no_grad():
        bn.weight.fill_(-1.0)
    fl = C.fold(model).layers[0]
    assert fl.theta.tolist() == [-7] and fl.weight.tolist() == [[-1]]  # z <= 7.25  <=>  -z >= -7


def test_folded_layer_validation():
    with pytest.raises(ValueError, match=r"\+-1"):
        C.FoldedLayer(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="theta"):
        C.FoldedLayer(torch.ones(3, 2), torch.zeros(3))


def test_digital_readout_ties_take_first_index():
    ro = C.DigitalReadout(torch.ones(4, 3), torch.tensor([0, 0, 0]))
    assert ro.predict(torch.ones(2, 4)).tolist() == [0, 0]
    ro = C.DigitalReadout(torch.ones(4, 3), torch.tensor([0, 2, 2]))
    assert ro.predict(torch.ones(1, 4)).tolist() == [1]


def test_digital_readout_predicts_in_row_chunks_as_in_one(monkeypatch):
    """predict takes DOT_ROWS rows at a time (several chunks and a ragged last one here): the labels of the
    integer scores of all rows at once, ties to the first index included."""
    from ibnn.nn import folded
    monkeypatch.setattr(folded, "DOT_ROWS", 7)
    g = torch.Generator().manual_seed(1)
    w = torch.randint(0, 2, (16, 10), generator=g).to(torch.int8) * 2 - 1
    a = torch.randint(0, 2, (52, 16), generator=g).to(torch.int8) * 2 - 1
    bias = torch.randint(-3, 4, (10,), generator=g)
    want = torch.argmax(a.to(torch.int64) @ w.to(torch.int64) + bias, dim=1)
    got = C.DigitalReadout(w, bias).predict(a)
    assert got.dtype == torch.int64 and torch.equal(got, want)
    assert C.DigitalReadout(w, bias).predict(a[:0]).shape == (0,)


def test_exact_dot_is_the_integer_product_on_both_routes(monkeypatch):
    """float32 where every partial sum is an integer <= 2**24 (chunked over rows), float64 beyond that bound."""
    from ibnn.nn import folded
    monkeypatch.setattr(folded, "DOT_ROWS", 7)                          # several chunks and a ragged last one
    g = torch.Generator().manual_seed(0)
    w = torch.randint(0, 2, (128, 10), generator=g).to(torch.int8) * 2 - 1
    cases = [torch.randint(-128, 128, (50, 128), generator=g).to(torch.int8),       # the float32 route at its bound
             torch.randint(0, 256, (50, 128), generator=g).to(torch.uint8),
             torch.randint(-3, 4, (2, 25, 128), generator=g),                         # int64, leading batch axes
             torch.randint(2 ** 20, 2 ** 21, (50, 128), generator=g) + 1]            # beyond 2**24: float64
    near = torch.ones(3, 1024, dtype=torch.int16)        # an odd sum beyond 2**24 made of -2**15s, whose abs()
    near[:, :600], near[:, 600] = -2 ** 15, 0            # overflows in int16 (it would take the float32 route)
    for x, wx in [(x, w) for x in cases] + [(near, torch.ones(1024, 10, dtype=torch.int8))]:
        want = (x.to(torch.int64).reshape(-1, x.shape[-1]) @ wx.to(torch.int64)).reshape(*x.shape[:-1], 10)
        got = folded.exact_dot(x, wx)
        assert got.dtype == torch.int64 and torch.equal(got, want)
    big = cases[3]                       # float32 would round these sums (odd integers above 2**24): the bound matters
    assert not torch.equal((big.float() @ w.float()).to(torch.int64), big @ w.to(torch.int64))
    assert torch.equal(C.DigitalReadout(w, torch.arange(10)).scores(cases[0]),
                       cases[0].to(torch.int64) @ w.to(torch.int64) + torch.arange(10))


def test_vote_readout_counts():
    ro = C.VoteReadout(votes=3, n_classes=2)
    a = torch.tensor([[1, -1, -1, 1, 1, -1], [1, 1, 1, -1, -1, -1], [1, -1, 1, 1, 1, -1]])
    assert ro.scores(a).tolist() == [[1, 2], [3, 0], [2, 2]]
    assert ro.predict(a).tolist() == [1, 0, 0]


# ------------------------------------------------------------------------------------------------ training

def test_training_is_deterministic_and_learns():
    x, y = toy_data()
    kw = dict(hidden=[24], epochs=3, batch_size=100, lr=1e-2)
    a = train(x, y, x[:100], y[:100], seed=5, **kw)
    b = train(x, y, seed=5, **kw)
    c = train(x, y, seed=6, **kw)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert C.accuracy(a.model, x, y) > 0.5            # well above chance (0.1) on a learnable toy task
    assert len(a.history["val_acc"]) == 3 and "val_acc" not in b.history
    folded = C.fold(a.model)
    np.testing.assert_array_equal(a.model.predict(x).numpy(), folded.predict(x).numpy())


def test_preact_noise_hook_training_only():
    x, y = toy_data(200)
    calls = []

    def noise(i, z):
        calls.append((i, tuple(z.shape)))
        assert z.requires_grad
        return z + 0.0

    r = train(x, y, hidden=[10, 20], readout="vote", epochs=1, batch_size=100, seed=0, preact_noise=noise)
    assert calls == [(0, (100, 10)), (1, (100, 20))] * 2
    n = len(calls)
    r.model.predict(x)
    assert len(calls) == n                                  # not applied in eval
    quiet = train(x, y, hidden=[10, 20], readout="vote", epochs=1, batch_size=100, seed=0)
    loud = train(x, y, hidden=[10, 20], readout="vote", epochs=1, batch_size=100, seed=0,
                       preact_noise=lambda i, z: z + 1e3 * torch.randn_like(z))
    assert not torch.equal(quiet.model.layers[0].weight, loud.model.layers[0].weight)


@pytest.mark.parametrize("kw,pattern", [({"epochs": 0}, r"epochs=0"), ({"seed": 1.5}, r"seed=1.5"),
                                        ({"bits": 9}, r"bits=9"), ({"readout": "softmax"}, r"readout='softmax'"),
                                        ({"lr": -1.0}, r"lr=-1.0"), ({"preact_noise": 3}, "preact_noise"),
                                        ({"hidden": [25], "readout": "vote"}, r"multiple of n_classes")])
def test_train_validation(kw, pattern):
    x, y = toy_data(20)
    with pytest.raises(ValueError, match=pattern):
        train(x, y, **{"hidden": [10], **kw})


def test_codes_out_of_range():
    x, y = toy_data(20)
    with pytest.raises(ValueError, match=r"codes span 0\.\.31.*0\.\.15 for bits=4"):
        train(x, y, hidden=[10], bits=4)


def test_array_usage():
    for hidden, readout in (([128], "digital"), ([64, 64], "digital"), ([88, 40], "vote")):
        u = usage(hidden, readout)
        assert u["fits"] and u["columns"] == 128
    u = usage([88, 40], "vote")
    assert u["rows"] == 88 + 8 and u["digital"]["votes_per_class"] == 4
    assert not usage([129], "digital")["fits"]
    assert not usage([64, 125, 10], "vote", bias_rows=4)["fits"]   # rows: 125 + 4 > 128


# ------------------------------------------------------------------------------------------------ checkpoints

def small_trained():
    x, y = toy_data(300)
    return train(x, y, hidden=[16], epochs=1, batch_size=100, seed=0).model, x


def test_checkpoint_round_trip(tmp_path):
    model, x = small_trained()
    path = C.save_checkpoint(tmp_path / "m.pt", model, META)
    folded = C.load_checkpoint(path, expect={"topology": [9, 16, 10], "readout": "digital", "seed": 0,
                                             "data_checksums": data.DATA_CHECKSUMS})
    np.testing.assert_array_equal(folded.predict(x).numpy(), model.predict(x).numpy())
    assert folded.meta["bits"] == 5 and folded.meta["size"] == 3
    again = C.load_trained(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    # a folded-only checkpoint
    p2 = C.save_checkpoint(tmp_path / "f.pt", folded)
    np.testing.assert_array_equal(C.load_checkpoint(p2).predict(x).numpy(), folded.predict(x).numpy())
    with pytest.raises(ValueError, match="no trained state"):
        C.load_trained(p2)


def test_checkpoint_mismatch_names_field(tmp_path):
    model, _ = small_trained()
    path = C.save_checkpoint(tmp_path / "m.pt", model, META)
    with pytest.raises(ValueError, match=r"field 'bits' expected 4, found 5"):
        C.load_checkpoint(path, expect={"bits": 4})
    with pytest.raises(ValueError, match=r"field 'topology' expected \[9, 8, 10\], found \[9, 16, 10\]"):
        C.load_checkpoint(path, expect={"topology": (9, 8, 10)})
    with pytest.raises(ValueError, match=r"field 'owner'.*found nothing"):
        C.load_checkpoint(path, expect={"owner": "x"})


def test_checkpoint_requires_meta_and_is_atomic(tmp_path):
    model, _ = small_trained()
    with pytest.raises(ValueError, match=r"lacks \['size', 'seed', 'data_checksums'\]"):
        C.save_checkpoint(tmp_path / "m.pt", model, {"bits": 5})
    assert list(tmp_path.iterdir()) == []                   # nothing half-written left behind
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an ibnn BNN checkpoint"):
        C.load_checkpoint(tmp_path / "other.pt")


@pytest.mark.skipif(not (CKPT.is_file() and REAL_CACHE.is_file()),
                    reason="needs results/checkpoints/bnn.pt (notebook 03) and MNIST in .cache/mnist")
def test_committed_checkpoint_folded_equals_trained_on_mnist_test(monkeypatch):
    monkeypatch.setenv("IBNN_CACHE_DIR", str(io.REPO_ROOT / ".cache"))
    monkeypatch.delenv("IBNN_MNIST_DIR", raising=False)
    folded = C.load_checkpoint(CKPT, expect={"data_checksums": data.DATA_CHECKSUMS})
    model = C.load_trained(CKPT)
    imgs, labels = data.load_mnist("test")
    codes = data.features(imgs, size=folded.meta["size"], bits=folded.meta["bits"])
    pred = folded.predict(codes)
    np.testing.assert_array_equal(pred.numpy(), model.predict(codes).numpy())
    assert usage(folded.meta["on_array"], folded.meta["readout"])["fits"]


def test_recalibrate_bn_matches_data_statistics():
    x, y = toy_data(500)
    model = train(x, y, hidden=[12], epochs=1, batch_size=100, seed=0, recalibrate=False).model
    C.recalibrate_bn(model, x, batch_size=100)
    z = torch.as_tensor(x).double() @ model.layers[0].binary_weight().double()
    bn = model.layers[0].bn
    np.testing.assert_allclose(bn.running_mean.double().numpy(), z.mean(0).numpy(), rtol=1e-5, atol=1e-3)
    # per-batch unbiased variances averaged: close to the overall variance for equal, shuffled batches
    np.testing.assert_allclose(bn.running_var.double().numpy(), z.var(0).numpy(), rtol=0.2)
    assert bn.momentum == 0.1 and not model.training


def test_soft_targets_accepted():
    x, y = toy_data(400)
    onehot = np.eye(10, dtype=np.float32)[y]
    r = train(x, 0.9 * onehot + 0.01, hidden=[24], epochs=3, batch_size=64, seed=0)
    assert C.accuracy(r.model, x, y) > 0.5
