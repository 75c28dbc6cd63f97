"""What a notebook run read and wrote: the recorded dependencies `make figures` keys each notebook on (in the manner
of showyourwork).

`nb.start` calls `watch()`, which records every package data file the process opens for reading (e.g.
ibnn/data_tables/*.csv); parameter entries are recorded per entry by `ibnn.params`, inputs (results, checkpoints)
by `ibnn.repro.provenance`. The pipeline appends one cell to the notebook it runs, `manifest.write()`, and removes
it from the executed notebook: the manifest lists the ibnn modules imported, the parameter entries read, the
package data opened, the inputs loaded, the files written and the figures shown.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import io, provenance
from .stamps import MANIFEST_TAG

#: The cell the pipeline appends (and removes again) to every notebook it runs.
CELL = "from ibnn.repro import manifest\nmanifest.write()"
TAG = MANIFEST_TAG
_PACKAGE_DATA: dict[str, None] = {}
_HOOKED: list[bool] = []


def _is_package_data(path: str, mode) -> bool:
    """A file of the package opened for reading that is neither code nor a parameter file."""
    pkg = str(io.PACKAGE_DIR) + os.sep
    return (path.startswith(pkg) and not path.startswith(str(io.PACKAGE_DIR / "params_data") + os.sep)
            and "__pycache__" not in path and not path.endswith((".py", ".pyc"))
            and not any(c in str(mode or "r") for c in "wax+"))


def watch() -> None:
    """Record every package data file this process opens for reading from now on (an audit hook, installed once)."""
    if _HOOKED:
        return

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, Path)):
            path = os.fspath(args[0])
            if _is_package_data(path, args[1] if len(args) > 1 else "r"):
                _PACKAGE_DATA[path] = None

    sys.addaudithook(hook)
    _HOOKED.append(True)


def _repo_relative(path) -> str:
    """`path` relative to the repository (posix), or absolute when outside it."""
    p = Path(path).resolve()
    return p.relative_to(io.REPO_ROOT).as_posix() if p.is_relative_to(io.REPO_ROOT) else str(p)


def manifest() -> dict:
    """What this process imported, read and wrote (see the module docstring)."""
    modules = sorted({_repo_relative(m.__file__) for name, m in list(sys.modules.items())
                      if (name == "ibnn" or name.startswith("ibnn.")) and getattr(m, "__file__", None)})
    params, style = sys.modules.get("ibnn.params"), sys.modules.get("ibnn.repro.style")   # when the run used them
    return {"modules": modules, "params": params.used() if params is not None else [],
            "package_data": sorted(_repo_relative(p) for p in _PACKAGE_DATA), "inputs": provenance.inputs(),
            "written": io.written(), "figures_shown": style.shown() if style is not None else {},
            "profile": io.current_profile()}


def write(path: str | None = None) -> None:
    """Write `manifest()` as JSON to `path` (default IBNN_MANIFEST, which `make figures` sets)."""
    path = path or os.environ.get("IBNN_MANIFEST")
    if not path:
        raise ValueError("manifest.write: no path given and IBNN_MANIFEST is not set (make figures sets it)")
    with open(path, "w") as fh:
        json.dump(manifest(), fh, indent=1, sort_keys=True)
