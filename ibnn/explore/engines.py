"""Where the points of a sweep are evaluated: in this process, on a dask LocalCluster, or on an existing dask
cluster (`open_engine`; `ibnn.explore.engine` is the sweep that uses them).

- "inprocess": a plain loop, no dask (tests, reference runs, debugging);
- "local": a dask LocalCluster of worker *processes*, one thread each (points are CPU-bound Python and torch:
  threads would contend for the GIL and for torch's own thread pool, and a crashing point takes down one worker,
  not the client); n_workers from the argument, else IBNN_DASK_WORKERS, else min(2, cpu count); localhost only,
  any free port;
- "scheduler": an existing cluster, given its address (``tcp://host:8786``) or scheduler file, as the argument
  or in IBNN_DASK_SCHEDULER. The same code runs on both: only the client differs. On connecting, the engine
  checks that every worker runs the same ibnn files as the client (`DaskEngine.verify_code`): the workers
  import ibnn by name, so the cluster needs the same commit installed.

A lost worker loses no point: dask reschedules the tasks it held (and the point function, sent once as a task
of its own, is recomputed should every worker holding it die).
"""
from __future__ import annotations

import logging
import os
import traceback
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ..validate import check_choice, check_int
from . import keys
from .worker import PointFunction, evaluate_chunk, identity, package_digest

ENV_SCHEDULER = "IBNN_DASK_SCHEDULER"
ENV_WORKERS = "IBNN_DASK_WORKERS"
KINDS = ("inprocess", "local", "scheduler")


# --- engines ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineInfo:
    """What a sweep ran on: kind (inprocess | local | scheduler | cache), workers, threads, address."""

    kind: str
    n_workers: int
    n_threads: int
    address: str | None = None
    dask_version: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class Engine:
    """Base of the engines: `map_chunks(fn, chunks)` yields (chunk index, outcomes) as chunks finish."""

    info: EngineInfo

    def map_chunks(self, fn: PointFunction, chunks: Sequence[Sequence]) -> Iterator[tuple[int, list[dict]]]:
        """Yield (chunk index, one outcome per point) as chunks finish, in any order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds (nothing for the in-process one)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessEngine(Engine):
    """Evaluate every chunk in this process, in order (no dask)."""

    def __init__(self):
        self.info = EngineInfo("inprocess", 1, 1)

    def map_chunks(self, fn, chunks):
        """Every chunk in order, here."""
        for i, chunk in enumerate(chunks):
            yield i, evaluate_chunk(fn, chunk)


class DaskEngine(Engine):
    """Chunks as tasks on a dask.distributed cluster, gathered as they complete.

    Args:
        client: a connected distributed.Client.
        kind: "local" or "scheduler" (recorded in the info).
        cluster: the LocalCluster this engine owns and closes, if any.
        timeout: seconds a whole `map_chunks` may take before TimeoutError (None: no limit).
    """

    def __init__(self, client, kind: str, cluster=None, timeout: float | None = None):
        self.client, self.cluster, self.timeout = client, cluster, timeout
        self.kind = kind
        self._functions: list[tuple] = []
        self.info = self.refresh_info()

    def refresh_info(self) -> EngineInfo:
        """The cluster as it is now (workers can come and go on a shared cluster)."""
        import distributed

        nthreads = self.client.nthreads()
        self.info = EngineInfo(self.kind, len(nthreads), int(sum(nthreads.values())),
                               self.client.scheduler.address, distributed.__version__)
        return self.info

    def verify_code(self) -> None:
        """Check that every worker runs the ibnn package this client runs (same `package_files` digest):
        the cache keys name the client's code, so a worker with other code would file wrong results."""
        mine = keys.code_version(keys.package_files())
        theirs = self.client.run(package_digest)
        wrong = sorted(w for w, digest in theirs.items() if digest != mine)
        if wrong:
            raise ValueError(f"workers {wrong} run another version of ibnn than this client "
                             f"(package digest {mine[:12]}...); install the same commit on the cluster")

    def map_chunks(self, fn, chunks):
        """Each chunk one task; outcomes gathered in batches as tasks finish (a failed or cancelled task: one
        failure per point of it)."""
        from distributed import as_completed

        tag = uuid.uuid4().hex[:12]
        fn_future = self._remote(fn)
        keys = [f"ibnn-chunk-{tag}-{i}" for i in range(len(chunks))]
        futures = self.client.map(evaluate_chunk, [fn_future] * len(chunks), list(chunks), key=keys)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            # one gather per batch of finished tasks (grouped by worker), not one round trip per task
            for batch in as_completed(futures, timeout=self.timeout).batches():
                done = [f for f in batch if f.status == "finished"]
                results = dict(zip([f.key for f in done], self.client.gather(done))) if done else {}
                for f in batch:
                    i = index[f.key]
                    yield i, results[f.key] if f.key in results else _failed(f, chunks[i])
        finally:
            self.client.cancel(futures)

    def _remote(self, fn):
        """The point function on the cluster: sent once per engine (a fit calls many small sweeps), as a task,
        so that it is recomputed should every worker holding it die."""
        for held, fut in self._functions:
            if held is fn:
                return fut
        fut = self.client.submit(identity, fn, key=f"ibnn-fn-{uuid.uuid4().hex[:12]}")
        self._functions = self._functions[-3:] + [(fn, fut)]
        return fut

    def close(self):
        """Close the client, and the LocalCluster where this engine started one."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _failed(fut, chunk) -> list[dict]:
    """One failure per point of a task that itself failed (e.g. its worker was killed too often:
    distributed.KilledWorker) or was cancelled."""
    if fut.status == "error":
        exc = fut.exception()
        tb = "".join(traceback.format_exception(type(exc), exc, fut.traceback()))
    else:
        exc, tb = RuntimeError(f"task {fut.key} ended {fut.status}"), ""
    return [{"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": tb, "worker": None}
            for _ in chunk]


def default_workers() -> int:
    """IBNN_DASK_WORKERS, else min(2, cpu count): small, as the reference machine has two shared cores."""
    env = os.environ.get(ENV_WORKERS)
    if env:
        return check_int(ENV_WORKERS, int(env) if env.strip().isdigit() else env, 1)
    return max(1, min(2, os.cpu_count() or 1))


def _connect(scheduler: str, timeout: float):
    from distributed import Client

    if scheduler.endswith(".json") and Path(scheduler).is_file():
        client = Client(scheduler_file=scheduler, timeout=timeout)
    else:
        client = Client(scheduler, timeout=timeout)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        client.close()
        raise
    return client


def open_engine(kind: str | None = None, *, scheduler: str | None = None, n_workers: int | None = None,
                timeout: float = 60.0, sweep_timeout: float | None = None) -> Engine:
    """Open an engine (use as a context manager, or close() it).

    Args:
        kind: "inprocess", "local" or "scheduler"; None: "scheduler" where an address is given (argument or
            IBNN_DASK_SCHEDULER), else "local".
        scheduler: address (tcp://host:port) or scheduler-file path of an existing dask cluster.
        n_workers: workers of a LocalCluster (default `default_workers()`); one thread each.
        timeout: seconds to connect and to wait for a first worker.
        sweep_timeout: seconds one sweep may take on a dask engine (None: no limit).
    Returns:
        An Engine; its `info` says what it runs on.
    """
    address = scheduler or os.environ.get(ENV_SCHEDULER) or None
    kind = check_choice("kind", kind or ("scheduler" if address else "local"), KINDS)
    if kind == "inprocess":
        return InProcessEngine()
    if kind == "scheduler":
        if not address:
            raise ValueError(f"kind='scheduler' needs scheduler=ADDRESS or the environment variable {ENV_SCHEDULER}")
        eng = DaskEngine(_connect(address, timeout), "scheduler", timeout=sweep_timeout)
        try:
            eng.verify_code()
        except Exception:
            eng.close()
            raise
        return eng
    if scheduler:
        raise ValueError(f"kind='local' starts its own cluster; scheduler={scheduler!r} is not used by it")
    return DaskEngine(*_local_cluster(n_workers, timeout), timeout=sweep_timeout)


def _local_cluster(n_workers: int | None, timeout: float):
    import dask
    from distributed import Client, LocalCluster

    n = default_workers() if n_workers is None else check_int("n_workers", n_workers, 1)
    # localhost only; ":0": any free port for the scheduler's HTTP server (8787 may be another user's). Without
    # dask's MALLOC_TRIM_THRESHOLD_ for the workers: set, it also fixes glibc's mmap threshold, so every large
    # tensor a point allocates is mapped afresh and its pages faulted in again (system time, in notebook 09)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0", silence_logs=logging.WARNING)
    return Client(cluster, timeout=timeout), "local", cluster


