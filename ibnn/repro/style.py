"""One plotting style for every figure, and atomic saving into figures/."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from . import io

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "axes.prop_cycle": matplotlib.cycler(color=["#1f5fa8", "#d9622b", "#2e8b57", "#8e44ad", "#c0392b",
                                                "#7f8c8d", "#b8860b", "#17becf"]),
}

# Colours with a fixed meaning across notebooks.
PAPER = "#c0392b"      # the paper's figure
REPRO = "#1f5fa8"      # this companion's figure


def use_style() -> None:
    """Apply the project's matplotlib style."""
    matplotlib.rcParams.update(STYLE)


def savefig(fig, name: str) -> Path:
    """Save `fig` as figures/<name>.png atomically and return the path."""
    if not name or "/" in name or name.endswith(".png"):
        raise ValueError(f"name={name!r} must be a bare figure name without folder or extension")
    path = io.figures_dir() / f"{name}.png"
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
