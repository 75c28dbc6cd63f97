"""A sweep engine: one point function over many parameter points, in-process or on dask.distributed, cached.

The contract is a *point function* ``fn(point, seed) -> dict of figures``: `point` is a flat dict of scalars
(numbers, strings for discrete choices, bools), `seed` an integer the function must draw all its randomness from.
`ibnn.explore.points.ParamPoint` turns a ParamSet figure function into one. The engine knows nothing about physics.

The parts: `keys` (canonical points, seeds, cache keys, code versions), `cache` (one atomic JSON file per
point), `engines` (in-process, a LocalCluster, an existing cluster: `open_engine`); this module is the sweep
(`run_sweep`) and re-exports the names a caller needs, so ``from ibnn.explore import engine as E`` is enough.

Properties `run_sweep` guarantees:
- results in input order, whatever order the workers finish in;
- deterministic: a point's seed is a hash of its content (and of a base seed), never of its position or of
  the scheduling order, so the same point gives the same figures in any sweep, alone or among others;
  `seed_keys=()` gives every point the same seed (common random numbers, for fits that compare points);
- cached: every point is stored, as soon as its result reaches the client, as an atomic JSON file named by
  sha256 of (point, seed, point function id, code version); an interrupted sweep resumes where it stopped and a
  larger rerun computes only the new points. Duplicated points are computed once;
- failures name the point that failed, with its traceback (errors="raise": stop at the first one, finished
  points stay cached; "collect": finish the rest, the failed points' results are None);
- a lost worker loses no point: dask reschedules the tasks it held, and the cache keeps what was finished;
- the engine kind and worker count are recorded in the result (`SweepResult.engine`);
- progress bars (ibnn.repro.progress) in a terminal, quiet in CI and under papermill.

Cheap points can be grouped `chunk_size` to a task to amortise dask's per-task cost (a few ms); expensive points
(a Monte Carlo over chips) go one to a task, for load balance.

The code version defaults to a sha256 over every source, parameter and table file of the ibnn package (plus the
point function's own file if it lies outside): conservative, any edit invalidates the cache. Pass a digest of the
files that matter (`code_version(paths)`) for a narrower one. A point function object may carry state (a
ParamSet, a mapped network); it then provides ``fingerprint() -> str`` so that state enters the cache key.
"""
from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..repro.progress import progress
from ..validate import check_choice, check_int
from .cache import PointCache, sweep_cache_dir
from .engines import (
    ENV_SCHEDULER,
    ENV_WORKERS,
    KINDS,
    DaskEngine,
    Engine,
    EngineInfo,
    InProcessEngine,
    PointFunction,
    default_workers,
    evaluate_chunk,
    open_engine,
)
from .keys import (
    SCHEMA,
    canonical_json,
    canonical_point,
    code_version,
    default_code_version,
    function_id,
    package_files,
    point_key,
    point_seed,
)

__all__ = ["ENV_SCHEDULER", "ENV_WORKERS", "KINDS", "DaskEngine", "Engine", "EngineInfo", "InProcessEngine",
           "PointCache", "PointFailure", "PointFunction", "SweepError", "SweepResult", "canonical_json",
           "canonical_point", "code_version", "default_code_version", "default_workers", "evaluate_chunk",
           "function_id", "open_engine", "package_files", "plan_sweep", "point_key", "point_seed", "run_sweep",
           "sweep_cache_dir"]

ERRORS = ("raise", "collect")


# --- the sweep -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointFailure:
    """A point whose evaluation failed: its index in the input, the point, its seed, the error."""

    index: int
    point: dict
    seed: int
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"point {self.index} {self.point} (seed {self.seed}) failed: {self.error}"


class SweepError(RuntimeError):
    """Raised by run_sweep(errors="raise"): `failures` lists the failed points."""

    def __init__(self, failures: Sequence[PointFailure]):
        self.failures = list(failures)
        first = self.failures[0]
        super().__init__(f"{len(self.failures)} point(s) failed; first: {first}\n{first.traceback}".rstrip())


@dataclass
class SweepResult:
    """Results in input order (None for a failed point), with what was cached, computed, and where.

    Attributes:
        points, seeds, keys: the canonical points, their seeds and cache keys, in input order.
        results: the figure dicts.
        workers: "host:pid" that computed each point in this run (None: from the cache, or failed).
        failures: the failed points (errors="collect").
        engine: what the sweep ran on (kind "cache": every point was cached, no engine was started).
        n_cached, n_computed: distinct points taken from the cache / computed now.
    """

    points: list[dict]
    seeds: list[int]
    keys: list[str]
    results: list[dict | None]
    workers: list[str | None]
    failures: list[PointFailure]
    engine: EngineInfo
    code_version: str
    n_cached: int
    n_computed: int
    elapsed_s: float

    def column(self, name: str) -> list:
        """One figure over all points (None where a point failed)."""
        return [None if r is None else r[name] for r in self.results]

    def summary(self) -> dict:
        """What a results file records about the sweep (no per-point data)."""
        return {"engine": self.engine.as_dict(), "n_points": len(self.points), "n_distinct": len(set(self.keys)),
                "n_cached": self.n_cached, "n_computed": self.n_computed, "n_failed": len(self.failures),
                "code_version": self.code_version, "elapsed_s": self.elapsed_s}


@dataclass
class _Plan:
    points: list[dict]
    seeds: list[int]
    keys: list[str]
    fn_id: str
    code: str


def plan_sweep(fn, points, code: str | None = None, seed: int = 0, seed_keys: Sequence[str] | None = None,
               strict: bool = True) -> _Plan:
    """Canonical points, their seeds and cache keys (validates every point before any work)."""
    pts = [canonical_point(p) for p in points]
    seed = check_int("seed", seed, 0)
    keys_for_seed = None if seed_keys is None else list(seed_keys)
    seeds = [point_seed(p, seed, keys_for_seed) for p in pts]
    fn_id = function_id(fn, strict=strict)
    code = default_code_version(fn) if code is None else str(code)
    keys = [point_key(p, s, fn_id, code) for p, s in zip(pts, seeds)]
    return _Plan(pts, seeds, keys, fn_id, code)


class _Collector:
    """Takes outcomes as they arrive: caches successes, records failures."""

    def __init__(self, plan: _Plan, cache: PointCache | None):
        self.plan, self.cache = plan, cache
        self.done: dict[str, dict] = {}
        self.worker: dict[str, str] = {}
        self.failures: list[PointFailure] = []

    def take(self, index: int, outcome: dict) -> None:
        p = self.plan
        key = p.keys[index]
        if not outcome["ok"]:
            self.failures.append(PointFailure(index, p.points[index], p.seeds[index], outcome["error"],
                                              outcome.get("traceback", "")))
            return
        self.done[key], self.worker[key] = outcome["result"], outcome["worker"]
        if self.cache is not None:
            self.cache.store({"schema": SCHEMA, "key": key, "point": p.points[index], "seed": p.seeds[index],
                              "fn": p.fn_id, "code_version": p.code, "result": outcome["result"],
                              "elapsed_s": outcome["elapsed_s"], "worker": outcome["worker"]})


def _load_cached(cache: PointCache | None, keys: Sequence[str]) -> dict[str, dict]:
    """key -> result of every distinct key the cache holds."""
    if cache is None:
        return {}
    entries = {k: cache.load(k) for k in dict.fromkeys(keys)}
    return {k: e["result"] for k, e in entries.items() if e is not None}


def _todo(plan: _Plan, cached: Mapping[str, dict]) -> list[int]:
    """Index of the first occurrence of every distinct point not in the cache."""
    seen, out = set(cached), []
    for i, k in enumerate(plan.keys):
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def _compute(fn, todo: list[int], col: _Collector, engine, chunk_size: int, errors: str, desc: str) -> EngineInfo:
    if not todo:
        return EngineInfo("cache", 0, 0)
    own = not isinstance(engine, Engine)
    eng = open_engine(engine) if own else engine
    try:
        info = eng.refresh_info() if isinstance(eng, DaskEngine) else eng.info
        groups = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
        chunks = [[(col.plan.points[i], col.plan.seeds[i]) for i in g] for g in groups]
        with progress(total=len(todo), desc=desc, unit="pt") as bar, \
                contextlib.closing(eng.map_chunks(fn, chunks)) as stream:
            for ci, outcomes in stream:
                for i, outcome in zip(groups[ci], outcomes):
                    col.take(i, outcome)
                bar.update(len(outcomes))
                if errors == "raise" and col.failures:
                    break
        return info
    finally:
        if own:
            eng.close()


def run_sweep(fn: PointFunction, points: Sequence[Mapping[str, Any]], *, engine: Engine | str | None = None,
              cache_dir: str | os.PathLike | None = None, code_version: str | None = None, seed: int = 0,
              seed_keys: Sequence[str] | None = None, chunk_size: int = 1, errors: str = "raise",
              desc: str = "sweep") -> SweepResult:
    """Evaluate `fn(point, seed)` at every point, reusing cached points.

    Args:
        fn: the point function (picklable: module-level, or an object with `__call__` and `fingerprint`).
        points: flat dicts of scalars.
        engine: an open Engine (kept open), or a kind for `open_engine` (opened only if a point is missing,
            closed after); None: `open_engine()` (LocalCluster, or the cluster in IBNN_DASK_SCHEDULER).
        cache_dir: folder of the point cache; None: no cache.
        code_version: digest of the code the figures depend on; None: `default_code_version(fn)`.
        seed: base seed; seed_keys: the point entries a point's seed depends on (None: all; (): one seed).
        chunk_size: points per task (1 for expensive points; more for cheap ones, to amortise the overhead).
        errors: "raise" (SweepError at the first failure) or "collect" (failures in the result).
        desc: progress-bar label.
    Returns:
        SweepResult, in input order.
    """
    t0 = time.perf_counter()
    check_choice("errors", errors, ERRORS)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    plan = plan_sweep(fn, points, code_version, seed, seed_keys, strict=cache_dir is not None)
    cache = PointCache(cache_dir) if cache_dir is not None else None
    col = _Collector(plan, cache)
    cached = _load_cached(cache, plan.keys)
    todo = _todo(plan, cached)
    info = _compute(fn, todo, col, engine, chunk_size, errors, desc)
    if errors == "raise" and col.failures:
        raise SweepError(col.failures)
    done = {**cached, **col.done}
    return SweepResult(plan.points, plan.seeds, plan.keys,
                       [copy.deepcopy(done[k]) if k in done else None for k in plan.keys],
                       [col.worker.get(k) for k in plan.keys], sorted(col.failures, key=lambda f: f.index), info,
                       plan.code, len(cached), len(col.done), time.perf_counter() - t0)
