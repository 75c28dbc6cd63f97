"""Inverse points read from fits with uncertainty, and choices made on validation data.

`fit_power_law` reads an inverse point (e.g. the sigma(Vt) at which the drop reaches a target) from a weighted
log-log fit refitted in every two-level bootstrap replicate (all sweep points resampled together, on the same
chips and images), quotable only when its whole interval lies inside the swept range; `read_crossing` reads a
crossing off a raw curve only where one point is resolvably below the target and a later one resolvably above;
`choose_on_validation` takes the cheapest option not resolvably worse than the best one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from ..validate import check_real
from .bootstrap import (
    CI_METHOD,
    Resolution,
    _as_matrix,
    _as_vector,
    _check_boot,
    _percentile,
    drop_ci,
    paired_difference,
    replicates,
    resolution,
)


@dataclass
class Choice:
    """An option chosen on validation data (tuning chips x validation images), with the comparison's resolution."""
    chosen: object
    best: object
    rule: str
    options: list              # per option: value, cost, drop (DropCI dict), vs_best (DiffCI dict)
    resolution: Resolution     # of the paired difference between the chosen and the best option

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "best": self.best, "rule": self.rule, "options": self.options,
                "resolution": self.resolution.as_dict()}


def choose_on_validation(values: Sequence, costs: Sequence[float], mats: Sequence, softs: Sequence,
                         n_boot: int = 2000, seed: int = 0) -> Choice:
    """The cheapest option not resolvably worse than the best one (lowest validation drop).

    values: the option values (e.g. calibration sizes); costs: what each costs (e.g. classify cycles); mats,
    softs: each option's validation correctness matrix (tuning chips x validation images, the same for all
    options) and software correctness. Rule: among options whose paired drop difference to the best has a ci95
    that includes 0, the cheapest (ties: the better drop)."""
    if not (len(values) == len(costs) == len(mats) == len(softs)) or not values:
        raise ValueError(f"values, costs, mats, softs must be non-empty and of one length; got {len(values)}, "
                         f"{len(costs)}, {len(mats)}, {len(softs)}")
    drops = [drop_ci(m, s, n_boot, seed) for m, s in zip(mats, softs)]
    ib = int(np.argmin([d.mean_drop for d in drops]))
    diffs = [paired_difference(m, s, mats[ib], softs[ib], n_boot=n_boot, seed=seed) for m, s in zip(mats, softs)]
    ok = [i for i, d in enumerate(diffs) if d.ci95[0] <= 0 or i == ib]
    ic = min(ok, key=lambda i: (float(costs[i]), drops[i].mean_drop))
    opts = [{"value": v, "cost": float(c), "drop": d.as_dict(), "vs_best": f.as_dict()}
            for v, c, d, f in zip(values, costs, drops, diffs)]
    ref = diffs[ic] if ic != ib else max((f for i, f in enumerate(diffs) if i != ib), key=lambda f: f.se,
                                         default=diffs[ib])
    return Choice(values[ic], values[ib], "cheapest option whose paired drop difference to the best option "
                  "(lowest validation drop) has a 95% interval that includes 0", opts, resolution(ref))


@dataclass
class Crossing:
    """Where a swept curve crosses a target level, if the data resolve it."""
    resolved: bool
    bracket: list | None       # [x of the last point resolvably below, x of the first point resolvably above]
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def read_crossing(x: Sequence[float], ci_lo: Sequence[float], ci_hi: Sequence[float], target: float) -> Crossing:
    """The rule for reading a crossing off a sweep (x increasing): only where a point lies resolvably below the
    target (ci95 entirely below) and a LATER point resolvably above it (ci95 entirely above), with no resolved
    point above before the bracket and none below after it (a resolvably non-monotone curve has no single
    crossing). Otherwise no crossing is read (resolved False) and `reason` says why."""
    x, lo, hi = (np.asarray(v, dtype=np.float64) for v in (x, ci_lo, ci_hi))
    if not (x.shape == lo.shape == hi.shape) or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x, ci_lo, ci_hi must be 1-D of one length >= 2; got {x.shape}, {lo.shape}, {hi.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing")
    below, above = hi < target, lo > target
    if not below.any() or not above.any():
        which = "no point is resolvably below" if not below.any() else "no point is resolvably above"
        return Crossing(False, None, f"{which} the target {target:g}: the intervals span it")
    i_lo = int(np.nonzero(below)[0].max())
    i_hi = int(np.nonzero(above)[0].min())
    if i_hi < i_lo:
        return Crossing(False, None, "resolvably non-monotone: a point above the target precedes one below it")
    return Crossing(True, [float(x[i_lo]), float(x[i_hi])], "bracketed by resolved points")


@dataclass
class PowerLawFit:
    """drop = a x^b fitted in log-log (weighted by 1 / var(log drop)), and x where it reaches the target.

    x_ci95: percentile interval of x_at_target over the refitted replicates (None when fewer than `level` of
    them give a valid fit). quotable: the rule for quoting an inverse point, True only when that interval exists
    and lies inside the swept range (an interpolation, not an extrapolation). crossing: what the raw points say
    (`read_crossing`); a crossing is never read off the raw curve where it is not resolved."""
    a: float
    b: float
    b_ci95: list | None
    x_at_target: float | None
    x_ci95: list | None
    quotable: bool
    target: float
    crossing: Crossing
    n_points: int
    valid_fraction: float      # replicates in which >= 2 points had a positive drop and b > 0
    extrapolated: bool         # x_at_target outside the swept x range
    ci_method: str = CI_METHOD + ", refitted per replicate"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["crossing"] = self.crossing.as_dict()
        return d


def _wls_loglog(lx: torch.Tensor, ly: torch.Tensor, w: torch.Tensor):
    """Per row: weighted least squares ly = la + b lx (w = 0 drops a point). Returns (la, b) per row."""
    sw = w.sum(-1)
    mx, my = (w * lx).sum(-1) / sw, (w * ly).sum(-1) / sw
    b = (w * (lx - mx[..., None]) * (ly - my[..., None])).sum(-1) / (w * (lx - mx[..., None]) ** 2).sum(-1)
    return my - b * mx, b


def _sweep_replicates(mats, softs, base, n_boot: int, seed: int):
    """(point drops (P,), replicates (P, n_boot)) of each sweep point, or of its excess over `base` (a correctness
    matrix of the same chips and images with the swept mechanism off): drop_k - drop_base = mean(C_base - C_k),
    bootstrapped on the cell differences, paired over chips and images."""
    C = [_as_matrix(f"mats[{i}]", m) for i, m in enumerate(mats)]
    S = [_as_vector(f"softs[{i}]", s, C[i].shape[1]) for i, s in enumerate(softs)]
    if base is None:
        point = torch.tensor([float(s.mean() - c.double().mean()) for c, s in zip(C, S)], dtype=torch.float64)
        return point, replicates(C, S, n_boot, seed)
    Cb = _as_matrix("base", base)
    if any(c.shape != Cb.shape for c in C):
        raise ValueError(f"base shape={tuple(Cb.shape)} must equal every sweep matrix's (same chips and images)")
    point = torch.tensor([float(Cb.double().mean() - c.double().mean()) for c in C], dtype=torch.float64)
    return point, replicates([c - Cb for c in C], None, n_boot, seed)


def fit_power_law(x: Sequence[float], mats: Sequence, softs: Sequence, target: float, n_boot: int = 2000,
                  seed: int = 0, level: float = 0.95, base=None) -> PowerLawFit:
    """Fit drop = a x^b through sweep points and invert it at `target`, with a two-level bootstrap interval.

    x: the swept magnitude (> 0, increasing), e.g. sigma(Vt) in mV; mats / softs: each point's correctness
    matrix and software correctness. The points should share chips and images (one chip seed scaled, the same
    images): all points are then resampled with the SAME resamples, which keeps their correlation. Each replicate
    is refitted (weights from the point estimates' standard errors; points with a drop <= 0 in a replicate are
    left out of that fit). With `base` (the correctness of the same chips and images with the swept mechanism
    off), the fitted quantity is the excess drop over the base, paired. Quote x_at_target only where `quotable`
    (its interval inside the swept range)."""
    n_boot, seed, level = _check_boot(n_boot, seed, level)
    target = check_real("target", target, 0.0, lo_open=True)
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim != 1 or xs.size < 2 or np.any(xs <= 0) or len(mats) != xs.size or len(softs) != xs.size:
        raise ValueError(f"x must be >= 2 positive values, one per matrix; got {xs.tolist()} and {len(mats)} mats")
    point, rep = _sweep_replicates(mats, softs, base, n_boot, seed)                       # (P,), (P, n_boot)
    return _fit(xs, point, rep, target, level)


def _fit(xs, point: torch.Tensor, rep: torch.Tensor, target: float, level: float) -> PowerLawFit:
    """The weighted log-log fit of the point drops and its refits on every replicate."""
    se = rep.std(1).clamp_min(1e-12)
    lx = torch.log(torch.as_tensor(xs))
    w0 = torch.where(point > 0, (point / se) ** 2, torch.zeros_like(point))
    if int((w0 > 0).sum()) < 2:
        raise ValueError(f"fewer than 2 sweep points have a positive drop ({point.tolist()}): no power law to fit")
    la, b = _wls_loglog(lx, torch.log(point.clamp_min(1e-300)), w0)
    Y = rep.T                                                                             # (n_boot, P)
    W = torch.where(Y > 0, w0[None].expand_as(Y), torch.zeros_like(Y))
    la_r, b_r = _wls_loglog(lx[None].expand_as(Y), torch.log(Y.clamp_min(1e-300)), W)
    valid = ((W > 0).sum(1) >= 2) & (b_r > 0) & torch.isfinite(b_r)
    x_r = torch.exp((math.log(target) - la_r) / b_r)
    x_at = math.exp((math.log(target) - float(la)) / float(b)) if float(b) > 0 else None
    cr = read_crossing(xs, rep.quantile(0.5 * (1 - level), 1).tolist(), rep.quantile(0.5 + 0.5 * level, 1).tolist(),
                       target)
    frac = float(valid.double().mean())
    x_ci = list(_percentile(x_r[valid], level)) if frac >= level else None
    b_ci = list(_percentile(b_r[valid], level)) if frac > 0 else None
    quotable = x_ci is not None and x_at is not None and xs[0] <= x_ci[0] and x_ci[1] <= xs[-1]
    return PowerLawFit(math.exp(float(la)), float(b), b_ci, x_at, x_ci, bool(quotable), target, cr, int(xs.size),
                       frac, bool(x_at is not None and not (xs[0] <= x_at <= xs[-1])))
