"""Paths and atomic file writes: every file the project writes goes through a temporary file in the same folder
and an atomic rename, so an interrupted run never leaves a half-written figure, result or checkpoint behind.

Output root (where results/, results/checkpoints/, figures/ and executed notebooks go):
- IBNN_OUTPUT_ROOT when set (`make test` points it at a temporary folder; IBNN_OUTPUT_ROOT=. a hand run at the
  repository, on purpose);
- otherwise scratch/<profile>/ of the repository (git-ignored; IBNN_SCRATCH_DIR moves it): hand papermill runs,
  JupyterLab sessions and `make figures FAST=1` write there. A full-profile hand run reads what it does not find
  there from the committed record (`input_path`), so notebook 05 opened in JupyterLab uses the committed checkpoint;
- under `make figures` each notebook writes into a staging folder (IBNN_OUTPUT_ROOT) and reads what it does not
  find there from the root being built (IBNN_READ_ROOT); only a full-profile `make figures` builds the repository.
Paths shown to the reader (reprs in notebooks, paths stored in results) are relative (`relative`, `RecordPath`).
The MNIST cache lives in .cache/ of the repository unless IBNN_CACHE_DIR says otherwise. (Which inputs a result
was computed from: `ibnn.repro.provenance`.)
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import math
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent
PROFILES = ("full", "fast")

# Run state of this process (a notebook kernel): its profile and the files it wrote.
_PROFILE: list[str] = []
_WRITTEN: dict[str, None] = {}          # absolute paths written through atomic_path, in order


def set_profile(profile: str) -> None:
    """The profile of this process (set by ibnn.repro.nb.start): recorded in results, names the scratch root."""
    _PROFILE[:] = [profile]


def current_profile() -> str:
    """The profile of this process: the one set, else IBNN_PROFILE (when valid), else 'full'."""
    if _PROFILE:
        return _PROFILE[0]
    env = os.environ.get("IBNN_PROFILE")
    return env if env in PROFILES else "full"


def explicit_root() -> bool:
    """Whether IBNN_OUTPUT_ROOT names the output root (else the scratch root is used)."""
    return bool(os.environ.get("IBNN_OUTPUT_ROOT"))


def scratch_root(profile: str | None = None) -> Path:
    """scratch/<profile> of the repository (IBNN_SCRATCH_DIR/<profile> when set): git-ignored."""
    env = os.environ.get("IBNN_SCRATCH_DIR")
    return (Path(env).resolve() if env else REPO_ROOT / "scratch") / (profile or current_profile())


def output_root() -> Path:
    """Where results/ and figures/ are written: IBNN_OUTPUT_ROOT, else the scratch root of the profile."""
    env = os.environ.get("IBNN_OUTPUT_ROOT")
    return Path(env).resolve() if env else scratch_root()


def read_root() -> Path | None:
    """Where reads fall back to when the output root lacks a file: IBNN_READ_ROOT (make figures: the root it
    builds), else the committed record for a full-profile hand run (no IBNN_OUTPUT_ROOT), else None."""
    env = os.environ.get("IBNN_READ_ROOT")
    if env:
        return Path(env).resolve()
    return REPO_ROOT if not explicit_root() and current_profile() == "full" else None


def target_root() -> Path:
    """The root this run's outputs end up in (make figures moves them there from its staging folder)."""
    env = os.environ.get("IBNN_READ_ROOT")
    return Path(env).resolve() if env else output_root()


def writes_record() -> bool:
    """True when this run writes the committed record: full profile, outputs ending up in the repository."""
    return target_root() == REPO_ROOT and current_profile() == "full"


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


def relative(path) -> str:
    """`path` relative to the output root, else to the read root or the repository; unchanged outside them."""
    path = Path(path).resolve()
    for root in (output_root(), read_root(), REPO_ROOT):
        if root is not None and path.is_relative_to(root):
            return PurePosixPath(path.relative_to(root)).as_posix()
    return str(path)


def input_path(path) -> Path:
    """Where to read `path` (relative to the output root, or absolute under one of the roots): the output root's
    file when it exists, else the read root's when that exists, else the output root's (missing) path."""
    rel = Path(relative(path)) if Path(path).is_absolute() else Path(path)
    if rel.is_absolute():
        return rel
    here, fallback = output_root() / rel, read_root()
    if here.exists() or fallback is None or not (fallback / rel).exists():
        return here
    return fallback / rel


class RecordPath(type(Path())):
    """A path whose repr is relative (a notebook's outputs show no machine paths)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({relative(self)!r})"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path .<name>.<random><suffix> beside `path`; on success rename it onto `path` (and
    remember it, `written()`), on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
        _WRITTEN[str(path.resolve())] = None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def written() -> list[str]:
    """Files this process wrote through atomic_path, relative (`relative`)."""
    return [relative(p) for p in _WRITTEN]


def atomic_write_bytes(path, data: bytes) -> RecordPath:
    """Write `data` to `path` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return RecordPath(path)


def atomic_torch_save(obj, path) -> RecordPath:
    """torch.save, atomically and byte-reproducibly: serialised in memory first, because torch names the archive
    inside the file after the file it writes to (a random temporary name would change the bytes every run)."""
    import torch  # here, not at the top: the pipeline's preflight imports this module and stays fast

    buf = _io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path, text: str) -> RecordPath:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any):
    """Convert numpy/torch scalars and arrays to plain JSON types, paths to relative ones; reject NaN/inf."""
    import numpy as np
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch tensor
        return _jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"result value {obj!r} is not finite; results must be finite numbers")
    if isinstance(obj, Path):
        return relative(obj) if obj.is_absolute() else obj.as_posix()
    return obj


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, indent 2, numpy/torch values converted, NaN/inf refused)."""
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n"


def atomic_write_json(path, obj: Any) -> RecordPath:
    """Write `obj` as canonical JSON to `path` atomically."""
    return atomic_write_text(path, dumps(obj))


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
