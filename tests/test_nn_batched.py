"""ibnn.nn.batched: many networks trained together equal train_bnn's bit for bit, a seed's network does not depend
on its companions, folding stays exact, and bad jobs are refused with the entry named. Small synthetic data only
(timings live in benchmarks/bench_train.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ibnn import data
from ibnn import nn as C
from ibnn.nn import stacked


@pytest.fixture(autouse=True)
def one_thread():
    """Notebook 03 trains on one torch thread; batch-norm's reductions depend on the thread count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_data(n=600, n_in=9, bits=5, seed=0):
    """Codes with a learnable class structure: the class sets which inputs are bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    proto = rng.integers(0, 2 ** bits, (10, n_in))
    x = np.clip(proto[y] + rng.integers(-4, 5, (n, n_in)), 0, 2 ** bits - 1).astype(np.uint8)
    return x, y.astype(np.uint8)


def bits_equal(a: dict, b: dict) -> bool:
    """Every tensor equal bit for bit (floats as integers: -0.0 and +0.0 differ)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype == torch.float32:
            x, y = x.view(torch.int32), y.view(torch.int32)
        if not torch.equal(x, y):
            return False
    return True


def same_run(a: C.TrainResult, b: C.TrainResult) -> bool:
    return bits_equal(a.model.state_dict(), b.model.state_dict()) and a.history == b.history


def reference(x, y, *val, recipe, seed, recalibrate=True):
    return C.train_bnn(x, y, *val, recipe=recipe, seed=seed, recalibrate=recalibrate)


# 2 epochs of 600 images in batches of 128: four full batches and a last one of 88 per epoch
SMALL = dict(epochs=2, batch_size=128)
RECIPES = [C.Recipe(hidden=(16,), **SMALL), C.Recipe(hidden=(12, 12), **SMALL),
           C.Recipe(hidden=(14, 20), readout="vote", **SMALL)]
#: notebook 03's candidate shapes (81 inputs; widths 128 | 64-64 | 88-40 vote), one epoch
NB03 = [C.Recipe(epochs=1), C.Recipe(hidden=(64, 64), epochs=1), C.Recipe(hidden=(88, 40), readout="vote", epochs=1)]


def test_sign_is_binarize_bit_for_bit():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0])
    assert bits_equal({"s": stacked.sign(x)}, {"s": C.binary.binarize(x)})


def test_jobs_and_data_validation():
    x, y = toy_data(100)
    with pytest.raises(ValueError, match=r"jobs=\[\]"):
        C.train_jobs([], x, y)
    with pytest.raises(ValueError, match=r"jobs\[0\]: seed=-1"):
        C.train_jobs([(C.Recipe(), -1)], x, y)
    with pytest.raises(ValueError, match=r"jobs\[1\]="):
        C.train_jobs([(C.Recipe(), 0), "recipe"], x, y)
    with pytest.raises(ValueError, match=r"codes span 0\.\.31; accepted: 0\.\.15 for bits=4"):
        C.train_jobs([(RECIPES[0].replace(bits=4), 0)], x, y)
    with pytest.raises(ValueError, match=r"jobs\[0\]: batch_size=99 leaves a last batch of one"):
        C.train_jobs([(RECIPES[0].replace(batch_size=99), 0)], x, y)
    with pytest.raises(ValueError, match=r"labels of shape \(100, 10\) must be \(N,\) class indices"):
        C.train_jobs([(RECIPES[0], 0)], x, np.eye(10, dtype=np.float32)[y])
    with pytest.raises(ValueError, match=r"labels span 1\.\.10; accepted: 0\.\.9"):
        C.train_jobs([(RECIPES[0], 0)], x, np.where(y == 0, 10, y))
    with pytest.raises(ValueError, match=r"Recipe.hidden\[-1\]=25 is out of range for readout='vote'"):
        C.Recipe(hidden=(25,), readout="vote")


@pytest.mark.parametrize("recipe", RECIPES, ids=["digital-1", "digital-2", "vote"])
def test_equals_train_bnn_bit_for_bit(recipe):
    """Same parameters, batch-norm buffers (incl. num_batches_tracked) and history as the unbatched reference."""
    x, y = toy_data()
    xv, yv = toy_data(200, seed=1)
    got = C.train_jobs([(recipe, 4), (recipe, 5)], x, y, xv, yv)
    for seed, r in zip((4, 5), got):
        assert same_run(r, reference(x, y, xv, yv, recipe=recipe, seed=seed))
        assert r.history["val_acc"] and "val_acc_recalibrated" in r.history


def test_notebook03_shapes_equal_train_bnn_bit_for_bit():
    """The candidates' own shapes (81 inputs, batch 512 and a last batch of 88): the kernels' rounding depends on
    shapes, so the toy widths above do not stand in for these."""
    x, y = toy_data(1112, n_in=81)
    jobs = [(c, s) for c in NB03 for s in (0, 1)]
    for (recipe, seed), r in zip(jobs, C.train_jobs(jobs, x, y, x[:300], y[:300])):
        assert same_run(r, reference(x, y, x[:300], y[:300], recipe=recipe, seed=seed))


def test_a_seed_does_not_depend_on_its_companions():
    x, y = toy_data()
    alone = C.train_jobs([(RECIPES[1], 3)], x, y)[0]
    companions = ([(RECIPES[1], s) for s in range(20)] + [(r, 3) for r in RECIPES]
                  + [(RECIPES[1].replace(lr=3e-3), 3), (RECIPES[1].replace(epochs=1), 3)])
    got = C.train_jobs(companions, x, y)
    assert same_run(got[3], alone)                              # 20 networks stacked in one group
    assert same_run(got[21], alone)                             # the same job again, beside other topologies
    assert not bits_equal(got[2].model.state_dict(), alone.model.state_dict())
    assert not bits_equal(got[-2].model.state_dict(), alone.model.state_dict())
    assert same_run(got[-1], reference(x, y, recipe=RECIPES[1].replace(epochs=1), seed=3))


def test_no_validation_and_no_recalibration_as_train_bnn():
    x, y = toy_data(300)
    got = C.train_jobs([(RECIPES[0], 0)], x, y, recalibrate=False)[0]
    assert same_run(got, reference(x, y, recipe=RECIPES[0], seed=0, recalibrate=False))
    assert set(got.history) == {"loss", "train_acc"}


def test_folded_equals_trained_and_checkpoint_round_trip(tmp_path):
    x, y = toy_data()
    codes = torch.randint(0, 32, (2000, 9), generator=torch.Generator().manual_seed(7))
    for r in C.train_jobs([(rec, 0) for rec in RECIPES], x, y):
        folded = C.fold(r.model)
        assert torch.equal(folded.predict(codes), r.model.predict(codes))
        meta = {"size": 3, "bits": 5, "seed": 0, "data_checksums": dict(data.DATA_CHECKSUMS)}
        path = C.save_checkpoint(tmp_path / "m.pt", r.model, meta)
        assert torch.equal(C.load_checkpoint(path).predict(codes), folded.predict(codes))
        assert bits_equal(C.load_trained(path).state_dict(), r.model.state_dict())


def test_batched_validation_accuracy_is_bnn_predict():
    """The per-epoch validation accuracy (integer-threshold form, all models at once) is BNN.predict's."""
    x, y = toy_data()
    xv, yv = toy_data(500, seed=2)
    for r in C.train_jobs([(rec.replace(epochs=1), 1) for rec in RECIPES], x, y, xv, yv, recalibrate=False):
        assert r.history["val_acc"] == [C.accuracy(r.model, xv, yv)]


def test_select_and_train_picks_the_best_candidate_on_validation():
    x, y = toy_data()
    xv, yv = toy_data(200, seed=1)
    sel = C.select_and_train(RECIPES, [2, 0], x, y, xv, yv, epochs=3)
    assert sel.chosen == int(np.argmax(sel.val_acc))
    assert sel.val_acc == [C.accuracy(r.model, xv, yv) for r in sel.candidates]
    assert sel.recipe == RECIPES[sel.chosen].replace(epochs=3) and list(sel.runs) == [2, 0]
    for s, r in sel.runs.items():
        assert same_run(r, reference(x, y, xv, yv, recipe=sel.recipe, seed=s))
    same = C.select_and_train(RECIPES, [2, 0], x, y, xv, yv)
    assert same.runs[2] is same.candidates[same.chosen]      # the candidate run is reused for the first seed
    with pytest.raises(ValueError, match=r"seeds\[1\]=-1"):
        C.select_and_train(RECIPES, [0, -1], x, y, xv, yv)
    with pytest.raises(ValueError, match=r"seeds=\[0, 0\] must be distinct"):
        C.select_and_train(RECIPES, [0, 0], x, y, xv, yv)
