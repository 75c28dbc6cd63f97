"""One nonideality at a time: every mechanism of `ibnn.circuit.Nonidealities` alone (all others off) at a few
multiples of its parameter-set magnitude, each point's drop with a two-level bootstrap interval, each panel's
resolution, and inverse points read from power-law fits (`ibnn.analysis.inverse`), never off a raw curve whose
intervals span the target.

A mechanism can be switched on over a base (`over`, e.g. the bit-line's physical compression, which every real
chip has): the chip then has the base scales and the swept mechanism at its scale, everything else off. Every
point is also reported as its excess over the base (the same chips and images with the mechanism off, paired):
what the mechanism itself costs.

All points of one mechanism use the same chip seed (a Nonidealities scale multiplies fixed standard-normal draws,
so the points differ only by the scale) and the same images: the points are paired, and a fit through them is
bootstrapped with one set of resamples.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import torch

from ..circuit import nonideal
from ..validate import check_choice, check_int
from . import bootstrap as B
from .evaluation import TestBed, run_method
from .inverse import PowerLawFit, fit_power_law, read_crossing
from .stats import make_chips


def magnitude(name: str, scale: float, P) -> tuple[float, str]:
    """The physical magnitude a scale of mechanism `name` stands for, and its unit; the scale itself for a
    mechanism without a physical axis."""
    try:
        return nonideal.physical_magnitude(name, scale, P)
    except ValueError:
        if name not in nonideal.NONIDEALITIES:
            raise
        return float(scale), f"{name.replace('_', ' ')} scale (1 = parameter set)"


@dataclass
class Sweep:
    """One mechanism alone at several scales: per point the drop (DropCI) and the correctness matrix."""
    name: str
    unit: str
    scales: list
    magnitudes: list
    default_magnitude: float
    drops: list                                   # DropCI per point
    excess: list                                  # DiffCI per point: drop minus the base's drop, paired
    base: B.DropCI                                # the base (the mechanism off) on the same chips and images
    over: dict = field(default_factory=dict)
    soft: torch.Tensor = field(repr=False, default=None)    # (N,) the software correctness on the images
    mats: list = field(repr=False, default_factory=list)    # (n_chips, N) bool per point
    base_mat: torch.Tensor = field(repr=False, default=None)

    @property
    def resolution(self) -> B.Resolution:
        """The panel's resolution: that of its least resolved excess over the base (the widest interval)."""
        return max((B.resolution(d) for d in self.excess), key=lambda r: r.halfwidth)

    def resolution_at(self, scale: float = 1.0) -> B.Resolution | None:
        """The resolution of the excess at one scale (default: the parameter set's), None if not swept."""
        hits = [d for s, d in zip(self.scales, self.excess) if abs(s - scale) < 1e-12]
        return B.resolution(hits[0]) if hits else None

    def excess_at(self, scale: float = 1.0) -> B.DiffCI | None:
        """The excess over the base at one scale, None if not swept."""
        hits = [d for s, d in zip(self.scales, self.excess) if abs(s - scale) < 1e-12]
        return hits[0] if hits else None

    def as_dict(self) -> dict:
        """JSON-ready: unit, default magnitude, points (scale, magnitude, drop with ci95 and ci_method, whether it
        is resolved from 0), the panel's resolution."""
        pts = [{"scale": s, "magnitude": x, **d.as_dict(), "excess_over_base": e.as_dict()}
               for s, x, d, e in zip(self.scales, self.magnitudes, self.drops, self.excess)]
        n = self.drops[0]
        at1 = self.resolution_at(1.0)
        return {"unit": self.unit, "default_magnitude": self.default_magnitude, "points": pts,
                "base": {**self.base.as_dict(), "over": dict(self.over)},
                "n_chips": n.n_chips, "n_images": n.n_images, "resolution": self.resolution.as_dict(),
                "resolution_at_parameter_set": at1.as_dict() if at1 is not None else None}


def alone_over(name: str, scale: float, over: Mapping[str, float] | None = None) -> nonideal.Nonidealities:
    """Nonidealities with `name` at `scale`, the mechanisms in `over` at their given scales, the rest off."""
    base = nonideal.alone(name, scale)
    kw = {k: v for k, v in (over or {}).items() if k != name}
    for k in kw:
        check_choice("over", k, nonideal.NONIDEALITIES)
    return replace(base, **kw)


def _points(P, mapping, bed: TestBed, name: str, scales, n_chips: int, seed: int, noise_seed: int, over):
    """(scales sorted, magnitudes, unit, correctness matrices) of mechanism `name` at each scale."""
    if not scales:
        raise ValueError(f"scales={list(scales)} must name at least one scale")
    scales = sorted(float(s) for s in scales)
    mats, mags, unit = [], [], ""
    for s in scales:
        chip = make_chips(P, n_chips, seed, nonideal=alone_over(name, s, over))
        mats.append(run_method(mapping, chip, bed, None, noise_seed).correct)
        x, unit = magnitude(name, s, P)
        mags.append(x)
    return scales, mags, unit, mats


def sweep(P, mapping, bed: TestBed, name: str, scales: Sequence[float], n_chips: int, seed: int,
          noise_seed: int = 1, n_boot: int = 2000, over: Mapping[str, float] | None = None) -> Sweep:
    """Mechanism `name` at each scale (over the base `over`, else alone) on `n_chips` chips (seed) and the test
    bed's images (naive mapping)."""
    return sweep_all(P, mapping, bed, [name], scales, n_chips, seed, noise_seed, n_boot, over)[name]


def sweep_all(P, mapping, bed: TestBed, names: Sequence[str] | None, scales: Sequence[float], n_chips: int,
              seed: int, noise_seed: int = 1, n_boot: int = 2000, over: Mapping[str, float] | None = None,
              extra: Mapping[str, Sequence[float]] | None = None) -> dict:
    """`sweep` for every mechanism in `names` (None or empty: every field of Nonidealities), at `scales` plus the
    mechanism's `extra` scales (e.g. more points for a fit). Every point has the same chips x images, so all
    are bootstrapped in one pass on the same resamples (`bootstrap.replicates`)."""
    n_chips = check_int("n_chips", n_chips, 1)
    names = list(names) if names else list(nonideal.NONIDEALITIES)
    extra, over = extra or {}, dict(over or {})
    base_ni = replace(nonideal.Nonidealities.ideal(), **over)
    base = run_method(mapping, make_chips(P, n_chips, seed, nonideal=base_ni), bed, None, noise_seed).correct
    runs = {n: _points(P, mapping, bed, n, set(map(float, scales)) | set(map(float, extra.get(n, ()))), n_chips,
                       seed, noise_seed, over) for n in names}
    mats = [base] + [m for r in runs.values() for m in r[3]]
    rep = B.replicates(mats, [bed.soft] * len(mats), n_boot, seed=0)
    base_ci, it = B.drop_from_replicates(rep[0], base, bed.soft), iter(range(1, len(mats)))
    out = {}
    for n, (sc, mags, unit, ms) in runs.items():
        idx = [next(it) for _ in ms]
        drops = [B.drop_from_replicates(rep[i], m, bed.soft) for i, m in zip(idx, ms)]
        exc = [B.difference_from_replicates(rep[i], rep[0], d.mean_drop - base_ci.mean_drop, n_chips,
                                            int(bed.soft.numel())) for i, d in zip(idx, drops)]
        out[n] = Sweep(n, unit, sc, mags, magnitude(n, 1.0, P)[0], drops, exc, base_ci, over, bed.soft, ms, base)
    return out


def inverse_point(sw: Sweep, target: float, n_boot: int = 2000, scales: Sequence[float] | None = None) -> PowerLawFit:
    """The magnitude at which this mechanism costs `target` (its excess drop over the base).

    A power law excess = a x^b fitted in log-log through the sweep's points (those at `scales`, default all: a
    local fit around the target describes it better than one stretched over every point), with a two-level
    bootstrap interval (quotable only when the interval lies inside the fitted range); the raw crossing only where
    resolved (`read_crossing`)."""
    keep = [i for i, s in enumerate(sw.scales) if scales is None or any(abs(s - t) < 1e-12 for t in scales)]
    if len(keep) < 2:
        raise ValueError(f"sweep {sw.name}: {len(keep)} point(s) at scales={scales}; a fit needs at least 2")
    return fit_power_law([sw.magnitudes[i] for i in keep], [sw.mats[i] for i in keep], [sw.soft] * len(keep),
                         target, n_boot, base=sw.base_mat)


def crossing_of(sw: Sweep, target: float) -> dict:
    """What the raw points say about where the excess over the base reaches `target` (`read_crossing`)."""
    if len(sw.excess) < 2:
        return {"resolved": False, "bracket": None, "reason": "fewer than 2 points"}
    return read_crossing(sw.magnitudes, [d.ci95[0] for d in sw.excess], [d.ci95[1] for d in sw.excess],
                         target).as_dict()
