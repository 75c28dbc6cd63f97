"""Which notebooks `make figures --jobs N` may run at the same time, and the worker processes that run them.

The same record as one at a time. Two notebooks conflict when one may read what the other writes or both may
write the same file: the earlier one's recorded outputs (its stamp) meet the later one's recorded inputs (the
producer and its reader), the later one's outputs meet the earlier one's inputs (the earlier one, run first
in file order, must read the old file), or their outputs meet (the later one's file must win). A notebook
starts only when every earlier notebook it conflicts with has finished and been committed. A stamp is trusted
only while the code that decided what the notebook reads and writes is the recorded one: the stamp exists and
finished, lists its outputs, and the profile, the source and every module, parameter entry and package data
file the run used are unchanged. Otherwise the notebook may read and write anything: it conflicts with every
other one (it waits for all earlier notebooks, all later ones wait for it). That costs little: in a run after
a code edit the notebooks that run are mostly the edited ones and their readers, which wait for each other
anyway; a FORCE=1 run on unchanged code trusts every stamp. Notebooks that do not conflict touch disjoint
files, and the stamps and timings are written by the main process alone, one commit at a time, so the order
they finish in changes nothing. A notebook's staleness is decided when its conflicting predecessors have
committed, as the sequential loop decides it: outputs that come out byte-identical still leave their readers
up to date. Outside this argument: a notebook whose set of files depends on its data, not on its code.

Order: of the notebooks free to start, the one heading the longest chain of last-run times goes first (the
training, then what reads its checkpoint), ties in file order. With one job every notebook waits for all
earlier ones and runs in the main process: exactly the sequential run.

Why processes, not threads: papermill drives each kernel through nbclient, an asyncio event loop and zmq
sockets per execution, in a process-wide jupyter_client; running two in threads of one process shares what
was not written to be shared. Each notebook runs instead in its own process, forked from a forkserver (a
clean server that imported papermill once, after ibnn.repro.lean: a fork costs milliseconds and copies none of
the main process's state). What `execute` returns (`Staged`: paths and the manifest, plain data) comes back pickled
through a pipe; only the main process commits. Signals: a worker turns the first SIGINT or SIGTERM into
KeyboardInterrupt inside papermill (as Ctrl-C does in the sequential run: nbclient shuts its kernel down) and
ignores the next; on KeyboardInterrupt the main process sends each running worker SIGTERM (a Ctrl-C on the
terminal reached them already; `kill -INT` of the main process alone did not), waits for them and re-raises.
A worker whose main process died unannounced (`kill` or SIGKILL of it alone) sees its pipe close and stops
itself the same way. Nothing is committed half-way; the next run removes their staging folders.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import re
import signal
import threading
import traceback
from multiprocessing.connection import wait as _wait_any
from pathlib import Path
from typing import NamedTuple

from . import stamps as st
from .execute import NotebookFailed

ALL = None                      # "may touch any file"
PRELOAD = ["ibnn.repro.lean", "nbformat", "papermill", "ibnn.repro.execute"]   # lean before nbformat loads
STOP_GRACE_S = 30.0             # how long an interrupted worker gets to shut its kernel down


def check_jobs(value) -> int:
    """The number of notebooks run at once: an integer >= 1 (an int, or its text on the command line), capped at
    the CPU count. A ValueError (one line naming --jobs, the value and the accepted range) otherwise."""
    cores = os.cpu_count() or 1
    accepted = f"accepted: an integer >= 1 (more than the {cores} CPU cores runs {cores} at a time)"
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"--jobs={value!r}: not an integer; {accepted}")
    if value < 1:
        raise ValueError(f"--jobs={value}: out of range; {accepted}")
    return min(value, cores)


def threads_per_notebook(jobs: int) -> int:
    """The intra-op threads each notebook's kernel gets when `jobs` run at once: the CPU cores shared out
    (cores // jobs, at least 1). Two notebooks of two threads each on two cores spend their time in OpenMP's
    barrier waits (05 beside 08 ran faster, and with less CPU, on one thread each). The results do not depend on it
    (every notebook's results are identical on one and two threads)."""
    return max(1, (os.cpu_count() or 1) // max(1, int(jobs)))


class Footprint(NamedTuple):
    """The files a notebook may read and write (ALL: any)."""
    inputs: set | None
    outputs: set | None


def footprint(src: Path, entry: dict | None, root: Path, profile: str, P) -> Footprint:
    """What the notebook's stamp says it reads and writes while that holds, else (ALL, ALL) (module docstring)."""
    if (not entry or entry.get("legacy") or entry.get("committing") or not entry.get("outputs")
            or entry.get("profile") != profile or entry.get("source") != st.notebook_digest(src)):
        return Footprint(ALL, ALL)
    deps = entry.get("deps", {})
    code = {k: deps.get(k, {}) for k in ("modules", "params", "package_data")}     # what decided its reads
    if st._dependency_reasons(code, root, P):
        return Footprint(ALL, ALL)
    return Footprint(set(deps.get("inputs", {})), set(entry["outputs"]))


def _meet(a: set | None, b: set | None) -> bool:
    return a is ALL or b is ALL or bool(a & b)


def _conflict(early: Footprint, late: Footprint) -> bool:
    """Whether `late` must wait for `early` (module docstring)."""
    return _meet(early.outputs, late.inputs) or _meet(early.inputs, late.outputs) or _meet(early.outputs, late.outputs)


def predecessors(feet: list[Footprint], jobs: int) -> list[set[int]]:
    """For each notebook (file order), the earlier ones it must wait for: those it conflicts with (module
    docstring); with one job, all earlier ones."""
    if jobs == 1:
        return [set(range(j)) for j in range(len(feet))]
    return [{i for i in range(j) if _conflict(feet[i], feet[j])} for j in range(len(feet))]


def chain_seconds(preds: list[set[int]], seconds: list[float]) -> list[float]:
    """For each notebook, its own seconds plus the longest chain of seconds of the notebooks that wait on it."""
    chain = [0.0] * len(preds)
    for i in reversed(range(len(preds))):
        chain[i] = seconds[i] + max((chain[j] for j in range(i + 1, len(preds)) if i in preds[j]), default=0.0)
    return chain


def drive(preds: list[set[int]], jobs: int, rank: list[float], hooks, runner) -> None:
    """Run the notebooks: `hooks.decide(i)` once its predecessors are done (False: nothing to run, done); when
    True, `hooks.started(i, busy)` and `runner.start(i)` while fewer than `jobs` run, the highest `rank` first;
    `hooks.commit(i, staged)` in completion order. After a failure (`hooks.fail(i, exc, busy)`) nothing new
    starts; the running ones finish and commit, then the first failure is raised. On any exception in the main
    process (KeyboardInterrupt) the running workers are stopped first."""
    done, waiting, queue, failures = set(), set(range(len(preds))), [], []
    try:
        while True:
            released = True
            while released and not failures:
                released = [i for i in sorted(waiting) if preds[i] <= done][:1]
                for i in released:
                    waiting.discard(i)
                    (queue.append if hooks.decide(i) else done.add)(i)
            while queue and runner.busy < jobs and not failures:
                i = max(queue, key=lambda k: (rank[k], -k))
                queue.remove(i)
                hooks.started(i, runner.busy + 1)
                runner.start(i)
            if not runner.busy:
                break
            i, staged, exc = runner.wait()
            if exc is None:
                hooks.commit(i, staged)
                done.add(i)
            else:
                failures.append(exc)
                hooks.fail(i, exc, runner.busy)
    except BaseException:
        runner.stop()
        raise
    if failures:
        raise failures[0]


class InProcess:
    """One notebook at a time in the main process (jobs=1): `fn(i)` runs when waited for."""

    def __init__(self, fn):
        self.fn, self.started = fn, []

    @property
    def busy(self) -> int:
        return len(self.started)

    def start(self, i: int) -> None:
        """Queue notebook i (it runs in `wait`)."""
        self.started.append(i)

    def wait(self):
        """Run the started notebook: (i, what fn returned, None) or (i, None, the exception)."""
        i = self.started.pop(0)
        try:
            return i, self.fn(i), None
        except Exception as exc:            # noqa: BLE001 (drive raises it after the running ones finish)
            return i, None, exc

    def stop(self) -> None:
        """Nothing runs outside the main process."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (its __cause__ in the main process)."""


def _interrupt(signum, frame):
    """SIGINT or SIGTERM in a worker: KeyboardInterrupt once (papermill then shuts its kernel down), then ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _watch_main(conn, sent: threading.Event) -> None:
    """A worker whose main process died without stopping it (`kill` or SIGKILL of the main process alone: its end
    of the pipe closes) stops its notebook instead of running on unseen."""
    try:
        conn.poll(None)                                  # the main process never writes: this returns at EOF
    except OSError:
        pass
    if not sent.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(conn, fn, args) -> None:
    """In the worker process: fn(*args) and its result (or exception) through the pipe."""
    sent = threading.Event()
    try:
        signal.signal(signal.SIGINT, _interrupt)        # Ctrl-C reaches the group; the main process sends SIGTERM
        signal.signal(signal.SIGTERM, _interrupt)
        threading.Thread(target=_watch_main, args=(conn, sent), daemon=True).start()
        result = (fn(*args), None, None)
    except KeyboardInterrupt:
        return                                           # the main process is stopping: send nothing
    except BaseException as exc:                         # noqa: BLE001 (sent to the main process)
        result = (None, exc, traceback.format_exc())
    sent.set()
    try:
        try:
            conn.send(result)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:     # an exception that does not pickle
            conn.send((None, RuntimeError(f"{type(result[1]).__name__}: {result[1]} ({exc})"), result[2]))
    except OSError:
        pass                                             # the main process is gone: nobody to tell


class Workers:
    """One worker process per notebook, forked from a forkserver that preloaded papermill (module docstring);
    `args(i)` gives the arguments of `fn` for notebook i, `label(i)` its name in messages."""

    def __init__(self, fn, args, label=lambda i: f"notebook {i + 1}"):
        self.fn, self.args, self.label, self.running = fn, args, label, {}
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)

    @property
    def busy(self) -> int:
        return len(self.running)

    def start(self, i: int) -> None:
        """Start notebook i in a new worker process."""
        r, w = self.ctx.Pipe(duplex=True)                # duplex: the worker sees EOF when the main process dies
        proc = self.ctx.Process(target=_worker, args=(w, self.fn, self.args(i)), name=f"ibnn-notebook-{i}")
        proc.start()
        w.close()                                        # the worker holds the only other end: EOF when it dies
        self.running[i] = (proc, r)

    def wait(self):
        """Block until a worker finishes: (i, what fn returned, None) or (i, None, the exception)."""
        by_conn = {r: i for i, (_, r) in self.running.items()}
        r = _wait_any(list(by_conn))[0]
        i = by_conn[r]
        proc, _ = self.running.pop(i)
        try:
            staged, exc, tb = r.recv()
        except EOFError:
            proc.join()
            staged, exc, tb = None, NotebookFailed(f"{self.label(i)}: its worker process ended without a result "
                                                   f"(exit status {proc.exitcode}); the record is unchanged"), None
        r.close()
        proc.join()
        if tb:
            exc.__cause__ = RemoteTraceback(tb)
        return i, staged, exc

    def stop(self) -> None:
        """Interrupt the running workers (SIGTERM: KeyboardInterrupt in papermill), wait for them; kill laggards."""
        for proc, _ in self.running.values():
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        for proc, r in self.running.values():
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
            r.close()
        self.running.clear()
