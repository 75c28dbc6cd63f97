"""ibnn.mapping: placement, threshold realisation, exactness on an ideal array, bad input."""
from __future__ import annotations

import pytest
import torch
from conftest import FakeLayer, FakeVote, IntegerChip, make_folded, random_codes

from ibnn import params
from ibnn.mapping import map_network

P = params.load()

# --------------------------------------------------------------------------------------------------------------
def test_placement_disjoint_columns_and_defined_cells():
    net = make_folded()
    m = map_network(net, P)
    cols = torch.cat([L.cols for L in m.layers])
    assert cols.unique().numel() == cols.numel() == 88
    assert set(m.weights.unique().tolist()) <= {-1, 1}
    for L in m.layers:
        # data and bias rows of a layer never collide
        assert not set(L.data_rows.tolist()) & set(L.bias_rows.tolist())
        live = L.constant == 0
        assert m.weights[L.data_rows[:, None], L.cols[live][None, :]].equal(net.layers[L.index].weight[:, live])
        assert float(L.theta_ref.abs().max()) <= m.theta_max
    role = m.role_map()
    assert role.shape == (128, 128)
    assert (role[:, 88:] == 0).all()


def test_layer_codes_drive_only_the_layer_rows():
    net = make_folded()
    m = map_network(net, P)
    codes = random_codes(4).to(torch.int64)
    wl0 = m.layer_codes(0, codes)
    L0 = m.layers[0]
    others = torch.ones(128, dtype=torch.bool)
    others[L0.rows] = False
    assert (wl0[:, others] == 0).all()
    assert (wl0[:, L0.bias_rows] == L0.bias_codes[None]).all()
    assert L0.bias_codes[:6].tolist() == [16, 8, 4, 2, 1, 1]
    a = torch.tensor([[1, -1] * 24], dtype=torch.int8)
    wl1 = m.layer_codes(1, a)
    c_h = m.layers[1].input_code
    assert 1 <= c_h <= 31 and wl1[0, :48].tolist() == [c_h, 0] * 24
    full = map_network(net, P, hidden_code=None)
    assert full.layers[1].input_code == 31
    assert full.layer_codes(1, a)[0, :48].tolist() == [31, 0] * 24


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_equals_software_exactly(seed):
    net = make_folded(seed=seed, theta_scale=1.5)
    m = map_network(net, P)
    codes = random_codes(3000, seed=seed + 10)
    ref = m.reference(codes, layers=True)
    labels, acts = ref.labels, ref.activations
    soft = net.hidden(codes)
    for a, s in zip(acts, soft):
        assert torch.equal(a, s)
    assert torch.equal(labels, net.predict(codes))


def test_a_layers_columns_are_a_view_where_they_are_one_run():
    from ibnn.mapping.execute import _columns
    t = torch.arange(2 * 3 * 10).reshape(2, 3, 10)
    for cols in (torch.arange(10), torch.arange(4, 9), torch.tensor([1, 3, 2]), torch.tensor([5, 6, 8])):
        got = _columns(t, cols)
        assert torch.equal(got, t[..., cols])
        assert (got.data_ptr() - t.data_ptr() == 8 * int(cols[0])) == bool((cols.diff() == 1).all())   # view


def test_run_on_integer_chip_equals_software_exactly():
    net = make_folded(seed=3)
    m = map_network(net, P)
    codes = random_codes(500, seed=4)
    chip = IntegerChip(n_chips=3)
    res = m.run(chip, codes, layers=True, dv=True, batch=128)
    labels, acts, dvs = res.labels, res.activations, res.dv
    assert labels.shape == (3, 500)
    soft = net.predict(codes)
    assert (labels == soft[None]).all()
    assert dvs[0].shape == (3, 500, 48) and dvs[1].shape == (3, 500, 40)
    for a, s in zip(acts, net.hidden(codes)):
        assert (a == s[None]).all()


def test_saturated_thresholds_keep_the_function():
    net = make_folded(seed=5)
    # push some thresholds far outside what the inputs can reach
    net.layers[0].theta[:3] = torch.tensor([10 ** 6, -10 ** 6, 3000])
    net.layers[1].theta[:2] = torch.tensor([500, -500])
    m = map_network(net, P)
    assert m.layers[0].n_saturated >= 3 and m.layers[1].n_saturated >= 2
    assert m.layers[0].constant[:3].tolist() == [-1, 1, -1]
    codes = random_codes(1000, seed=6)
    ref = m.reference(codes, layers=True)
    labels, acts = ref.labels, ref.activations
    assert torch.equal(labels, net.predict(codes))
    assert (acts[0][:, 0] == -1).all() and (acts[0][:, 1] == 1).all()
    # constant columns are realised with margin: all-zero input gives a clear decision
    zero = torch.zeros(1, 81, dtype=torch.int64)
    wl = m.layer_codes(0, zero).to(torch.int64)
    tot = (wl @ m.weights.to(torch.int64))[0, m.layers[0].cols[:2]]
    assert tot[0] < -30 and tot[1] > 30
    m.check_compatible(net)


def test_auto_hidden_code_keeps_line_load_within_budget():
    net = make_folded(sizes=(81, 88, 40), seed=14)
    m = map_network(net, P, line_budget_lsb=300)
    L = m.layers[1]
    w = net.layers[1].weight
    group = int(torch.maximum((w > 0).sum(0), (w < 0).sum(0)).max())
    assert L.input_code * group / 2 <= 300 < (L.input_code + 1) * group / 2
    codes = random_codes(800, seed=15)
    assert torch.equal(m.reference(codes).labels, net.predict(codes))


def test_hidden_threshold_sits_halfway_between_levels():
    net = make_folded(seed=7)
    m = map_network(net, P, hidden_code=None)
    L = m.layers[1]
    # T' = 31 k - 15.5: 15.5 LSB margin on either side of every reachable dot product (multiples of 31)
    assert torch.equal(torch.remainder(L.threshold + 15.5, 31), torch.zeros_like(L.threshold))
    for code in (7, 12):
        mc = map_network(net, P, hidden_code=code)
        T = mc.layers[1].threshold
        assert torch.equal(torch.remainder(T + code / 2, code), torch.zeros_like(T))
        assert torch.equal(mc.reference(random_codes(300)).labels, net.predict(random_codes(300)))
    # layer 0: integer dot products, threshold halfway between two integers
    assert torch.equal(torch.remainder(m.layers[0].threshold, 1), torch.full_like(m.layers[0].threshold, 0.5))


def test_bias_rows_realise_threshold_with_small_trim():
    net = make_folded(seed=8, theta_scale=2.0)
    m = map_network(net, P)
    L = m.layers[0]
    assert L.bias_rows.numel() > 0
    B = (m.weights[L.bias_rows[:, None], L.cols[None, :]].to(torch.int64) * L.bias_codes[:, None]).sum(0)
    assert torch.equal(B, L.bias_sum)
    assert torch.allclose(L.theta_ref - B.to(torch.float64), L.threshold)
    # fine bias rows leave the comparator with at most 1.5 LSB (0.5 where the parity allows)
    assert float(L.theta_ref.abs().max()) <= 1.5
    # without fine rows the coarse rows leave up to one full-scale row (31 LSB)
    m2 = map_network(net, P, fine_bias=False)
    assert 1.5 < float(m2.layers[0].theta_ref.abs().max()) <= 31
    assert torch.equal(m2.reference(random_codes(500)).labels, net.predict(random_codes(500)))


def test_theta_only_mapping_needs_no_bias_rows():
    net = make_folded(seed=9)
    m = map_network(net, P, bias_rows=0, fine_bias=False, theta_max=1e9)
    assert all(L.bias_rows.numel() == 0 for L in m.layers)
    codes = random_codes(800, seed=2)
    assert torch.equal(m.reference(codes).labels, net.predict(codes))


# --- bad input --------------------------------------------------------------------------------------------------
def test_too_many_columns_says_by_how_much():
    net = make_folded(sizes=(81, 100, 40))
    with pytest.raises(ValueError, match="12 columns over"):
        map_network(net, P)


def test_too_many_rows_says_by_how_much():
    net = make_folded(sizes=(81, 30, 20))
    net.layers[0] = FakeLayer(torch.ones(130, 30, dtype=torch.int8), torch.zeros(30, dtype=torch.int64))
    net.layers[1] = FakeLayer(torch.ones(30, 20, dtype=torch.int8), torch.zeros(20, dtype=torch.int64))
    net.readout = FakeVote(10, 2)
    net.meta = {"bits": 5}
    with pytest.raises(ValueError, match="2 rows over"):
        map_network(net, P)


def test_unreachable_threshold_error_and_clip():
    net = make_folded(seed=11)
    net.layers[0].theta[0] = 1200  # reachable by inputs, but needs ~38 bias rows
    with pytest.raises(ValueError, match="out of reach"):
        map_network(net, P, bias_rows=4)
    m = map_network(net, P, bias_rows=4, on_unreachable="clip")
    assert m.layers[0].theta_ref.abs().max() <= m.theta_max
    assert m.layers[0].n_clipped >= 1


def test_topology_and_feature_mismatch():
    net = make_folded()
    with pytest.raises(ValueError, match="size"):
        map_network(net, P, expect={"size": 7})
    net2 = make_folded()
    net2.meta = {"size": 7, "bits": 5}
    with pytest.raises(ValueError, match="fan_in=81"):
        map_network(net2, P)
    m = map_network(make_folded(seed=0), P)
    with pytest.raises(ValueError, match="weight shape"):
        m.check_compatible(make_folded(sizes=(81, 40, 40)))
    with pytest.raises(ValueError, match="weights differ"):
        m.check_compatible(make_folded(seed=1))
    m.check_compatible(make_folded(seed=0))
    bad = make_folded()
    bad.layers[1] = FakeLayer(torch.ones(47, 40, dtype=torch.int8), torch.zeros(40, dtype=torch.int64))
    with pytest.raises(ValueError, match="does not equal"):
        map_network(bad, P)


def test_bad_codes_and_chips():
    m = map_network(make_folded(), P)
    chip = IntegerChip(2)
    with pytest.raises(ValueError, match="codes shape"):
        m.run(chip, torch.zeros(5, 80, dtype=torch.uint8))
    with pytest.raises(ValueError, match="out of range"):
        m.run(chip, torch.full((5, 81), 32, dtype=torch.int64))
    with pytest.raises(ValueError, match="dtype"):
        m.run(chip, torch.zeros(5, 81))
    with pytest.raises(ValueError, match="n_chips"):
        m.run(IntegerChip(0), torch.zeros(5, 81, dtype=torch.uint8))
    with pytest.raises(ValueError, match="theta shape"):
        m.run(chip, torch.zeros(5, 81, dtype=torch.uint8), theta=torch.zeros(3, 128))


# --- the real circuit model and checkpoint, when present ---------------------------------------------------------
def _real_chip(n_chips=2):
    chipmod = pytest.importorskip("ibnn.circuit.chip")
    return chipmod.Chip(P, n_chips=n_chips, seed=0, nonideal=chipmod.Nonidealities.ideal())


def test_ideal_real_chip_equals_software_on_synthetic_network():
    chip = _real_chip(2)
    net = make_folded(seed=12)
    m = map_network(net, P)
    codes = random_codes(400, seed=13)
    labels = m.run(chip, codes).labels
    assert (labels == net.predict(codes)[None]).all()


def _checkpoint_path():
    from ibnn.repro import io
    for name in ("bnn.pt", "bnn_fast.pt"):             # the output root's, else the committed record's
        if io.input_path(f"results/checkpoints/{name}").exists():
            return io.input_path(f"results/checkpoints/{name}")
    d = io.input_path("results/checkpoints")
    found = sorted(d.glob("bnn*.pt")) if d.exists() else []
    return found[0] if found else None


def test_ideal_chip_equals_trained_bnn_on_all_test_images():
    path = _checkpoint_path()
    if path is None:
        pytest.skip("no trained checkpoint in results/checkpoints (run notebooks 01-03)")
    clf = pytest.importorskip("ibnn.nn")
    data = pytest.importorskip("ibnn.data")
    try:
        images, _ = data.load_mnist("test")
    except Exception as exc:  # pragma: no cover - data not available offline
        pytest.skip(f"MNIST not available: {exc}")
    folded = clf.load_checkpoint(path)
    meta = folded.meta
    codes = torch.as_tensor(data.features(images, size=meta.get("size", 9), bits=meta.get("bits", 5)))
    m = map_network(folded, P)
    soft = torch.as_tensor(folded.predict(codes)).to(torch.int64)
    assert torch.equal(m.reference(codes).labels, soft)
    chipmod = pytest.importorskip("ibnn.circuit.chip")
    chip = chipmod.Chip(P, n_chips=1, seed=0, nonideal=chipmod.Nonidealities.ideal())
    assert torch.equal(m.run(chip, codes).labels[0], soft)


def test_real_classifier_checkpoint_roundtrip_and_mismatch(tmp_path):
    clf = pytest.importorskip("ibnn.nn")
    net = make_folded(seed=31, sizes=(81, 50, 30))
    g = torch.Generator().manual_seed(0)
    ro = clf.DigitalReadout((torch.randint(0, 2, (30, 10), generator=g) * 2 - 1), torch.arange(10))
    folded = clf.FoldedBNN([clf.FoldedLayer(L.weight, L.theta) for L in net.layers], ro,
                           {"topology": [81, 50, 30, 10], "size": 9, "bits": 5, "seed": 0,
                            "data_checksums": {}, "readout": "digital"})
    path = clf.save_checkpoint(tmp_path / "bnn.pt", folded)
    back = clf.load_checkpoint(path)
    m = map_network(back, P, expect={"size": 9, "bits": 5})
    codes = random_codes(600, seed=32)
    assert torch.equal(m.reference(codes).labels, back.predict(codes))
    assert m.readout_logic["kind"] == "digital"
    with pytest.raises(ValueError, match="size"):
        map_network(back, P, expect={"size": 7, "bits": 5})
    with pytest.raises(ValueError, match="bits"):
        map_network(back, P.replace(input_bits=4))
    other = clf.FoldedBNN([clf.FoldedLayer(net.layers[0].weight, net.layers[0].theta)], ro, back.meta)
    with pytest.raises(ValueError, match="array layers"):
        m.check_compatible(other)
