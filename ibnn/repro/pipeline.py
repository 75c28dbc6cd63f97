"""`make figures`: run the notebooks in order through papermill, only those whose inputs changed, atomically.

Where it writes. The full profile builds the committed record in the repository: results/ (with checkpoints/),
figures/, the executed notebooks/ and the README claims table. `FAST=1` builds the same into scratch/fast/
(git-ignored). IBNN_OUTPUT_ROOT=<dir> names another root explicitly (IBNN_OUTPUT_ROOT=. points a quick run at
the repository on purpose).

Preflight (`ibnn.repro.preflight`), before any notebook runs: the device request, the parameter files (strictly),
the record's sha256s; each problem is one line naming the file and what to do (exit status 2).

When a notebook reruns (`ibnn.repro.stamps`): when its source, an ibnn module it imported, a parameter entry it
read, a package data file it opened or an input it loaded changed (recorded by `ibnn.repro.manifest` at the end
of its last run), when the profile changed, or when one of its outputs is missing or its executed notebook was
changed outside the pipeline. A notebook whose outputs come out byte-identical stops the chain.

How (`ibnn.repro.execute`): each notebook writes into a staging folder; only when it finished, its figures are
checked to be shown in the notebook, its outputs move into place and its stamp is written. A failed or
interrupted notebook leaves the record exactly as it was (the failed notebook is kept in .cache/failed/).

At the same time (`ibnn.repro.schedule`; `--jobs N`, `make figures JOBS=N`, default 2, at most the CPU count):
notebooks that touch no file of each other's (their recorded inputs and outputs) run side by side, each in its
own process; a notebook starts only once the earlier ones it may read from have been committed, and the main
process commits one at a time, so the record is the one the sequential run (`--jobs 1`) writes. Each kernel gets
its share of the cores as its thread count (`schedule.threads_per_notebook`: one each for two on two cores). After a
failure no notebook starts; the running ones finish and are committed, then the run fails as one would alone.

Usage: python -m ibnn.repro.pipeline [--fast] [--force [STEM ...]] [--only STEM ...] [--dry-run] [--jobs N]
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from . import io, schedule
from . import stamps as st
from .preflight import PreflightError, preflight, shown

DEFAULT_JOBS = 2
WHOLE_RUN = "_whole_run"                 # the timings' entry of the last run that ran every notebook


def notebooks_dir() -> Path:
    """The notebooks' sources (IBNN_NOTEBOOKS_DIR overrides it; the pipeline's tests use small ones)."""
    env = os.environ.get("IBNN_NOTEBOOKS_DIR")
    return Path(env).resolve() if env else io.REPO_ROOT / "notebooks"


def notebooks() -> list[Path]:
    """The numbered notebooks NN_*.ipynb, in order."""
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def root_for(fast: bool) -> Path:
    """The root a run builds: IBNN_OUTPUT_ROOT, else the repository (full) or scratch/fast (FAST=1)."""
    env = os.environ.get("IBNN_OUTPUT_ROOT")
    if env:
        return Path(env).resolve()
    return io.scratch_root("fast") if fast else io.REPO_ROOT


def clean_temporaries(root: Path) -> list[Path]:
    """Remove what a killed run left (SIGKILL skips the clean-ups): temporary files and staging folders."""
    removed = []
    for folder in (notebooks_dir(), root / "notebooks", root / "results", root / "figures",
                   root / "results" / "checkpoints"):
        for p in folder.glob(".*.tmp*") if folder.exists() else []:
            p.unlink(missing_ok=True)
            removed.append(p)
    staging = root / ".cache" / "staging"
    if staging.exists():
        removed.extend(sorted(staging.iterdir()))
        shutil.rmtree(staging)
    return removed


@contextlib.contextmanager
def _exclusive(root: Path):
    """One pipeline at a time per output root: the temporaries it cleans can then only be from dead runs."""
    path = root / ".cache" / "pipeline.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"ibnn: another `make figures` is running on {shown(root)} (lock "
                             f"{io.relative(path)}); wait for it to finish") from None
        yield


def _timings(root: Path) -> Path:
    return root / ".cache" / "pipeline_timings.json"


def _load_timings(root: Path) -> dict:
    try:
        return json.loads(_timings(root).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def recorded_times(root: Path) -> dict[str, float]:
    """{stem: seconds} from the README's run-times table (`record_times`), the committed record's last full run:
    the schedule's estimate of a notebook this checkout has not timed yet (a fresh clone has no .cache)."""
    text = _readme_with_times(root)
    if text is None:
        return {}
    table = text[text.index(TIMES_START):text.index(TIMES_END)]
    return {m[1]: float(m[2]) * (60.0 if m[3] == "min" else 1.0)
            for m in re.finditer(r"^\| `([\w-]+)` \| ([\d.]+) (s|min) \|$", table, re.M)}


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def _select(nbs: list[Path], force, only) -> set[str]:
    """The forced notebooks (force: True for all, or a list of stems; an empty list means all)."""
    stems = [p.stem for p in nbs]
    named = (list(force) if isinstance(force, (list, tuple)) else []) + list(only or [])
    unknown = sorted(set(named) - set(stems))
    if unknown:
        raise PreflightError(f"ibnn: unknown notebooks {unknown}; known: {stems}")
    return set(stems) if force is True or force == [] else set(force or [])


def run(fast: bool = False, force: bool | list[str] = False, only: list[str] | None = None,
        dry_run: bool = False, jobs: int | str = DEFAULT_JOBS) -> int:
    """Preflight, then every stale notebook, `jobs` at a time (see the module docstring). Returns 0."""
    try:
        jobs = schedule.check_jobs(jobs)
    except ValueError as exc:
        raise PreflightError(f"ibnn: {exc}") from None
    root = root_for(fast)
    with _exclusive(root):
        return _run(root, "fast" if fast else "full", force, only, dry_run, jobs)


def _run(root: Path, profile: str, force, only, dry_run: bool, jobs: int) -> int:
    for p in clean_temporaries(root):
        print(f"[ibnn] removed what an interrupted run left: {io.relative(p)}")
    nbs = notebooks()
    if not nbs:                              # never take an empty folder for "every notebook was removed"
        raise PreflightError(f"ibnn: no notebooks NN_*.ipynb in {shown(notebooks_dir())}; nothing to run")
    forced = _select(nbs, force, only)
    P, stamps, line = preflight(root, nbs, forced, "make figures" + (" FAST=1" if profile == "fast" else ""))
    print(line, flush=True)
    retire(root, stamps, {p.stem for p in nbs}, dry_run)
    if dry_run:
        _dry_run(root, profile, nbs, stamps, P, forced, only)
        return 0
    t_all = time.time()
    r = _Run(root, profile, nbs, stamps, P, forced, only, jobs)
    r.go()
    total = time.time() - t_all
    _summary(root, profile, nbs, r.ran, total, jobs)
    if profile == "full" and r.ran:
        if len(r.ran) == len(nbs):
            r.timings[WHOLE_RUN] = {"seconds": round(total, 1), "profile": profile, "jobs": jobs}
            io.atomic_write_json(_timings(root), r.timings)
        record_times(root, [p.stem for p in nbs], r.timings)
    return 0


def _dry_run(root: Path, profile: str, nbs: list[Path], stamps: dict, P, forced: set, only) -> None:
    """DRY=1: say in file order what would run and why, and what may run if an input it reads changes."""
    changing = set()
    for i, src in enumerate(nbs, 1):
        stem, entry, tag = src.stem, stamps.get(src.stem), f"[ibnn] {i}/{len(nbs)} {src.stem}"
        reasons = st.stale_reasons(src, entry, root, profile, P, stem in forced)
        if only and stem not in only:
            print(f"{tag}: {'stale, skipped (--only)' if reasons else 'up to date'}")
            continue
        maybe = [f"if {rel} changes" for rel in (entry or {}).get("deps", {}).get("inputs", {}) if rel in changing]
        if reasons or maybe:
            print(f"{tag}: {'would' if reasons else 'may'} run: {'; '.join(reasons or maybe[:1])}")
            changing.update((entry or {}).get("outputs", {}))
        else:
            print(f"{tag}: up to date")


class _Run:
    """One run of the stale notebooks through `schedule.drive`: the decisions, start and done lines and the
    commits happen here, in the main process; the notebooks run in it too (jobs=1) or in worker processes."""

    def __init__(self, root: Path, profile: str, nbs: list[Path], stamps: dict, P, forced: set, only, jobs: int):
        self.root, self.profile, self.nbs, self.stamps, self.P = root, profile, nbs, stamps, P
        self.forced, self.only, self.jobs = forced, only, jobs
        self.timings, self.ran, self.reasons, self.t0 = _load_timings(root), {}, {}, {}

    def tag(self, i: int) -> str:
        """'[ibnn] i/N stem' for the notebook of index i."""
        return f"[ibnn] {i + 1}/{len(self.nbs)} {self.nbs[i].stem}"

    def go(self) -> None:
        """Run every stale notebook (commits in completion order); NotebookFailed after the running ones finished."""
        from .execute import execute

        feet = [schedule.footprint(src, self.stamps.get(src.stem), self.root, self.profile, self.P)
                for src in self.nbs]
        preds = schedule.predecessors(feet, self.jobs)
        recorded = recorded_times(self.root)          # where this checkout has not timed a notebook yet
        last = [(self.timings.get(p.stem) or {}).get("seconds", recorded.get(p.stem, 1.0)) for p in self.nbs]
        threads = schedule.threads_per_notebook(self.jobs)      # each kernel's share of the cores
        runner = (schedule.InProcess(lambda i: execute(self.nbs[i], self.root, self.profile, threads))
                  if self.jobs == 1 else
                  schedule.Workers(execute, lambda i: (self.nbs[i], self.root, self.profile, threads),
                                   lambda i: self.nbs[i].stem))
        schedule.drive(preds, self.jobs, schedule.chain_seconds(preds, last), self, runner)

    def decide(self, i: int) -> bool:
        """Whether notebook i runs (`stamps.stale_reasons`, now that what it reads is committed); says why not."""
        src = self.nbs[i]
        reasons = st.stale_reasons(src, self.stamps.get(src.stem), self.root, self.profile, self.P,
                                   src.stem in self.forced)
        if self.only and src.stem not in self.only:
            print(f"{self.tag(i)}: {'stale, skipped (--only)' if reasons else 'up to date'}", flush=True)
            return False
        if not reasons:
            print(f"{self.tag(i)}: up to date", flush=True)
        self.reasons[i] = reasons
        return bool(reasons)

    def started(self, i: int, busy: int) -> None:
        """The start line of notebook i (with how many run at once when more than one may)."""
        reasons, last = self.reasons[i], self.timings.get(self.nbs[i].stem)
        why = "; ".join(reasons[:3]) + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else "")
        est = f"; last run {_fmt_s(last['seconds'])}" if last and last.get("profile") == self.profile else ""
        now = f"; {busy} running now (at most {self.jobs} at a time)" if self.jobs > 1 else ""
        print(f"{self.tag(i)}: running ({self.profile} profile): {why}{est}{now}", flush=True)
        self.t0[i] = time.time()

    def commit(self, i: int, staged) -> None:
        """Move notebook i's staged outputs into the root, write its stamp and timing, say it is done."""
        src = self.nbs[i]
        removed = st.commit(src, self.root, staged.stage, staged.notebook, staged.manifest, self.stamps, self.P,
                            self.profile)
        dt = self.ran[src.stem] = time.time() - self.t0[i]
        self.timings[src.stem] = {"seconds": round(dt, 1), "profile": self.profile, "jobs": self.jobs}
        io.atomic_write_json(_timings(self.root), self.timings)
        gone = f"; removed {', '.join(removed)} (no longer written)" if removed else ""
        print(f"{self.tag(i)}: done in {_fmt_s(dt)}{gone}", flush=True)

    def fail(self, i: int, exc: BaseException, busy: int) -> None:
        """Notebook i failed: its staging folder goes (the failed notebook is in .cache/failed/), nothing new starts."""
        from .execute import NotebookFailed

        if isinstance(exc, NotebookFailed):
            shutil.rmtree(self.root / ".cache" / "staging" / self.nbs[i].stem, ignore_errors=True)
        if busy:
            print(f"{self.tag(i)}: failed; no new notebook starts, waiting for the {busy} running to finish",
                  flush=True)


TIMES_START, TIMES_END = "<!-- run-times:start (written by make figures) -->", "<!-- run-times:end -->"


def _readme_with_times(root: Path) -> str | None:
    """The text of root's README when it holds the run-times markers, else None."""
    readme = root / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    return text if TIMES_START in text and TIMES_END in text else None


def record_times(root: Path, stems: list[str], timings: dict) -> bool:
    """Write the measured wall time of each notebook's last full-profile run on this machine (with its CPU count,
    how many notebooks ran at a time, and load) into README between the run-times markers, when `root` holds a
    README with them (the repository: the committed record). Returns whether README changed."""
    text = _readme_with_times(root)
    if text is None:
        return False
    rows = [(s, timings[s]["seconds"]) for s in stems if timings.get(s, {}).get("profile") == "full"]
    whole = timings.get(WHOLE_RUN, {})
    whole = whole if whole.get("profile") == "full" and whole.get("jobs", 1) > 1 else None   # else: the sum
    jobs = sorted({timings[s].get("jobs", 1) for s, _ in rows}) or [1]
    beside = "each time measured under its neighbours' load" if jobs[-1] > 1 else ""
    at_once = (f"{jobs[0]} notebook{'s' if jobs[0] > 1 else ''} at a time" + (f" ({beside})" if beside else "")
               if len(jobs) == 1 else f"{' or '.join(map(str, jobs))} notebooks at a time (as each notebook's "
               f"last run did; {beside})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    summed = " (summed; they overlapped)" if beside else ""
    table = "\n".join(["| notebook | wall time of its last full run |", "| --- | --- |"]
                      + [f"| `{s}` | {_fmt_s(sec)} |" for s, sec in rows]
                      + [f"| all{summed} | {_fmt_s(sum(sec for _, sec in rows))} |"]
                      + ([f"| the last run of every notebook, {whole['jobs']} at a time | {_fmt_s(whole['seconds'])} |"]
                         if whole else [])
                      + ["", f"Measured by `make figures` on {os.cpu_count()} CPU cores, {at_once}, load "
                         f"average {load:.1f} at the end of the run, {time.strftime('%Y-%m-%d')}."])
    start, end = text.index(TIMES_START) + len(TIMES_START), text.index(TIMES_END)
    new = text[:start] + "\n" + table + "\n" + text[end:]
    if new != text:
        io.atomic_write_text(root / "README.md", new)
    return new != text


def retire(root: Path, stamps: dict, stems: set[str], dry_run: bool) -> list[str]:
    """Forget the notebooks that no longer exist (renamed or removed) and delete the outputs they recorded (the
    preflight verified them; a file another notebook recorded too is kept), before any notebook runs: a renamed
    notebook then writes its outputs afresh. Returns the files removed (or, dry_run, that would be)."""
    gone = sorted(set(stamps) - stems)
    live = {rel for stem, e in stamps.items() if stem in stems for rel in e.get("outputs", {})}
    removed = []
    for stem in gone:
        files = [rel for rel, d in stamps[stem].get("outputs", {}).items()
                 if rel not in live and (root / rel).is_file() and (d is None or st.file_digest(root / rel) == d)
                 and not rel.startswith("notebooks/")]
        print(f"[ibnn] {stem}: no such notebook any more: {'would remove' if dry_run else 'removed'} its stamp and "
              f"outputs {', '.join(files) or '(none left)'}", flush=True)
        if not dry_run:
            for rel in files:
                (root / rel).unlink()
            del stamps[stem]
            st.save(root, stamps)
        removed += files
    return removed


def _summary(root: Path, profile: str, nbs: list[Path], ran: dict, total: float, jobs: int = 1) -> None:
    if not ran:
        print(f"[ibnn] everything up to date in {shown(root)} ({profile} profile); FORCE=1 reruns every notebook")
        return
    at_once = f", {jobs} at a time" if jobs > 1 else ""
    print(f"[ibnn] ran {len(ran)} of {len(nbs)} notebooks in {_fmt_s(total)} into {shown(root)} ({profile} "
          f"profile{at_once}): " + ", ".join(f"{p.stem} {_fmt_s(ran[p.stem])}" for p in nbs if p.stem in ran))


def main(argv=None) -> int:
    """The command line of `make figures` (exit status 2: refused by the preflight; 1: a notebook failed)."""
    from .execute import NotebookFailed

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="quick profile (fewer chips and epochs) into scratch/fast/")
    ap.add_argument("--force", nargs="*", metavar="STEM",
                    help="rerun these notebooks (all when none is named), even if up to date")
    ap.add_argument("--only", nargs="+", metavar="STEM", help="run only these notebooks (if stale)")
    ap.add_argument("--dry-run", action="store_true", help="say what would rerun and why; run nothing")
    ap.add_argument("--jobs", default=DEFAULT_JOBS, metavar="N",
                    help=f"run up to N independent notebooks at a time (default {DEFAULT_JOBS}, at most the CPU "
                         f"count; 1: one after another)")
    a = ap.parse_args(argv)
    try:
        return run(fast=a.fast, force=False if a.force is None else (a.force or True), only=a.only,
                   dry_run=a.dry_run, jobs=a.jobs)
    except PreflightError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"ibnn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        which = "notebook" if f"{a.jobs}".strip() == "1" else "notebooks"
        print(f"ibnn: interrupted; the record is as it was before the running {which} started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
