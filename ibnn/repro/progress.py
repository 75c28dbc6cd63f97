"""Progress bars that show in an interactive terminal or notebook and stay quiet in CI and under papermill."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm  # plain text bars: no ipywidgets needed (tqdm.auto warns without them)


def quiet() -> bool:
    """Whether progress bars stay quiet: in CI, under papermill or the scratch output root, off a terminal
    (IBNN_PROGRESS=1 forces them on, 0 off)."""
    if os.environ.get("IBNN_PROGRESS") == "1":
        return False
    if os.environ.get("CI") or os.environ.get("IBNN_PROGRESS") == "0":
        return True
    if os.environ.get("IBNN_OUTPUT_ROOT") or os.environ.get("PAPERMILL_EXECUTION"):
        return True
    return not sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    """tqdm(iterable, **kwargs), disabled when not interactive (override with IBNN_PROGRESS=1/0)."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
