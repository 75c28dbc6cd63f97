"""Paths, atomic file writes and the results/*.json files.

Every file the project writes goes through a temporary file in the same folder and an atomic rename, so an
interrupted run never leaves a half-written figure, result or checkpoint behind.

Output root: the repository (figures/, results/) unless IBNN_OUTPUT_ROOT points elsewhere; `make test` uses that
to run the notebooks into a scratch folder. The MNIST cache lives in .cache/ of the repository unless
IBNN_CACHE_DIR says otherwise.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def output_root() -> Path:
    env = os.environ.get("IBNN_OUTPUT_ROOT")
    return Path(env).resolve() if env else REPO_ROOT


def results_dir() -> Path:
    return output_root() / "results"


def figures_dir() -> Path:
    return output_root() / "figures"


def checkpoints_dir() -> Path:
    return results_dir() / "checkpoints"


def cache_dir() -> Path:
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
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_torch_save(obj, path) -> Path:
    """torch.save, atomically and byte-reproducibly: serialised in memory first, because torch names the archive
    inside the file after the file it writes to (a random temporary name would change the bytes every run)."""
    import io as _io

    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any):
    """Convert numpy/torch scalars and arrays to plain JSON types; reject NaN/inf."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
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
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n"


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, dumps(obj))


# Provenance: every file a notebook reads through `load_results` / `record_input` is remembered (with its
# sha256), and `write_results` stores that list, with the run profile, under the key "_provenance". A later
# `load_results` checks that the inputs recorded there are still the files on disk: a result computed from
# another checkpoint or from an older upstream result is reported as stale instead of silently used.
_INPUTS: dict[str, str] = {}
_PROFILE: list[str] = []


def set_profile(profile: str) -> None:
    """Called by ibnn.nb.resolve_profile: the profile recorded in the results this process writes."""
    _PROFILE[:] = [profile]


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(output_root()))
    except ValueError:
        return str(path)


def record_input(path) -> str:
    """Remember that the current notebook used `path` (its sha256 goes into the provenance of its results)."""
    digest = sha256_file(path)
    _INPUTS[_rel(path)] = digest
    return digest


def write_results(name: str, obj: dict) -> Path:
    """Write results/<name>.json atomically (name: the notebook's stem, e.g. '03_train_bnn').

    Adds "_provenance": the run profile and the sha256 of every input this process loaded.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"results for {name!r} must be a dict, got {type(obj).__name__}")
    if "_provenance" in obj:
        raise ValueError("results may not set the reserved key '_provenance'")
    out = dict(obj)
    out["_provenance"] = {"notebook": name, "profile": _PROFILE[0] if _PROFILE else None,
                          "inputs": dict(sorted(_INPUTS.items()))}
    return atomic_write_json(results_dir() / f"{name}.json", out)


class StaleResultError(RuntimeError):
    """A result or checkpoint does not match what it claims to be derived from."""


def check_provenance(name: str, data: dict, profile: str | None = None) -> None:
    prov = data.get("_provenance")
    if not isinstance(prov, dict):
        raise StaleResultError(f"results/{name}.json has no _provenance: it was not written by this version of "
                               f"ibnn; rerun make figures")
    if profile is not None and prov.get("profile") not in (None, profile):
        raise StaleResultError(f"results/{name}.json was computed with profile {prov.get('profile')!r}, this run "
                               f"uses {profile!r}; rerun make figures{' FAST=1' if profile == 'fast' else ''}")
    root = output_root()
    for rel, digest in prov.get("inputs", {}).items():
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if not path.exists():
            raise StaleResultError(f"results/{name}.json was computed from {rel}, which no longer exists; "
                                   f"rerun make figures")
        if sha256_file(path) != digest:
            raise StaleResultError(f"results/{name}.json is stale: {rel} changed since it was computed "
                                   f"(sha256 {digest[:12]}... expected); rerun make figures")


def load_results(name: str, check: bool = True) -> dict:
    """Read results/<name>.json, check its provenance and record it as an input of the current notebook."""
    path = results_dir() / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebook {name}.ipynb first (make figures)")
    with open(path) as fh:
        data = json.load(fh)
    if check:
        check_provenance(name, data, _PROFILE[0] if _PROFILE else None)
    record_input(path)
    return data


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
