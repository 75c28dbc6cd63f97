"""One plotting style for every figure; `savefig` saves a figure into figures/ atomically and shows it.

Every saved figure is also embedded in the executed notebook (an image/png output), so JupyterLab, an nbconvert
HTML export and a code host's notebook view show the same figures as figures/; `make figures` fails a notebook
that saved a figure it did not show.
"""
from __future__ import annotations

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

_SHOWN: dict[str, bool] = {}          # figure file (relative) -> shown in the notebook


def use_style() -> None:
    """Apply the project's matplotlib style."""
    matplotlib.rcParams.update(STYLE)


def kernel_shell():
    """The IPython shell of a Jupyter kernel (None in a script, a terminal IPython or pytest)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    ip = get_ipython()
    return ip if ip is not None and getattr(ip, "kernel", None) is not None else None


def shown() -> dict[str, bool]:
    """{figure file: shown in the notebook} for every figure this process saved through `savefig`."""
    return dict(_SHOWN)


def savefig(fig, name: str) -> io.RecordPath:
    """Save `fig` as figures/<name>.png atomically; in a notebook also show it and close it (so a `plt.show()`
    after it draws nothing twice). Returns the path (its repr is relative)."""
    if not name or "/" in name or name.endswith(".png"):
        raise ValueError(f"name={name!r} must be a bare figure name without folder or extension")
    path = io.figures_dir() / f"{name}.png"
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    shell = kernel_shell()
    if shell is not None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        display(fig)
        plt.close(fig)
    _SHOWN[io.relative(path)] = shell is not None
    return io.RecordPath(path)
