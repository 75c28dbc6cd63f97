"""Figures of notebooks 06 and 07 that need more than a few lines: the tornado panel and the stacked energy
breakdown. Colours are passed in (the house style lives above this room, in ibnn.repro.style)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .study import span_key

LOW_COLOUR, HIGH_COLOUR = "#1f5fa8", "#d9622b"


def tornado_panel(ax, bars: Sequence[dict], key: str, base: float, xlabel: str, paper: float | None = None,
                  paper_colour: str = "k") -> list[str]:
    """One tornado panel of figure `key`: a bar per parameter from the base to its value at the parameter's low
    (blue) and high (orange) end, the widest on top (order: `study.span_key`, stable against float noise).
    Returns the parameter names bottom to top."""
    order = sorted(bars, key=lambda b: span_key(b, key))
    for i, b in enumerate(order):
        ax.barh(i, b["at_low"][key] - base, left=base, color=LOW_COLOUR, alpha=0.8)
        ax.barh(i, b["at_high"][key] - base, left=base, color=HIGH_COLOUR, alpha=0.8)
    ax.set_yticks(range(len(order)), [f"{b['name']} ({b['section']})" for b in order], fontsize=7)
    ax.axvline(base, color="k", lw=1)
    if paper is not None:
        ax.axvline(paper, color=paper_colour, ls="--", label="paper")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel(xlabel)
    return [b["name"] for b in order]


def stacked_breakdown(ax, breakdowns: Sequence[dict], labels: Sequence[str], components: Sequence[str],
                      scale: float = 1e12) -> np.ndarray:
    """Stacked bars, one per breakdown (dict component -> J), of the given components (x scale, default pJ).
    Returns the stacked totals."""
    bottom = np.zeros(len(breakdowns))
    for comp in components:
        vals = np.array([b.get(comp, 0.0) for b in breakdowns]) * scale
        ax.bar(list(labels), vals, bottom=bottom, label=comp)
        bottom += vals
    return bottom
