"""Content hashes of the sweep engine: canonical points, their seeds, cache keys, point-function ids and code
versions (`ibnn.explore.engine` explains how they are used).

A point is a flat dict of scalars; its canonical form (sorted keys, plain Python scalars, finite floats) is what
every hash is taken over, so the same point hashes the same whatever order its entries were given in and
whatever numpy or torch scalar types carried its values. A point's seed is a hash of its content (or of some
of its entries, or of none: common random numbers), never of its position in a sweep. The code version
defaults to a sha256 over every source, parameter and table file of the ibnn package: any edit invalidates the
cache (conservative); `code_version(paths)` gives a narrower one.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

SCHEMA = 1
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SEED_BITS = 32          # seeds fit numpy's legacy RandomState, torch.manual_seed and random.seed alike


def _scalar(name: str, v):
    if hasattr(v, "item") and not isinstance(v, (str, bytes)) and getattr(v, "size", 1) == 1:
        v = v.item()                                   # numpy / torch scalars
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"point entry {name}={v!r} is not finite")
        return v
    raise ValueError(f"point entry {name}={v!r} ({type(v).__name__}): values must be numbers, strings, bools "
                     f"or None")


def canonical_point(point: Mapping[str, Any]) -> dict:
    """The point as a plain dict with sorted string keys and plain scalar values (ValueError otherwise)."""
    if not isinstance(point, Mapping):
        raise ValueError(f"a point must be a mapping of name -> value, got {type(point).__name__}")
    for k in point:
        if not isinstance(k, str):
            raise ValueError(f"point key {k!r} must be a string")
    return {k: _scalar(k, point[k]) for k in sorted(point)}


def canonical_json(obj) -> str:
    """Compact JSON with sorted keys: the byte string every hash here is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def point_seed(point: Mapping[str, Any], seed: int = 0, keys: Sequence[str] | None = None) -> int:
    """The seed of a point: a hash of its content (only `keys` of it, if given; () for one common seed).

    Args:
        point: canonical point.
        seed: base seed of the sweep.
        keys: entries of the point the seed depends on; None: all.
    Returns:
        An integer in [0, 2**32).
    """
    if keys is not None:
        missing = [k for k in keys if k not in point]
        if missing:
            raise ValueError(f"seed_keys {missing} are not entries of the point {point}")
        point = {k: point[k] for k in keys}
    digest = _sha256(canonical_json({"point": point, "seed": int(seed)}))
    return int(digest[: SEED_BITS // 4], 16)


def point_key(point: Mapping[str, Any], seed: int, fn_id: str, code: str) -> str:
    """Cache key: sha256 of the point, its seed, the point function's id and the code version."""
    return _sha256(canonical_json({"schema": SCHEMA, "point": point, "seed": seed, "fn": fn_id, "code": code}))


def function_id(fn, strict: bool = True) -> str:
    """A stable name of a point function: module.qualname, its partial arguments, and its fingerprint().

    strict: refuse lambdas and local functions (their behaviour depends on what they close over, which the
    name does not capture); objects with a `fingerprint()` method are accepted.
    """
    if isinstance(fn, functools.partial):
        try:
            extra = canonical_json([list(fn.args), fn.keywords])
        except (TypeError, ValueError):
            raise ValueError("a functools.partial point function may bind only JSON values; give the point "
                             "function a fingerprint() instead") from None
        return f"partial({function_id(fn.func, strict)},{extra})"
    target = fn if inspect.isfunction(fn) or inspect.isbuiltin(fn) else type(fn)
    name = f"{target.__module__}.{target.__qualname__}"
    fingerprint = getattr(fn, "fingerprint", None)
    if fingerprint is not None and not inspect.isclass(fn):
        return f"{name}[{fingerprint()}]"
    if strict and ("<lambda>" in name or "<locals>" in name):
        raise ValueError(f"point function {name} is a lambda or local function: the cache cannot tell what it "
                         f"closes over; use a module-level function or give it a fingerprint()")
    return name


def package_files() -> list[Path]:
    """Every file of the ibnn package the figures can depend on: sources, parameter files, data tables."""
    files = [p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts]
    files += list((PACKAGE_DIR / "params_data").glob("*.toml")) + list((PACKAGE_DIR / "data_tables").glob("*"))
    return sorted(p for p in files if p.is_file())


def code_version(paths: Iterable[str | os.PathLike]) -> str:
    """sha256 over the given files (their paths relative to the repository, and their bytes)."""
    h = hashlib.sha256()
    for path in sorted({Path(p).resolve() for p in paths}):
        if not path.is_file():
            raise ValueError(f"code_version: {path} is not a file")
        try:
            rel = str(path.relative_to(PACKAGE_DIR.parent))
        except ValueError:
            rel = path.name
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def default_code_version(fn) -> str:
    """code_version of the ibnn package plus the source file of `fn` where that lies outside the package."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    target = fn if inspect.isfunction(fn) else type(fn)
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    extra = getattr(module, "__file__", None)
    files = package_files()
    if extra and Path(extra).is_file() and PACKAGE_DIR not in Path(extra).resolve().parents:
        files.append(Path(extra))
    return code_version(files)

