"""What runs on a dask worker: the evaluation of a chunk of points, and the digest of the ibnn files it runs.

Standard library only (and `keys`, which is too): a worker imports this module to unpickle its tasks, so a
freshly started worker is ready in the time it takes to import dask, not torch. The point function imports
what it needs itself.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
import traceback
from pathlib import PurePath
from typing import Any, Callable, Mapping, Sequence

from . import keys

PointFunction = Callable[[dict, int], Mapping[str, Any]]


def plain(obj: Any):
    """obj as plain JSON types (dict keys as strings; numpy / torch scalars and arrays through `tolist`, paths
    as strings); a non-finite number is a ValueError (results must be finite, as in `ibnn.repro.io.dumps`)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    if not isinstance(obj, (str, bytes)) and hasattr(obj, "tolist"):      # numpy / torch, without importing them
        tensor = obj.detach().cpu() if hasattr(obj, "detach") else obj
        return plain(tensor.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"result value {obj!r} is not finite; results must be finite numbers")
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise ValueError(f"result value {obj!r} ({type(obj).__name__}) is not a JSON value")


def _evaluate_one(fn: PointFunction, point: dict, seed: int) -> dict:
    t0 = time.perf_counter()
    where = f"{socket.gethostname()}:{os.getpid()}"
    try:
        out = fn(dict(point), seed)
        if not isinstance(out, Mapping):
            raise TypeError(f"the point function returned {type(out).__name__}, not a dict of figures")
        result = json.loads(json.dumps(plain(dict(out))))   # plain JSON types, finite: as the cache will give back
    except Exception as exc:                                 # noqa: BLE001 - reported with the point, not swallowed
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "worker": where}
    return {"ok": True, "result": result, "elapsed_s": time.perf_counter() - t0, "worker": where}


def evaluate_chunk(fn: PointFunction, tasks: Sequence[Sequence]) -> list[dict]:
    """Evaluate [(point, seed), ...]; each outcome is {"ok", "result" | "error", "traceback", "worker"}."""
    return [_evaluate_one(fn, point, seed) for point, seed in tasks]


def identity(x):
    """x itself (the task that holds the point function on the cluster)."""
    return x


def package_digest() -> str:
    """`keys.code_version` of every ibnn file this worker imports from (compared with the client's)."""
    return keys.code_version(keys.package_files())
