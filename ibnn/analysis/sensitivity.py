"""Sensitivity of a figure to the parameter set: one-at-a-time ranges (tornado) and the single parameter value
that gives a target figure (inverse analysis by bisection)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

from ..validate import check_real


@dataclass(frozen=True)
class TornadoBar:
    name: str
    low: float
    high: float
    value_low: float     # figure with the parameter at its low end
    value_high: float    # figure with the parameter at its high end
    base: float

    @property
    def span(self) -> float:
        return abs(self.value_high - self.value_low)


def tornado(P, names: Iterable[str], figure: Callable[[object], float]) -> list[TornadoBar]:
    """Evaluate `figure(P')` at each ranged parameter's low and high end (one at a time); widest first."""
    base = float(figure(P))
    bars = []
    for n in names:
        e = P.entry(n)
        if e.low is None:
            raise ValueError(f"parameter {n} has no cited low/high range")
        bars.append(TornadoBar(n, e.low, e.high, float(figure(P.replace(**{n: e.low}))),
                               float(figure(P.replace(**{n: e.high}))), base))
    return sorted(bars, key=lambda b: -b.span)


def solve_parameter(P, name: str, figure: Callable[[object], float], target: float, lo: float, hi: float,
                    log: bool = True, rtol: float = 1e-6, max_iter: int = 200) -> float | None:
    """The value of parameter `name` in [lo, hi] at which figure(P.replace(name=value)) == target (bisection).

    Returns None when the figure does not cross the target inside [lo, hi] (no root bracketed). Bisection on a
    log scale when `log` (lo, hi > 0).
    """
    target = check_real("target", target)
    lo = check_real("lo", lo)
    hi = check_real("hi", hi)
    if not lo < hi:
        raise ValueError(f"bracket lo={lo} must be below hi={hi}")
    if log and lo <= 0:
        raise ValueError(f"lo={lo} must be > 0 for a log-scale bisection")
    f = lambda v: float(figure(P.replace(**{name: v}))) - target  # noqa: E731
    a, b = lo, hi
    fa, fb = f(a), f(b)
    if fa == 0:
        return a
    if fb == 0:
        return b
    if fa * fb > 0:
        return None
    for _ in range(max_iter):
        m = math.sqrt(a * b) if log else 0.5 * (a + b)
        fm = f(m)
        if fm == 0 or abs(b - a) <= rtol * abs(m):
            return m
        if fa * fm < 0:
            b, fb = m, fm
        else:
            a, fa = m, fm
    return math.sqrt(a * b) if log else 0.5 * (a + b)


def _evaluable_upper(P, name: str, fn, lo: float, hi: float) -> float | None:
    """Shrink hi (geometrically towards lo) until fn(P.replace(name=hi)) evaluates (e.g. an exponent too large
    for a float); None if nothing above lo does."""
    for _ in range(60):
        if hi <= lo:
            return None
        try:
            fn(P.replace(**{name: hi}))
            return hi
        except (OverflowError, ValueError, ZeroDivisionError):
            hi = (math.sqrt(hi * lo) if lo > 0 else 0.5 * (hi + lo)) if hi - lo > 1e-4 * abs(hi) else lo
    return None
