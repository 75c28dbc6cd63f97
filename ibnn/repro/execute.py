"""One notebook of `make figures`, run through papermill into its staging folder (.cache/staging/<stem>/ of the
root being built): nothing reaches results/, figures/ or notebooks/ until `stamps.commit` moves it there.

The kernel gets its settings in its environment (no parameters are injected, so the executed notebook is its
source plus outputs): IBNN_OUTPUT_ROOT = the staging folder, IBNN_READ_ROOT = the root (reads fall back to it),
IBNN_PROFILE, IBNN_MANIFEST (where the appended `manifest.write()` cell writes what the run read), IBNN_NOTEBOOK
and IBNN_PROGRESS_TO (the pipeline's terminal, for progress bars), and OMP_NUM_THREADS, the kernel's share of the
cores when notebooks run side by side (`thread_env`); MPLBACKEND is dropped (figures are inline).
Its transport is encrypted (CurveZMQ) where pyzmq can, and its own stderr goes to .cache/logs/<stem>.kernel.log
instead of the pipeline's terminal. The executed notebook loses the appended cell and papermill's volatile
metadata (timestamps, durations, paths), so a notebook that is not rerun stays byte-identical, and it is marked
with its profile (metadata ibnn.profile). A papermill-injected parameters cell in the source (a hand run saved in
place) is dropped before the run: the record is always built from the notebook's own defaults and its profile.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import io, lean, manifest  # noqa: F401  (lean: before papermill and nbformat, imported below)
from . import stamps as st

KERNEL = "ibnn"


class NotebookFailed(RuntimeError):
    """A notebook raised, its kernel died, or it broke a rule of the record (a figure saved but not shown)."""


@dataclass(frozen=True)
class Staged:
    """A finished notebook: its staging folder, the executed notebook file and its manifest."""
    stage: Path
    notebook: Path
    manifest: dict


def _kernel_manager(log: Path, env: dict):
    """A kernel manager class whose kernels get `env` on top of the pipeline's environment and write their own
    stderr (ipykernel's warnings, a crash) into `log`."""
    from jupyter_client.manager import AsyncKernelManager

    class StagedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            log.parent.mkdir(parents=True, exist_ok=True)
            full = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
            kw["env"] = {**full, **{k: str(v) for k, v in env.items() if v is not None}}
            with open(log, "ab") as fh:            # the kernel keeps its own copy of the descriptor
                kw.setdefault("stderr", fh)
                return await super().start_kernel(**kw)

    return StagedKernelManager


def _kernel_config():
    """CurveZMQ-encrypted kernel transport where pyzmq has curve (no 'TCP without encryption' warning)."""
    import zmq
    from traitlets.config import Config

    cfg = Config()
    if zmq.has("curve"):
        cfg.KernelManager.transport_encryption = "auto"
    return cfg


def progress_target() -> str | None:
    """The pipeline's terminal, for the kernels' progress bars (None when stderr is not a terminal)."""
    if os.environ.get("IBNN_PROGRESS") == "0" or not sys.stderr.isatty():
        return None
    try:
        return os.ttyname(sys.stderr.fileno())
    except OSError:
        return None


def drop_cells(nb, *tags: str) -> int:
    """Remove the cells carrying any of `tags` (in place); returns how many were removed."""
    keep = [c for c in nb.cells if not set(tags) & set(c.get("metadata", {}).get("tags", []))]
    n, nb.cells = len(nb.cells) - len(keep), keep
    return n


def coalesce_streams(outputs: list) -> list:
    """Consecutive stdout (or stderr) outputs as one: how a cell's printing is split depends on timing."""
    merged = []
    for o in outputs:
        prev = merged[-1] if merged else None
        if (o.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == o.get("name")):
            prev["text"] = prev["text"] + o["text"]
        else:
            merged.append(o)
    return merged


def finalise(nb, profile: str) -> None:
    """Drop the appended manifest cell and the volatile metadata (timestamps, durations, paths) papermill adds;
    mark the profile the notebook ran with (metadata ibnn.profile), so a quick run is never taken for the record."""
    drop_cells(nb, manifest.TAG, st.INJECTED_TAG)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = coalesce_streams(c.outputs)
    nb.metadata["ibnn"] = {"profile": profile}
    nb.metadata.pop("papermill", None)
    for c in nb.cells:
        c.metadata.pop("papermill", None)
        c.metadata.pop("execution", None)


def check_figures(stem: str, stage: Path, shown: dict, nb) -> None:
    """Every figure the notebook saved is shown in it (an embedded image/png), else NotebookFailed."""
    figs = [rel for rel in st.list_files(stage) if rel.startswith("figures/")]
    hidden = [f for f in figs if not shown.get(f)]
    n_img = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    if hidden or n_img < len(figs):
        raise NotebookFailed(f"{stem} saved {', '.join(hidden or figs)} without showing it in the notebook "
                             f"({n_img} image(s) embedded for {len(figs)} saved): save figures with "
                             f"ibnn.repro.style.savefig, which also shows them; nothing was recorded")


def _failure_line(stem: str, exc, failed: Path) -> str:
    """One line: where the notebook failed, the error, and where its traceback is."""
    where = f"cell [{exc.exec_count}]" if getattr(exc, "exec_count", None) else "a cell"
    evalue = str(getattr(exc, "evalue", exc)).strip().splitlines()
    return (f"{stem} failed in {where}: {getattr(exc, 'ename', type(exc).__name__)}: "
            f"{evalue[0] if evalue else ''} (the executed notebook with the traceback: {io.relative(failed)}; "
            f"the record is unchanged)")


def _papermill(src: Path, inp: Path, out: Path, root: Path, env: dict) -> None:
    """papermill from `inp` to `out` in the ibnn kernel; NotebookFailed (one line) when it fails."""
    import papermill as pm

    log = root / ".cache" / "logs" / f"{src.stem}.kernel.log"
    log.unlink(missing_ok=True)
    try:
        pm.execute_notebook(str(inp), str(out), parameters={}, kernel_name=KERNEL, progress_bar=False,
                            cwd=str(src.parent), language="python", config=_kernel_config(),
                            kernel_manager_class=_kernel_manager(log, env))
    except pm.PapermillExecutionError as exc:
        failed = root / ".cache" / "failed" / src.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, failed)
        raise NotebookFailed(_failure_line(src.stem, exc, failed)) from None
    except RuntimeError as exc:                 # nbclient: the kernel died or did not start
        raise NotebookFailed(f"{src.stem}: the kernel failed ({type(exc).__name__}: {exc}); its log: "
                             f"{io.relative(log)}; the record is unchanged") from None


def thread_env(threads: int | None) -> dict:
    """{OMP_NUM_THREADS: threads} for a kernel (torch, and the BLAS libraries, read it at start; every thread count
    in ibnn follows torch's), or {} where `threads` is None or the environment already sets it (a user's choice)."""
    if threads is None or os.environ.get("OMP_NUM_THREADS"):
        return {}
    return {"OMP_NUM_THREADS": str(int(threads))}


def execute(src: Path, root: Path, profile: str, threads: int | None = None) -> Staged:
    """Run the notebook `src` into its staging folder under `root` (see the module docstring); `threads`: the
    kernel's intra-op threads (`thread_env`; None: torch's default, one per core)."""
    import nbformat

    stage = root / ".cache" / "staging" / src.stem
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    nb = nbformat.read(src, as_version=4)
    drop_cells(nb, st.INJECTED_TAG)      # a hand papermill run saved in place: its parameters are not the record's
    nb.cells.append(nbformat.v4.new_code_cell(manifest.CELL, metadata={"tags": [manifest.TAG]}))
    inp, out, man = stage / f"{src.stem}.in.ipynb", stage / f"{src.stem}.out.ipynb", stage / "manifest.json"
    nbformat.write(nb, inp)
    env = dict(IBNN_OUTPUT_ROOT=stage, IBNN_READ_ROOT=root, IBNN_PROFILE=profile, IBNN_MANIFEST=man,
               IBNN_NOTEBOOK=src.stem, IBNN_PROGRESS_TO=progress_target(), PAPERMILL_EXECUTION="1",
               **thread_env(threads))
    _papermill(src, inp, out, root, env)
    if not man.exists():
        raise NotebookFailed(f"{src.stem} finished without writing its manifest (IBNN_MANIFEST); nothing was "
                             f"recorded")
    data = json.loads(man.read_text())
    executed = nbformat.read(out, as_version=4)
    finalise(executed, profile)
    check_figures(src.stem, stage, data.get("figures_shown", {}), executed)
    nbformat.write(executed, out)
    return Staged(stage, out, data)
