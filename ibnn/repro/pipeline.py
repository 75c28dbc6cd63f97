"""`make figures`: run every notebook in order through papermill, incrementally and atomically.

A notebook reruns when its code, the ibnn package (sources and parameter files), the run profile or any earlier
notebook changed, or when one of its outputs (results/<stem>.json, the figures it saved) is missing. The key of
each notebook chains the key of the one before, so a change upstream reruns everything downstream.

Each notebook executes into a temporary file that replaces the committed notebook only when it finished, and the
stamp (results/pipeline_stamps.json) is written after that: an interrupted run leaves the previous notebook,
results and figures in place, and the next run redoes the interrupted notebook.

Usage: python -m ibnn.repro.pipeline [--fast] [--force] [--only STEM ...]
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from . import io

STAMPS = "pipeline_stamps.json"


def notebooks_dir() -> Path:
    """The notebooks folder (IBNN_NOTEBOOKS_DIR overrides it; the robustness tests use a small one)."""
    env = os.environ.get("IBNN_NOTEBOOKS_DIR")
    return Path(env).resolve() if env else io.REPO_ROOT / "notebooks"


def notebooks() -> list[Path]:
    """The numbered notebooks NN_*.ipynb, in order."""
    return sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def clean_temporaries() -> list[Path]:
    """Remove temporary files left by a run that was killed (SIGKILL skips the clean-up of io.atomic_path)."""
    removed = []
    for folder in (notebooks_dir(), io.results_dir(), io.figures_dir(), io.checkpoints_dir()):
        if folder.exists():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def package_digest() -> str:
    """sha256 over the ibnn package's sources and data files."""
    h = hashlib.sha256()
    for p in sorted(io.PACKAGE_DIR.rglob("*")):
        if p.suffix in (".py", ".toml", ".csv") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(io.PACKAGE_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def notebook_digest(path: Path) -> str:
    """Hash of the code and markdown sources, without outputs and without papermill's injected cell."""
    nb = json.loads(path.read_text())
    h = hashlib.sha256()
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        src = cell["source"]
        h.update(cell["cell_type"].encode())
        h.update(("".join(src) if isinstance(src, list) else src).encode())
    return h.hexdigest()


def _stamps_path() -> Path:
    return io.results_dir() / STAMPS


def _record_timing(stem: str, seconds: float, profile: str) -> None:
    path = io.output_root() / ".cache" / "pipeline_timings.json"
    try:
        timings = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        timings = {}
    timings[stem] = {"seconds": round(seconds, 1), "profile": profile}
    io.atomic_write_json(path, timings)


def _load_stamps() -> dict:
    path = _stamps_path()
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _outputs_present(entry: dict) -> bool:
    root = io.output_root()
    return all((root / rel).exists() for rel in entry.get("outputs", []))


def _new_outputs(since: float) -> list[str]:
    root = io.output_root()
    out = []
    for folder in (io.results_dir(), io.figures_dir()):
        if folder.exists():
            for p in sorted(folder.rglob("*")):
                if (p.is_file() and not p.name.startswith(".") and p.name != STAMPS
                        and p.stat().st_mtime >= since):
                    out.append(str(p.relative_to(root)))
    return out


@contextlib.contextmanager
def _exclusive():
    """One pipeline at a time per output root: the temporaries it cleans can then only be from dead runs."""
    path = io.output_root() / ".cache" / "pipeline.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another `make figures` is running on {io.output_root()} (lock {path}); "
                             f"wait for it to finish") from None
        yield


def run(fast: bool = False, force: bool = False, only: list[str] | None = None) -> int:
    """Run the stale notebooks (all with force) under the pipeline lock; returns 0."""
    with _exclusive():
        return _run(fast, force, only)


def _run(fast: bool, force: bool, only: list[str] | None) -> int:
    import papermill as pm

    profile = "fast" if fast else "full"
    for p in clean_temporaries():
        print(f"[ibnn] removed temporary file of an interrupted run: {p.name}")
    stamps = _load_stamps()
    pkg = package_digest()
    prev_key = ""
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["PAPERMILL_EXECUTION"] = "1"
    nbs = notebooks()
    if only:
        unknown = set(only) - {p.stem for p in nbs}
        if unknown:
            raise SystemExit(f"--only: unknown notebooks {sorted(unknown)}; known: {[p.stem for p in nbs]}")
    timings = {}
    for path in nbs:
        key = hashlib.sha256(f"{prev_key}|{pkg}|{profile}|{notebook_digest(path)}".encode()).hexdigest()
        prev_key = key
        entry = stamps.get(path.stem, {})
        stale = force or entry.get("key") != key or not _outputs_present(entry)
        if only is not None and path.stem not in only:
            stale = False
        if not stale:
            print(f"[ibnn] {path.stem}: up to date")
            continue
        print(f"[ibnn] {path.stem}: running ({profile} profile)", flush=True)
        t0 = time.time()
        with io.atomic_path(path) as tmp:
            pm.execute_notebook(str(path), str(tmp), parameters={"profile": profile} if fast else {},
                                kernel_name="ibnn", progress_bar=False, cwd=str(notebooks_dir()),
                                language="python")
        dt = time.time() - t0
        timings[path.stem] = dt
        # Key recomputed: papermill may have added the injected cell, which the digest ignores.
        stamps[path.stem] = {"key": key, "profile": profile, "outputs": _new_outputs(t0)}
        io.atomic_write_json(_stamps_path(), stamps)
        _record_timing(path.stem, dt, profile)
        print(f"[ibnn] {path.stem}: done in {dt:.1f} s", flush=True)
    if timings:
        print("[ibnn] timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return 0


def main(argv=None) -> int:
    """The command line of `make figures`."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="quick profile (fewer chips and epochs)")
    ap.add_argument("--force", action="store_true", help="rerun every notebook")
    ap.add_argument("--only", nargs="+", metavar="STEM", help="run only these notebooks (if stale)")
    a = ap.parse_args(argv)
    return run(fast=a.fast, force=a.force, only=a.only)


if __name__ == "__main__":
    sys.exit(main())
