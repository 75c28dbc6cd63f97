"""Sensitivity of a figure to the parameter set: one-at-a-time ranges (tornado) and the single parameter value
that gives a target figure (inverse analysis by bisection)."""
from __future__ import annotations

import math
from typing import Callable, Iterable

from ..validate import check_real


def tornado(P, names: Iterable[str], figure: Callable[[object, str], object]) -> list[dict]:
    """One-at-a-time sensitivity: `figure(P', name)` with each named parameter at its cited low and high end.

    Args:
        P: the parameter set; names: parameters with a cited low/high range.
        figure: (P', name) -> the figure(s) at that point (a number or a dict of numbers); `name` says which
            parameter moved, so a caller can pick a cheaper evaluation for parameters that change less.
    Returns:
        One dict per parameter, in the order given: name, section, kind, unit, default, low, high and the
        figures at_low and at_high.
    """
    bars = []
    for name in names:
        e = P.entry(name)
        if e.low is None:
            raise ValueError(f"parameter {name} has no cited low/high range")
        bars.append({"name": name, "section": e.section, "kind": e.kind, "unit": e.unit, "default": e.value,
                     "low": e.low, "high": e.high, "at_low": figure(P.replace(**{name: e.low}), name),
                     "at_high": figure(P.replace(**{name: e.high}), name)})
    return bars


def span(bar: dict, key: str | None = None) -> float:
    """|figure at high - figure at low| of a tornado bar (of figure `key` when the figures are dicts)."""
    lo, hi = (bar["at_low"], bar["at_high"]) if key is None else (bar["at_low"][key], bar["at_high"][key])
    return abs(hi - lo)


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
