"""One nonideality at a time: drop statistics at a sweep point, and where a swept curve crosses a level."""
from __future__ import annotations

from typing import Sequence

from .stats import DropStats, chip_accuracies, drop_stats, make_chips


def sweep_point(P, mapping, codes, labels, software: float, n_chips: int, seed: int, nonideal=None,
                noise_seed: int = 1) -> DropStats:
    """Drop statistics of `n_chips` chips (seed) of parameter set P with the given Nonidealities."""
    chip = make_chips(P, n_chips, seed, nonideal=nonideal)
    acc = chip_accuracies(mapping, chip, codes, labels, noise_seed=noise_seed)
    return drop_stats(acc, software)


def crossing(x: Sequence[float], y: Sequence[float], level: float) -> float | None:
    """First x at which the piecewise-linear y(x) (x increasing) reaches `level` from below; None if never."""
    x, y = list(map(float, x)), list(map(float, y))
    for i in range(1, len(x)):
        if y[i - 1] < level <= y[i]:
            return x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1])
    if y and y[0] >= level:
        return x[0]
    return None
