"""Progress bars for the long steps (training, chip runs): on a terminal, never in a notebook's outputs.

- Under `make figures` the pipeline passes its terminal to the kernels (IBNN_PROGRESS_TO): bars are drawn there,
  prefixed with the notebook's name (IBNN_NOTEBOOK), and never enter the executed notebook.
- Otherwise bars show on an interactive stderr and stay quiet in CI, under papermill or nbval and with a scratch
  output root. IBNN_PROGRESS=1 / 0 forces them on / off.
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm  # plain text bars: no ipywidgets needed (tqdm.auto warns without them)

_TARGET: dict[str, object] = {}


def _target():
    """The open file the bars go to when the pipeline named one (IBNN_PROGRESS_TO), else None."""
    path = os.environ.get("IBNN_PROGRESS_TO")
    if not path or os.environ.get("IBNN_PROGRESS") == "0":
        return None
    if path not in _TARGET:
        try:
            _TARGET[path] = open(path, "a", buffering=1)
        except OSError:
            _TARGET[path] = None
    return _TARGET[path]


def quiet() -> bool:
    """Whether progress bars stay quiet: in CI, under papermill or the scratch output root, off a terminal
    (IBNN_PROGRESS=1 forces them on, 0 off; the pipeline's terminal, when it names one, shows them)."""
    if _target() is not None or os.environ.get("IBNN_PROGRESS") == "1":
        return False
    if os.environ.get("CI") or os.environ.get("IBNN_PROGRESS") == "0":
        return True
    if os.environ.get("IBNN_OUTPUT_ROOT") or os.environ.get("PAPERMILL_EXECUTION"):
        return True
    return not sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    """tqdm(iterable, **kwargs) on the pipeline's terminal or an interactive one, quiet otherwise (`quiet`);
    disable=True never shows a bar."""
    target = _target()
    if target is not None:
        kwargs.setdefault("file", target)
        if os.environ.get("IBNN_NOTEBOOK"):
            kwargs["desc"] = f"{os.environ['IBNN_NOTEBOOK']}: {kwargs.get('desc') or ''}".rstrip(": ")
    if kwargs.get("disable") is None:
        kwargs["disable"] = quiet()
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
