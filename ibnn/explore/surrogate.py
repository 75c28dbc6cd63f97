"""A smooth local stand-in for a noisy Monte-Carlo figure (the accuracy drop), for the joint fit's optimiser;
every fitted point is then measured by the real model (`paperfit.verify`).

`LocalLinear`: the figure at a centre point and its slopes along each input, by central differences of step h
(range units, `space.Dim.to_z`) measured with one seed for every point (common random numbers: the same chips,
images and noise streams), so a difference carries the parameter's effect and not the sampling noise of either
end. Outside the inputs it is constant. A group offset (e.g. another supply for the same chips) is a paired
difference at the centre. `measure_local` makes the 2 D + 1 (+ groups) evaluations through the engine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..validate import check_positive
from .engine import run_sweep
from .keys import canonical_json
from .space import Dim, check_dims


@dataclass(frozen=True)
class LocalLinear:
    """y = y0 + sum_i g_i (z_i - z0_i) (+ offset of a group); z_i: input i in range units from its default.
    With log=True the same form holds for ln y (a product of power laws: energies, ratios, TOPS/W), y > 0.

    Attributes:
        output: the figure; dims: the inputs; centre: their values at the centre; y0: the figure there;
        slopes: dy/dz per input; step: the central-difference step h (range units); offsets: group -> offset;
        one_sided: the inputs whose slope is a forward difference of step h.
    """

    output: str
    dims: tuple
    centre: dict
    y0: float
    slopes: tuple
    step: float
    offsets: dict = field(default_factory=dict)
    log: bool = False
    one_sided: tuple = ()

    def predict(self, values: Mapping[str, float], group: str | None = None) -> float:
        """The model at the given input values (extra entries ignored), plus the group's offset."""
        y = self.y0
        for d, g in zip(self.dims, self.slopes):
            y += g * (d.to_z(float(values[d.name])) - d.to_z(float(self.centre[d.name])))
        if group is not None:
            if group not in self.offsets:
                raise ValueError(f"model of {self.output}: no offset for group {group!r}; known: "
                                 f"{sorted(self.offsets)}")
            y += self.offsets[group]
        return float(np.exp(y)) if self.log else float(y)

    def shifted(self, delta: float) -> "LocalLinear":
        """The same model moved by delta (a correction from a verified evaluation)."""
        return replace(self, y0=self.y0 + float(delta))

    def digest(self) -> str:
        """sha256 of the model (enters the cache key of a point function that uses it)."""
        return hashlib.sha256(canonical_json(self.as_dict()).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {"output": self.output, "inputs": [d.name for d in self.dims], "centre": dict(self.centre),
                "y0": self.y0, "slopes_per_range": dict(zip([d.name for d in self.dims], self.slopes)),
                "step_range_units": self.step, "offsets": dict(self.offsets), "log": self.log,
                "one_sided": list(self.one_sided),
                "form": ("ln y" if self.log else "y") + " = y0 + sum_i slope_i (z_i - z_centre_i), z in range units; "
                        "central differences (forward ones for the inputs in one_sided) on common random numbers"}


def _axial(dims: Sequence[Dim], centre: Mapping[str, Any], values: Mapping[str, float], h: float,
           one_sided: frozenset = frozenset()) -> list[tuple[dict | None, dict, float]]:
    """Per input: (point at -h, point at +h, actual 2h) around the centre, clipped into the cited range; for an
    input in `one_sided`: (None, point at +h (or -h where +h leaves the range), signed h): a forward difference."""
    out = []
    for d in dims:
        z0 = d.to_z(float(values[d.name]))
        lo, hi = d.z_bounds()
        if d.name in one_sided:
            zs = z0 + h if z0 + h <= hi else max(lo, z0 - h)
            out.append((None, {**centre, d.name: d.from_z(zs)}, zs - z0))
            continue
        zm, zp = max(lo, z0 - h), min(hi, z0 + h)
        out.append(({**centre, d.name: d.from_z(zm)}, {**centre, d.name: d.from_z(zp)}, zp - zm))
    return out


def measure_local(measure, outputs: Sequence[str], dims: Sequence[Dim], centre: Mapping[str, Any], h: float,
                  engine, groups: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
                  log: Sequence[str] = (), one_sided: Sequence[str] = (), **sweep) -> dict:
    """LocalLinear models of `outputs` of the point function `measure` around `centre` (a point: its entries
    for `dims` and anything else held fixed), one sweep of 2 D + 1 + len(groups) points on one seed (one point
    less per input named in `one_sided`).

    groups: name -> entries added to the centre (e.g. {"supply=1": {"supply": 1.0}}): the paired difference at
    the centre becomes the group's offset. log: outputs modelled as ln y (each must be > 0 at every point).
    one_sided: inputs whose slope is a forward difference (y(z0 + h) - y(z0)) / h: one point instead of two,
    for inputs whose every point is expensive. That slope is the central one at z0 + h/2: it differs from the
    centre's by h/2 times the second derivative (plus O(h^2)), where a central difference is off by h^2/6 times
    the third.
    Returns {output: LocalLinear}."""
    dims, h = check_dims(dims), check_positive("h", h)
    centre, fwd = dict(centre), frozenset(one_sided)
    values = {d.name: centre.get(d.name, d.default) for d in dims}
    axial, groups = _axial(dims, centre, values, h, fwd), dict(groups or {})
    pts = [centre] + [p for m, p_, _ in axial for p in ((m, p_) if m is not None else (p_,))]
    n_axial = len(pts)
    pts += [{**centre, **g} for g in groups.values()]
    res = run_sweep(measure, pts, engine=engine, seed=seed, seed_keys=(), desc="local model", **sweep).results
    out = {}
    for o in outputs:
        lg = o in log
        y = [_value(r[o], o, lg) for r in res]
        slopes, k = [], 1
        for m, _, w in axial:
            lo_y, hi_y = (y[0], y[k]) if m is None else (y[k], y[k + 1])
            k += 1 if m is None else 2
            slopes.append((hi_y - lo_y) / w if w != 0 else 0.0)
        offsets = {name: y[n_axial + j] - y[0] for j, name in enumerate(groups)}
        out[o] = LocalLinear(o, tuple(dims), values, y[0], tuple(slopes), h, offsets, lg,
                             tuple(sorted(fwd & set(values))))
    return out


def _value(v, output: str, log: bool) -> float:
    v = float(v)
    if log and not v > 0:
        raise ValueError(f"output {output!r} = {v} cannot be modelled on a log scale (must be > 0)")
    return float(np.log(v)) if log else v
