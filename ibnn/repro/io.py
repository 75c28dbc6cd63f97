"""Paths and atomic file writes: every file the project writes goes through a temporary file in the same folder
and an atomic rename, so an interrupted run never leaves a half-written figure, result or checkpoint behind.

Output root: the repository (figures/, results/) unless IBNN_OUTPUT_ROOT points elsewhere; `make test` uses that
to run the notebooks into a scratch folder. The MNIST cache lives in .cache/ of the repository unless
IBNN_CACHE_DIR says otherwise. (Which inputs a result was computed from: `ibnn.repro.provenance`.)
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

PACKAGE_DIR = Path(__file__).resolve().parents[1]


REPO_ROOT = PACKAGE_DIR.parent


def output_root() -> Path:
    """Where results/ and figures/ are written: IBNN_OUTPUT_ROOT or the repository."""
    env = os.environ.get("IBNN_OUTPUT_ROOT")
    return Path(env).resolve() if env else REPO_ROOT


def results_dir() -> Path:
    """output_root()/results."""
    return output_root() / "results"


def figures_dir() -> Path:
    """output_root()/figures."""
    return output_root() / "figures"


def checkpoints_dir() -> Path:
    """results_dir()/checkpoints."""
    return results_dir() / "checkpoints"


def cache_dir() -> Path:
    """IBNN_CACHE_DIR or the repository's .cache/ (git-ignored)."""
    env = os.environ.get("IBNN_CACHE_DIR")
    return Path(env).resolve() if env else REPO_ROOT / ".cache"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_torch_save(obj, path) -> Path:
    """torch.save, atomically and byte-reproducibly: serialised in memory first, because torch names the archive
    inside the file after the file it writes to (a random temporary name would change the bytes every run)."""
    buf = _io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any):
    """Convert numpy/torch scalars and arrays to plain JSON types; reject NaN/inf."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch tensor
        return _jsonable(obj.detach().cpu().tolist())
    if np is not None and isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"result value {obj!r} is not finite; results must be finite numbers")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, indent 2, numpy/torch values converted, NaN/inf refused)."""
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n"


def atomic_write_json(path, obj: Any) -> Path:
    """Write `obj` as canonical JSON to `path` atomically."""
    return atomic_write_text(path, dumps(obj))


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
