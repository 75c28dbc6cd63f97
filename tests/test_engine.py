"""The sweep engine: in-process reference, a LocalCluster, and a real scheduler with two workers (dask's CLI as
subprocesses on localhost) give identical results; a killed worker loses no point; an interrupted sweep
resumes computing only what is missing; seeds follow the content of a point, never its position."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ibnn.explore import engine as E
from ibnn.explore import keys, toys
from ibnn.explore.points import ParamPoint

REPO = Path(__file__).resolve().parents[1]


def squares(n, sleep=0.0, start=0):
    return [{"x": float(i), "sleep": sleep} for i in range(start, start + n)]


@pytest.fixture(autouse=True)
def _no_cluster_from_environment(monkeypatch):
    monkeypatch.delenv(E.ENV_SCHEDULER, raising=False)
    monkeypatch.delenv(toys.INTERRUPT_ENV, raising=False)


# --- in-process: order, seeds, cache, failures -----------------------------------------------------------
def test_results_come_back_in_input_order_and_seeds_follow_content():
    pts = squares(8)
    ref = E.run_sweep(toys.noisy_square, pts, engine="inprocess")
    rev = E.run_sweep(toys.noisy_square, pts[::-1], engine="inprocess")
    assert ref.results == rev.results[::-1]
    assert [r["square"] for r in ref.results] == [p["x"] ** 2 for p in pts]
    alone = E.run_sweep(toys.noisy_square, [pts[3]], engine="inprocess")
    assert alone.results[0] == ref.results[3]                      # a point's figures do not depend on its company
    assert len(set(ref.seeds)) == len(pts)
    other = E.run_sweep(toys.noisy_square, pts, engine="inprocess", seed=1)
    assert all(a["draw"] != b["draw"] for a, b in zip(ref.results, other.results))
    common = E.run_sweep(toys.noisy_square, pts, engine="inprocess", seed_keys=())
    assert len(set(common.seeds)) == 1


def test_duplicated_points_are_computed_once(tmp_path):
    pts = squares(3) + squares(3)
    r = E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path)
    assert r.n_computed == 3 and r.results[:3] == r.results[3:]
    assert E.PointCache(tmp_path).count() == 3


def test_interrupted_sweep_resumes_with_only_the_missing_points(tmp_path, monkeypatch):
    pts = squares(10)
    reference = E.run_sweep(toys.noisy_square, pts, engine="inprocess").results
    monkeypatch.setenv(toys.INTERRUPT_ENV, "6")                 # Ctrl-C while point x=6 runs
    with pytest.raises(toys.Interrupt):
        E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path)
    assert E.PointCache(tmp_path).count() == 6
    monkeypatch.delenv(toys.INTERRUPT_ENV)
    resumed = E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path)
    assert (resumed.n_cached, resumed.n_computed) == (6, 4)
    assert resumed.results == reference
    assert resumed.workers[:6] == [None] * 6                        # taken from the cache, not recomputed
    larger = E.run_sweep(toys.noisy_square, squares(15), engine="inprocess", cache_dir=tmp_path)
    assert (larger.n_cached, larger.n_computed) == (10, 5)
    again = E.run_sweep(toys.noisy_square, pts, engine="local", cache_dir=tmp_path)
    assert again.engine.kind == "cache" and again.n_computed == 0   # nothing missing: no cluster is started


def test_code_version_and_seed_are_part_of_the_key(tmp_path):
    pts = squares(4)
    E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path, code_version="v1")
    same = E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path, code_version="v1")
    new_code = E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path, code_version="v2")
    new_seed = E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path, code_version="v1",
                           seed=7)
    assert same.n_cached == 4 and new_code.n_computed == 4 and new_seed.n_computed == 4


def test_the_default_cache_folder_lies_in_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("IBNN_CACHE_DIR", str(tmp_path))
    assert E.sweep_cache_dir("09_sobol") == tmp_path / "sweeps" / "09_sobol"
    with pytest.raises(ValueError, match="plain folder"):
        E.sweep_cache_dir("../x")


def test_default_code_version_covers_the_package():
    files = E.package_files()
    assert any(f.name == "engine.py" for f in files) and any(f.suffix == ".toml" for f in files)
    assert E.default_code_version(toys.noisy_square) == E.code_version(files)


def test_a_failed_point_is_reported_with_the_point(tmp_path):
    pts = squares(5)
    pts[2] = {**pts[2], "fail": True}
    with pytest.raises(E.SweepError) as err:
        E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path)
    f = err.value.failures[0]
    assert f.index == 2 and f.point["x"] == 2.0 and "asked to fail" in f.error and "Traceback" in f.traceback
    assert "point 2" in str(err.value)
    r = E.run_sweep(toys.noisy_square, pts, engine="inprocess", cache_dir=tmp_path, errors="collect")
    assert r.results[2] is None and [x.index for x in r.failures] == [2]
    assert all(r.results[i]["square"] == i ** 2 for i in (0, 1, 3, 4))


def test_bad_points_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="not finite"):
        E.run_sweep(toys.noisy_square, [{"x": 1.0}, {"x": float("nan")}], engine="inprocess", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="values must be"):
        E.run_sweep(toys.noisy_square, [{"x": [1.0]}], engine="inprocess")
    with pytest.raises(ValueError, match="lambda"):
        E.run_sweep(lambda p, s: {}, [{"x": 1.0}], engine="inprocess", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="kind"):
        E.open_engine("cloud")
    with pytest.raises(ValueError, match=E.ENV_SCHEDULER):
        E.open_engine("scheduler")
    assert E.PointCache(tmp_path).count() == 0


def test_param_point_replaces_parameters_and_passes_choices():
    from ibnn import params

    P = params.load()
    fn = ParamPoint(P, _vdd_figure)
    out = E.run_sweep(fn, [{"vdd": 1.1, "scope": "macro"}], engine="inprocess").results[0]
    assert out == {"vdd": 1.1, "scope": "macro", "c_bl": P["c_bl"]}
    assert fn.fingerprint() != ParamPoint(P.replace(vdd=1.3), _vdd_figure).fingerprint()
    with pytest.raises(E.SweepError, match="vdd"):
        E.run_sweep(fn, [{"vdd": -1.0}], engine="inprocess")


def _vdd_figure(P, seed, scope):
    return {"vdd": P["vdd"], "scope": scope, "c_bl": P["c_bl"]}


# --- a LocalCluster --------------------------------------------------------------------------------------
def test_local_cluster_gives_the_inprocess_results(monkeypatch):
    # one worker keeps `make test` short (start-up is most of the cost); two workers: the CLI cluster below
    monkeypatch.setenv(E.ENV_WORKERS, "1")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)     # (a cluster started before may have set it)
    pts = squares(12)
    ref = E.run_sweep(toys.noisy_square, pts, engine="inprocess")
    with E.open_engine() as eng:                                # the default engine: a LocalCluster
        r = E.run_sweep(toys.noisy_square, pts, chunk_size=5, engine=eng)
        # its workers run without dask's MALLOC_TRIM_THRESHOLD_ (which maps every large tensor afresh)
        trim = eng.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert r.results == ref.results
    assert (r.engine.kind, r.engine.n_workers, r.engine.n_threads) == ("local", 1, 1)
    assert list(trim.values()) == [None]


# --- a real scheduler and two workers, dask's CLI as subprocesses ----------------------------------------
class DaskProcesses:
    """`dask scheduler` and `dask worker` subprocesses on localhost, each in its own process group."""

    def __init__(self, root: Path):
        self.root, self.workers, self.scheduler = root, [], None
        self.file = root / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                    "OMP_NUM_THREADS": "1"}

    def _spawn(self, *args, log: str) -> subprocess.Popen:
        out = open(self.root / log, "wb")
        return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=self.root, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, n_workers: int, timeout: float = 20.0) -> str:
        # --idle-timeout: should this process be killed before its fixture stops them, the scheduler still ends
        # (and its workers 20 s after it: --death-timeout)
        self.scheduler = self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                     "--idle-timeout", "60", "--scheduler-file", str(self.file),
                                     log="scheduler.log")
        _wait(lambda: self.file.exists(), timeout, "the scheduler file", self.root / "scheduler.log")
        for _ in range(n_workers):
            self.add_worker()
        return json.loads(self.file.read_text())["address"]

    def add_worker(self) -> subprocess.Popen:
        i = len(self.workers)
        p = self._spawn("worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--nworkers", "1",
                        "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}",
                        "--death-timeout", "20", "--local-directory", str(self.root / f"w{i}"), log=f"w{i}.log")
        self.workers.append(p)
        return p

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.workers if p.poll() is None]

    def ensure_workers(self, n: int) -> None:
        """Start workers until n are alive (a test may have killed one)."""
        while len(self.alive()) < n:
            self.add_worker()

    def kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the workers, then the scheduler (workers first: a worker that outlives its scheduler tries to
        reconnect for 30 s); each group gets 3 s, then SIGKILL."""
        for group in (self.workers, [self.scheduler]):
            live = [p for p in group if p is not None and p.poll() is None]
            for p in live:
                os.killpg(p.pid, signal.SIGTERM)
            t_end = time.monotonic() + 3.0
            for p in live:
                try:
                    p.wait(timeout=max(0.1, t_end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.kill(p)


def _wait(cond, timeout: float, what: str, log: Path | None = None) -> None:
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def dask_cli(tmp_path_factory):
    """A scheduler and two workers for the tests of this module; all stopped, and checked gone, at the end."""
    procs = DaskProcesses(tmp_path_factory.mktemp("dask"))
    try:
        address = procs.start(n_workers=2)
        yield procs, address
    finally:
        procs.stop()
    assert all(p.poll() is not None for p in procs.workers + [procs.scheduler])   # nothing left running


def _engine(procs, address):
    procs.ensure_workers(2)
    eng = E.open_engine(scheduler=address, timeout=20, sweep_timeout=60)
    eng.client.wait_for_workers(2, timeout=20)
    return eng


def test_real_cluster_gives_the_inprocess_results(dask_cli, monkeypatch):
    procs, address = dask_cli
    pts = squares(16, sleep=0.05)
    ref = E.run_sweep(toys.noisy_square, pts, engine="inprocess")
    with _engine(procs, address) as eng:
        r = E.run_sweep(toys.noisy_square, pts, engine=eng)
    assert r.results == ref.results
    assert (r.engine.kind, r.engine.n_workers) == ("scheduler", 2)
    assert len({w for w in r.workers}) == 2                         # both workers took points
    assert address.startswith("tcp://127.0.0.1:")
    monkeypatch.setenv(E.ENV_SCHEDULER, str(procs.file))           # the same through the environment, by file
    via_env = E.run_sweep(toys.noisy_square, pts[:4])
    assert via_env.results == ref.results[:4] and via_env.engine.address == address


def test_sweeps_submitted_together_give_what_they_give_one_after_the_other(dask_cli):
    from ibnn.explore.paperstudy import together
    procs, address = dask_cli
    one, many = squares(1, sleep=0.2, start=100), squares(10, sleep=0.05)
    ref = [E.run_sweep(toys.noisy_square, p, engine="inprocess").results for p in (one, many)]
    with _engine(procs, address) as eng:
        got = together(eng, lambda: E.run_sweep(toys.noisy_square, one, engine=eng).results,
                       lambda: E.run_sweep(toys.noisy_square, many, engine=eng).results)
    assert got == ref


def test_workers_with_other_code_are_refused(dask_cli, monkeypatch):
    procs, address = dask_cli
    procs.ensure_workers(2)
    files = E.package_files()
    monkeypatch.setattr(keys, "package_files", lambda: files[:-1])    # this client now "runs other code"
    with pytest.raises(ValueError, match="another version of ibnn"):
        E.open_engine(scheduler=address, timeout=20)


def test_a_killed_worker_loses_no_point(dask_cli, tmp_path):
    procs, address = dask_cli
    pts = squares(24, sleep=0.05)
    cache = E.PointCache(tmp_path / "cache")
    ref = E.run_sweep(toys.noisy_square, pts, engine="inprocess")
    victim = procs.alive()[0]
    state = {}
    killer = threading.Thread(target=_kill_after, args=(procs, victim, cache, 6, state), daemon=True)
    with _engine(procs, address) as eng:
        killer.start()
        r = E.run_sweep(toys.noisy_square, pts, engine=eng, cache_dir=cache.root)
        killer.join(timeout=30)
        survivors = eng.refresh_info().n_workers
    assert "error" not in state, state.get("error")
    assert victim.returncode == -signal.SIGKILL and survivors == 1
    assert state["done_at_kill"] < len(pts)                          # killed mid-sweep
    assert r.results == ref.results and not r.failures and r.n_computed == len(pts)
    assert cache.count() == len(pts)
    assert str(victim.pid) in {w.split(":")[1] for w in r.workers}   # the killed worker had done work
    again = E.run_sweep(toys.noisy_square, pts, engine="scheduler", cache_dir=cache.root)
    assert again.n_cached == len(pts) and again.engine.kind == "cache"


def test_a_sweep_cut_short_on_the_cluster_resumes(dask_cli, tmp_path):
    procs, address = dask_cli
    pts = squares(16, sleep=0.05)
    by_x = {"seed_keys": ("x",)}                                    # seeds from x alone: the reference need not sleep
    ref = E.run_sweep(toys.noisy_square, squares(16), engine="inprocess", **by_x)
    cut = pts[:-1] + [{**pts[-1], "fail": True}]                     # the last point (scheduled last) stops the sweep
    with _engine(procs, address) as eng:
        with pytest.raises(E.SweepError, match="point 15"):
            E.run_sweep(toys.noisy_square, cut, engine=eng, cache_dir=tmp_path, **by_x)
        done = E.PointCache(tmp_path).count()
        assert 0 < done < len(pts)
        r = E.run_sweep(toys.noisy_square, pts, engine=eng, cache_dir=tmp_path, **by_x)
    assert (r.n_cached, r.n_computed) == (done, len(pts) - done) and r.results == ref.results


def _kill_after(procs, victim, cache, n_done, state):
    try:
        _wait(lambda: cache.count() >= n_done, 20, f"{n_done} finished points")
        state["done_at_kill"] = cache.count()
        procs.kill(victim)
    except Exception as exc:                                         # reported by the test, not lost
        state["error"] = repr(exc)
