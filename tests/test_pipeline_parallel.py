"""`make figures --jobs N` (ibnn.repro.schedule): independent notebooks run side by side, a reader starts only once
its producer is committed, the record is the sequential one, a failure lets the running notebooks land, and bad
--jobs values fail before any work. The scheduling itself is tested on fakes (no kernel); three tiny notebooks
(01_a produces, 02_b reads 01_a's result, 03_c is independent) show it on real runs. The notebooks meet through
an event log the test names (T_LOG, outside the record): with T_MEET they each wait until the others named
have started, which only a parallel run can give (a sequential one fails the notebook after its wait)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipeline import _env, _fresh, outputs_intact, pipeline, snapshot

from ibnn.repro import execute, io, schedule
from ibnn.repro import stamps as st

START = "from ibnn.repro import nb\nprofile = nb.start(globals(), {stem!r})\n"
EVENTS = '''import os, time
from pathlib import Path
from ibnn.repro import provenance
STEM = {stem!r}
LOG = Path(os.environ.get("T_LOG", "/nonexistent/log"))

def log(event):
    if os.environ.get("T_LOG"):
        with open(LOG, "a") as fh:
            fh.write(f"{{STEM}} {{event}} {{time.time()!r}}\\n")

def until(cond, what):
    for _ in range(600):
        if cond():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{{STEM}} waited 30 s for {{what}}")

def logged(stem, event):
    return LOG.exists() and f"{{stem}} {{event}} " in LOG.read_text()

log("start")
log("threads" + os.environ.get("OMP_NUM_THREADS", "-"))
meet = os.environ.get("T_MEET", "").split(",")
if STEM in meet:
    for other in meet:
        until(lambda: logged(other, "start"), f"{{other}} to start")
'''
FAILED = ('read = Path(os.environ["IBNN_READ_ROOT"])\n'
          'until(lambda: (read / ".cache/failed/03_c.ipynb").exists()\n'
          '      and not (read / ".cache/staging/03_c").exists(), "the failure of 03_c to be handled")')
NBS = (
    ("01_a", [('profile = "full"', ["parameters"]), (START.format(stem="01_a"), []), (EVENTS.format(stem="01_a"), []),
              ('if os.environ.get("T_AFTER_FAIL"):\n    ' + FAILED.replace("\n", "\n    "), []),
              ("provenance.write_results('01_a', {'mean': 1.5, 'salt': int(os.environ.get('T_SALT', 0))})", []),
              ('log("end")', [])]),
    ("02_b", [('profile = "full"', ["parameters"]), (START.format(stem="02_b"), []), (EVENTS.format(stem="02_b"), []),
              ("a = provenance.load_results('01_a')\n"
               "provenance.write_results('02_b', {'twice': 2 * a['mean'], 'salt': a['salt']})", []),
              ('log("end")', [])]),
    ("03_c", [('profile = "full"', ["parameters"]), (START.format(stem="03_c"), []), (EVENTS.format(stem="03_c"), []),
              ('if os.environ.get("T_FAIL") == STEM:\n    raise RuntimeError("asked to fail")\n'
               "provenance.write_results('03_c', {'c': 1})", []),
              ('log("end")', [])]),
)


@pytest.fixture(scope="module")
def built3_once(tmp_path_factory):
    """01_a, 02_b, 03_c built once (no stamps yet: each waits for all earlier, one at a time)."""
    root, env = _fresh(tmp_path_factory.mktemp("built3"), NBS)
    r = pipeline(env)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture
def built3(built3_once, tmp_path):
    """A copy of the built project, with an event log for its notebooks."""
    root = tmp_path / "repo"
    shutil.copytree(built3_once, root, ignore=shutil.ignore_patterns("__pycache__", "*.lock"))
    return root, dict(_env(root, tmp_path / "scratch"), T_LOG=str(tmp_path / "events.log"))


def events(env) -> dict:
    """{(stem, event): time} from the notebooks' log."""
    rows = [ln.split() for ln in Path(env["T_LOG"]).read_text().splitlines()]
    return {(stem, ev): float(t) for stem, ev, t in rows}


def index_of(stdout: str, needle: str) -> int:
    return next(k for k, ln in enumerate(stdout.splitlines()) if needle in ln)


# -- runs of the tiny notebooks ----------------------------------------------------------------------------------

def test_a_parallel_run_writes_the_sequential_record_and_a_reader_is_decided_after_its_producers_commit(
        built3_once, built3):
    root, env = built3
    env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}     # (make test sets it for its workers)
    r = pipeline(dict(env, T_MEET="01_a,03_c"), "--force", "01_a", "03_c", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    ev = events(env)
    assert ev["01_a", "start"] < ev["03_c", "end"] and ev["03_c", "start"] < ev["01_a", "end"]    # side by side
    # each kernel gets its share of the cores as its thread count
    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert ("01_a", "threads" + share) in ev and ("03_c", "threads" + share) in ev
    assert "running now (at most 2 at a time)" in r.stdout and "(full profile, 2 at a time)" in r.stdout
    # 01_a's outputs came out byte-identical: 02_b, decided once 01_a is committed, stays up to date.
    assert index_of(r.stdout, "01_a: done in") < index_of(r.stdout, "02_b: up to date"), r.stdout
    assert snapshot(root) == snapshot(built3_once)        # results, notebooks and stamps, byte for byte


def test_a_failure_lets_the_running_notebook_land(built3):
    root, env = built3
    before = snapshot(root)
    stamp_c = st.load(root)["03_c"]
    r = pipeline(dict(env, T_MEET="01_a,03_c", T_FAIL="03_c", T_AFTER_FAIL="1", T_SALT="1"),
                 "--force", "01_a", "03_c", "--jobs", "2")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stdout + r.stderr
    assert r.stderr.startswith("ibnn: 03_c failed in cell [") and "RuntimeError: asked to fail" in r.stderr
    assert "03_c: failed; no new notebook starts, waiting for the 1 running to finish" in r.stdout, r.stdout
    assert "01_a: done in" in r.stdout and "02_b: running" not in r.stdout, r.stdout
    assert json.loads((root / "results" / "01_a.json").read_text())["salt"] == 1          # its commit landed
    now, stamps = snapshot(root), st.load(root)
    assert stamps["01_a"]["outputs"]["results/01_a.json"] == io.sha256_file(root / "results" / "01_a.json")
    assert stamps["03_c"] == stamp_c and not (root / ".cache" / "staging" / "03_c").exists()
    assert {k for k in before if now.get(k) != before[k]} == {"results/01_a.json", "results/pipeline_stamps.json"}


def test_a_reader_up_to_date_when_the_run_starts_reruns_on_its_producers_new_output(built3):
    """01_a reruns with a new output: 02_b, up to date when the run starts, reruns on it once it is committed."""
    root, env = built3
    r = pipeline(dict(env, T_SALT="2"), "--force", "01_a", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "02_b: running (full profile): results/01_a.json changed" in r.stdout, r.stdout
    assert index_of(r.stdout, "01_a: done in") < index_of(r.stdout, "02_b: running"), r.stdout
    assert "03_c: up to date" in r.stdout and events(env)["02_b", "start"] > events(env)["01_a", "end"]
    assert json.loads((root / "results" / "02_b.json").read_text())["salt"] == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_kill_of_the_main_process_alone_stops_its_workers_and_leaves_the_record(built3, sig):
    root, env = built3
    before = snapshot(root)
    # SIGINT at its default in the pipeline, as in a terminal: a shell without job control starts a background
    # command (`make test &`) with SIGINT ignored, the pipeline would inherit that and ignore the signal (tried)
    proc = subprocess.Popen([sys.executable, "-m", "ibnn.repro.pipeline", "--force", "--jobs", "2"], cwd=root,
                            env=dict(env, T_MEET="01_a,03_c,never"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = Path(env["T_LOG"])
    for _ in range(600):                 # both notebooks started (and wait for 'never'): interrupt then
        if log.exists() and "01_a start" in log.read_text() and "03_c start" in log.read_text():
            break
        time.sleep(0.05)
    sent = time.time()
    os.kill(proc.pid, sig)               # the main process only: SIGINT, it stops the workers; SIGTERM, it dies
    out, err = proc.communicate(timeout=60)
    seen = log.read_text() if log.exists() else "(no event log)"     # what to look at if this ever fails again
    assert (proc.returncode, "interrupted" in err) == ((130, True) if sig == signal.SIGINT else (-sig, False)), \
        f"{err}\nstdout:\n{out}\nevents (signal sent at {sent!r}):\n{seen}"
    outputs_intact(root)
    assert snapshot(root) == before
    for _ in range(200):                 # the workers, their kernels and the forkserver exit (within seconds)
        if not left_of(proc.pid, root):
            break
        time.sleep(0.05)
    assert not left_of(proc.pid, root)


def left_of(pgid: int, root: Path) -> list[int]:
    """Live processes of a run: in its process group, or a kernel reading its root (kernels get a session each)."""
    left = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            stat = p.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            env = p.joinpath("environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if stat[0] != "Z" and (int(stat[2]) == pgid or f"IBNN_READ_ROOT={root}".encode() in env):
            left.append(int(p.name))
    return left


def test_a_kernel_gets_its_share_of_the_cores_as_threads_unless_the_environment_sets_them(monkeypatch):
    cores = os.cpu_count() or 1
    assert schedule.threads_per_notebook(1) == cores and schedule.threads_per_notebook(2) == max(1, cores // 2)
    assert schedule.threads_per_notebook(10 * cores) == 1
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert execute.thread_env(1) == {"OMP_NUM_THREADS": "1"} and execute.thread_env(None) == {}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")                     # the caller's choice is kept
    assert execute.thread_env(1) == {}


def test_bad_jobs_values_fail_before_any_work_in_one_line(tmp_path):
    root, env = _fresh(tmp_path, NBS[:1])
    r = pipeline(env, "--jobs", "0")
    assert r.returncode == 2 and r.stdout == "" and not (root / "results").exists()
    assert r.stderr == (f"ibnn: --jobs=0: out of range; accepted: an integer >= 1 (more than the {os.cpu_count()} "
                        f"CPU cores runs {os.cpu_count()} at a time)\n")
    with pytest.raises(ValueError, match=r"^--jobs='two': not an integer; accepted: an integer >= 1"):
        schedule.check_jobs("two")
    for bad in ("1.5", "", True, 2.0, None):
        with pytest.raises(ValueError, match=r"not an integer"):
            schedule.check_jobs(bad)
    with pytest.raises(ValueError, match=r"^--jobs=-3: out of range"):
        schedule.check_jobs("-3")
    assert schedule.check_jobs("1") == 1 and schedule.check_jobs(10_000) == os.cpu_count()


# -- the schedule, on fakes ---------------------------------------------------------------------------------------

def test_a_notebook_waits_for_the_earlier_ones_whose_files_it_shares_and_for_all_when_unknown(built3, monkeypatch):
    F, A = schedule.Footprint, schedule.ALL
    feet = [F(set(), {"r/a"}), F(set(), {"r/b"}), F({"r/a"}, {"r/c"}), F({"r/d"}, {"r/e"}), F(set(), {"r/d"}),
            F(set(), {"r/e", "r/f"}), F(A, A), F(set(), {"r/g"}), F({"r/c"}, set())]
    assert schedule.predecessors(feet, 2) == [set(), set(), {0}, set(), {3}, {3}, set(range(6)), {6}, {2, 6}]
    assert schedule.predecessors(feet, 1) == [set(range(j)) for j in range(len(feet))]
    # 2 reads 0's file; 4 writes what 3 read; 5 writes what 3 wrote; 6 is unknown: all wait around it

    root, env = built3                  # a stamp is trusted while the notebook's code is the recorded one
    from ibnn import params
    monkeypatch.setattr(io, "REPO_ROOT", root)
    P, stamps, src = params.load(), st.load(root), root / "notebooks" / "02_b.ipynb"
    assert schedule.footprint(src, stamps["02_b"], root, "full", P) == F({"results/01_a.json"}, {
        "results/02_b.json", "notebooks/02_b.ipynb"})
    for entry, profile in [(None, "full"), ({**stamps["02_b"], "committing": True}, "full"), (stamps["02_b"], "fast"),
                           ({**stamps["02_b"], "source": "0" * 64}, "full")]:
        assert schedule.footprint(src, entry, root, profile, P) == F(A, A)
    with open(root / "ibnn" / "repro" / "provenance.py", "a") as fh:      # a module it imported changed
        fh.write("\n# an edit\n")
    assert schedule.footprint(src, stamps["02_b"], root, "full", P) == F(A, A)


def test_the_committed_record_lets_01_02_03_08_start_together_and_the_rest_wait_for_their_inputs():
    """From the record's stamps (as a FORCE=1 run with unchanged code sees them): who waits for whom."""
    stamps = st.load(io.REPO_ROOT)
    stems = sorted(stamps)
    if len(stems) < 10 or any(e.get("legacy") for e in stamps.values()):
        pytest.skip("the committed record predates the stamp format")
    feet = [schedule.Footprint(set(stamps[s]["deps"]["inputs"]), set(stamps[s]["outputs"])) for s in stems]
    waits = {stems[j][:2]: sorted(stems[i][:2] for i in p) for j, p in enumerate(schedule.predecessors(feet, 2))}
    assert {k for k, v in waits.items() if not v} >= {"01", "02", "03", "08"}, waits
    assert waits["04"] == waits["05"] == waits["06"] == waits["09"] == ["03"] and waits["07"] == ["06"], waits
    assert set(waits["10"]) >= {"03", "05", "06", "07", "08", "09"}, waits


class FakeRunner:
    """Notebooks that take `seconds[i]` of simulated time; `fail` fails; records what ran when."""

    def __init__(self, seconds, fail=()):
        self.seconds, self.fail, self.now, self.running, self.log, self.stopped = seconds, set(fail), 0.0, {}, [], 0

    @property
    def busy(self):
        return len(self.running)

    def start(self, i):
        self.running[i] = self.now + self.seconds[i]
        self.log.append(("start", i, self.now, len(self.running)))

    def wait(self):
        i = min(self.running, key=lambda k: (self.running[k], k))
        self.now = self.running.pop(i)
        return (i, None, RuntimeError(f"{i} failed")) if i in self.fail else (i, f"staged {i}", None)

    def stop(self):
        self.stopped += 1


class Hooks:
    def __init__(self, runner, stale=lambda i: True, interrupt_at=None):
        self.runner, self.stale, self.interrupt_at, self.commits, self.failed = runner, stale, interrupt_at, [], []

    def decide(self, i):
        return self.stale(i)

    def started(self, i, busy):
        pass

    def commit(self, i, staged):
        if i == self.interrupt_at:
            raise KeyboardInterrupt
        self.commits.append((i, staged, self.runner.now))

    def fail(self, i, exc, busy):
        self.failed.append((i, busy))


def test_drive_runs_at_most_n_and_starts_a_reader_only_after_its_producers_commit():
    preds, secs = [set(), set(), {0}, {0}, {2, 3}], [1.0, 5.0, 2.0, 2.0, 1.0]
    runner = FakeRunner(secs)
    hooks = Hooks(runner)
    schedule.drive(preds, 2, schedule.chain_seconds(preds, secs), hooks, runner)
    starts = {i: t for _, i, t, _ in runner.log}
    done = {i: t for i, _, t in hooks.commits}
    assert max(n for *_, n in runner.log) == 2 and sorted(done) == [0, 1, 2, 3, 4]
    assert all(starts[j] >= done[i] for j, p in enumerate(preds) for i in p)
    assert schedule.chain_seconds(preds, secs) == [4.0, 5.0, 3.0, 3.0, 1.0]
    assert starts[1] == 0.0 and starts[0] == 0.0            # the longest chains first
    runner = FakeRunner(secs)                                # one job: file order, one at a time
    schedule.drive(schedule.predecessors([None] * 5, 1), 1, [0.0] * 5, Hooks(runner), runner)
    assert [i for _, i, *_ in runner.log] == [0, 1, 2, 3, 4] and max(n for *_, n in runner.log) == 1

    # Up to date (decide False): done at once, nothing started, its readers free to go.
    runner = FakeRunner(secs)
    schedule.drive(preds, 2, [0.0] * 5, Hooks(runner, stale=lambda i: i != 0), runner)
    assert [i for _, i, *_ in runner.log][:2] == [1, 2] and 0 not in {i for _, i, *_ in runner.log}


def test_drive_after_a_failure_starts_nothing_commits_the_running_and_raises_the_failure():
    preds, secs = [set(), set(), {0}, set()], [1.0, 3.0, 1.0, 1.0]
    runner = FakeRunner(secs, fail={0})
    hooks = Hooks(runner)
    with pytest.raises(RuntimeError, match="^0 failed$"):
        schedule.drive(preds, 2, [0.0] * 4, hooks, runner)
    assert [i for _, i, *_ in runner.log] == [0, 1] and hooks.failed == [(0, 1)]
    assert [i for i, *_ in hooks.commits] == [1] and runner.stopped == 0
    runner = FakeRunner(secs)                                # Ctrl-C while committing: the workers are stopped
    with pytest.raises(KeyboardInterrupt):
        schedule.drive(preds, 2, [0.0] * 4, Hooks(runner, interrupt_at=0), runner)
    assert runner.stopped == 1


def test_workers_bring_back_what_execute_returns_and_its_failure(monkeypatch, tmp_path):
    from ibnn.repro.execute import NotebookFailed, Staged
    monkeypatch.setattr(schedule, "PRELOAD", [])
    staged = Staged(tmp_path / "stage", tmp_path / "stage" / "x.ipynb", {"inputs": {"results/a.json": "0" * 64}})
    w = schedule.Workers(Staged, lambda i: (staged.stage, staged.notebook, staged.manifest))
    w.start(0)
    assert w.busy == 1 and w.wait() == (0, staged, None) and w.busy == 0
    fails = "from ibnn.repro.execute import NotebookFailed\nraise NotebookFailed('notebook {} failed in cell [3]')"
    w = schedule.Workers(exec, lambda i: (fails.format(i),))     # exec: a function the worker can import
    w.start(4)
    i, got, exc = w.wait()
    assert (i, got, type(exc), str(exc)) == (4, None, NotebookFailed, "notebook 4 failed in cell [3]")
    assert "in _worker" in str(exc.__cause__) and "line 2, in <module>" in str(exc.__cause__)    # its traceback


def test_readme_run_times_say_how_many_notebooks_ran_at_a_time(tmp_path):
    from ibnn.repro import pipeline as pl
    readme = tmp_path / "README.md"
    readme.write_text(f"{pl.TIMES_START}\n{pl.TIMES_END}\n")
    timings = {"01_a": {"seconds": 10.0, "profile": "full", "jobs": 2}, "02_b": {"seconds": 30.0, "profile": "full",
               "jobs": 2}, pl.WHOLE_RUN: {"seconds": 32.0, "profile": "full", "jobs": 2}}
    assert pl.record_times(tmp_path, ["01_a", "02_b"], timings)
    text = readme.read_text()
    assert "| all (summed; they overlapped) | 40 s |\n| the last run of every notebook, 2 at a time | 32 s |" in text
    assert f"on {os.cpu_count()} CPU cores, 2 notebooks at a time (each time measured under its neighbours' " \
           f"load), load average" in text
    timings["02_b"] = {"seconds": 20.0, "profile": "full"}           # rerun alone (or timed before --jobs)
    del timings[pl.WHOLE_RUN]
    assert pl.record_times(tmp_path, ["01_a", "02_b"], timings)
    assert ("1 or 2 notebooks at a time (as each notebook's last run did; each time measured under its neighbours' "
            "load), load average") in readme.read_text()


def test_make_test_runs_nbval_in_groups_that_touch_none_of_each_others_files():
    """The Makefile's nbval phases (two groups at the same time, each in file order; then NBVAL_LAST): together
    every notebook once; by the record's stamps no notebook of one group of a phase reads or writes a file the other
    group writes, and every file a notebook reads that another notebook writes is written in an earlier phase or
    earlier in its own group."""
    text = (io.REPO_ROOT / "Makefile").read_text()
    names = ("NBVAL_1A", "NBVAL_1B", "NBVAL_2A", "NBVAL_2B", "NBVAL_LAST")
    groups = {k: text.split(f"\n{k} := ", 1)[1].split("\n", 1)[0].split() for k in names}
    stems = sorted(p.stem for p in (io.REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(sum(groups.values(), [])) == stems and all(g == sorted(g) for g in groups.values()), groups
    stamps = st.load(io.REPO_ROOT)
    if any(s not in stamps or stamps[s].get("legacy") for s in stems):
        pytest.skip("the committed record predates the stamp format")
    feet = {s: schedule.Footprint(set(stamps[s]["deps"]["inputs"]), set(stamps[s]["outputs"])) for s in stems}
    for a_name, b_name in (("NBVAL_1A", "NBVAL_1B"), ("NBVAL_2A", "NBVAL_2B")):
        clash = [(a, b) for a in groups[a_name] for b in groups[b_name]
                 if schedule._conflict(feet[a], feet[b]) or schedule._conflict(feet[b], feet[a])]
        assert not clash, clash
    order = [groups["NBVAL_1A"], groups["NBVAL_1B"], groups["NBVAL_2A"], groups["NBVAL_2B"], groups["NBVAL_LAST"]]
    phase = {s: (0 if s in order[0] + order[1] else 1 if s in order[2] + order[3] else 2) for s in stems}
    for reader in stems:
        for writer in stems:
            if writer == reader or not (feet[reader].inputs & feet[writer].outputs):
                continue
            same = next(g for g in order if reader in g)
            earlier = phase[writer] < phase[reader] or (writer in same and same.index(writer) < same.index(reader))
            assert earlier, f"{reader} reads what {writer} writes, but {writer} does not run before it"
