"""Ranged dimensions of a parameter space, shared by the Sobol analysis and the joint fit.

A dimension is one parameter with a cited range [low, high]. Where the range spans a decade or more
(high / low >= 10, low > 0) the parameter is handled on a log10 scale: Sobol samples it log-uniformly and the
joint fit measures its distance in decades. Everything else is linear.

Distance from the default, in units of the range (the joint fit's metric)::

    z = (t(x) - t(default)) / (t(high) - t(low)),   t = log10 on a log dimension, identity otherwise

so z = 1 is one full cited range (or, on a log dimension, as many decades as the range spans), and a point with
every |z| <= its distance to the range ends lies inside the cited ranges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..validate import check_real

DECADE = 10.0


def spans_decade(low: float, high: float) -> bool:
    """True where a positive range spans a decade or more (high / low >= 10): such a range is log-scaled."""
    return low > 0 and high / low >= DECADE


@dataclass(frozen=True)
class Dim:
    """One ranged parameter.

    Attributes:
        name: the parameter's name (a key of the points the engine evaluates).
        low, high: its cited range.
        default: its default value (required by the joint fit, optional for Sobol).
        log: log10 scale; None: decided by `spans_decade`.
        hard_low, hard_high: physical limits a fit that extends beyond the range may not cross (e.g. 0 for a
            positive quantity); None: none.
    """

    name: str
    low: float
    high: float
    default: float | None = None
    log: bool | None = None
    hard_low: float | None = None
    hard_high: float | None = None
    _t: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        low = check_real(f"{self.name}.low", self.low)
        high = check_real(f"{self.name}.high", self.high, low, lo_open=True)
        log = spans_decade(low, high) if self.log is None else bool(self.log)
        if log and low <= 0:
            raise ValueError(f"{self.name}: log scale needs low > 0, got low={low!r}")
        if self.default is not None:
            d = check_real(f"{self.name}.default", self.default)
            if log and d <= 0:
                raise ValueError(f"{self.name}.default={d!r} must be > 0 on a log scale")
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "_t", (self.t(low), self.t(high)))

    # --- transforms ---------------------------------------------------------------------------------------
    def t(self, x: float) -> float:
        """The value on the dimension's scale (log10 or linear)."""
        return math.log10(x) if self.log else float(x)

    def inv(self, u: float) -> float:
        """Inverse of `t`."""
        return float(10.0 ** u) if self.log else float(u)

    @property
    def width(self) -> float:
        """Width of the range on the dimension's scale (decades on a log dimension)."""
        return self._t[1] - self._t[0]

    def to_z(self, x: float) -> float:
        """Signed distance of x from the default in units of the range."""
        return (self.t(x) - self.t(self._need_default())) / self.width

    def from_z(self, z: float) -> float:
        """The value at signed distance z from the default."""
        return self.inv(self.t(self._need_default()) + z * self.width)

    def inside(self, x: float, rtol: float = 1e-9) -> bool:
        """x lies within [low, high] (with a relative tolerance for rounding)."""
        slack = rtol * max(abs(self.low), abs(self.high))
        return self.low - slack <= x <= self.high + slack

    def z_bounds(self, extend: float = 0.0) -> tuple[float, float]:
        """Bounds on z: the cited range widened by `extend` ranges on each side, clipped at the hard limits."""
        lo = self.to_z(self.low) - extend
        hi = self.to_z(self.high) + extend
        if self.hard_low is not None and not self.log:
            lo = max(lo, self.to_z(self.hard_low) + 1e-9)
        if self.hard_high is not None:
            hi = min(hi, self.to_z(self.hard_high) - 1e-9)
        return lo, hi

    def _need_default(self) -> float:
        if self.default is None:
            raise ValueError(f"dimension {self.name} has no default; give one to measure distances")
        return float(self.default)


def unit_to_values(dims: Sequence[Dim], u: np.ndarray) -> list[dict[str, float]]:
    """Map samples on the dimensions' scales (rows of u: t-values in [t(low), t(high)]) to point dicts."""
    u = np.asarray(u, dtype=float)
    if u.ndim != 2 or u.shape[1] != len(dims):
        raise ValueError(f"samples must have shape (n, {len(dims)}), got {u.shape}")
    return [{d.name: d.inv(float(v)) for d, v in zip(dims, row)} for row in u]


_HARD = {"positive": (0.0, None), "nonneg": (0.0, None), "fraction": (0.0, 1.0), "any": (None, None)}


def dims_from_params(P, names: Iterable[str] | None = None, log: dict[str, bool] | None = None) -> list[Dim]:
    """Dimensions for ranged parameters of a ParamSet (default: every non-derived one with a cited range).

    Args:
        P: the ParamSet.
        names: parameter names; each must carry low/high in the parameter files.
        log: per-name override of the log rule.
    Returns:
        One Dim per name: the cited range, the current value as default, the domain as hard limits.
    """
    names = list(P.ranged() if names is None else names)
    out = []
    for n in names:
        e = P.entry(n)
        if e.low is None:
            raise ValueError(f"parameter {n} has no cited low/high range; ranged: {P.ranged()}")
        if e.kind == "derived":
            raise ValueError(f"parameter {n} is derived ({e.formula}); range its inputs instead")
        hard_low, hard_high = _HARD[e.valid]
        out.append(Dim(n, e.low, e.high, default=e.value, log=(log or {}).get(n), hard_low=hard_low,
                       hard_high=hard_high))
    return out


def check_dims(dims: Sequence[Dim]) -> list[Dim]:
    """A non-empty list of Dims with distinct names."""
    dims = list(dims)
    if not dims or not all(isinstance(d, Dim) for d in dims):
        raise ValueError("dims must be a non-empty sequence of ibnn.explore.space.Dim")
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise ValueError(f"dims have repeated names: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return dims
