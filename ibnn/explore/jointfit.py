"""The joint fit: the point closest to the defaults at which every target band holds, or the closest miss.

Problem. Continuous parameters x (each a `space.Dim`: default, cited range, log scale where the range spans a
decade), discrete choices c (each a list of options, the first one the default), a point function
``fn(point, seed) -> figures`` and target bands (`Band`: a figure within `tol` of its target, rule equal,
at_least or at_most). In the range units z of `space` (z = 0 at the defaults)::

    minimise |z|^2   subject to   every band holds at (x(z), c),   z within the search box

for every combination of choices; the answer is the feasible combination with the smallest distance |z|. The
search box is the cited ranges, widened by `extend` ranges on each side where the caller allows it (clipped at
each parameter's physical limits); every fitted value is reported as inside or outside its cited range.

Method (scipy.optimize), in two phases from the defaults and from `n_starts - 1` scrambled Halton points of the
box. Phase I (feasibility): L-BFGS-B minimises the squared band violations (each margin normalised by its band's
width, or its target where the width is 0) inside the box, plus 1e-6 |z|^2 to take the closest of equally bad
points. Phase II (closest point): SLSQP (sequential least squares programming) on the smooth objective |z|^2
with the bands as inequality constraints (an equal band is two), from every phase-I point that nearly satisfies
the bands. Where no phase-I point does, the least violating one is "the closest point", reported with what each
figure misses by (phase I is cheap, whereas SLSQP on an infeasible problem iterates to its limit). Jacobians by
forward differences of step `fd_step` (range units): the D + 1 points of one Jacobian go out as one sweep, so
they run in parallel on the engine and land in its cache.

All points of a fit share one seed (``seed_keys=()``, common random numbers): Monte-Carlo figures then differ
between nearby points only through the parameters, which the finite differences need. Constraints of a noisy or
piecewise-constant figure (an accuracy over a finite image set) need a larger `fd_step`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import optimize
from scipy.stats import qmc

from ..validate import check_choice, check_int, check_nonneg, check_positive, check_real
from .engine import Engine, default_code_version, open_engine, run_sweep
from .space import Dim, check_dims

RULES = ("equal", "at_least", "at_most")


@dataclass(frozen=True)
class Band:
    """A target band: `figure` within tol + rel_tol |target| of `target` (equal), or not below (at_least) or
    not above (at_most) it by more than that."""

    figure: str
    target: float
    rule: str = "equal"
    tol: float = 0.0
    rel_tol: float = 0.0

    def __post_init__(self):
        check_real(f"band {self.figure}: target", self.target)
        check_choice(f"band {self.figure}: rule", self.rule, RULES)
        check_nonneg(f"band {self.figure}: tol", self.tol)
        check_nonneg(f"band {self.figure}: rel_tol", self.rel_tol)

    @property
    def width(self) -> float:
        """The tolerance in figure units."""
        return self.tol + self.rel_tol * abs(self.target)

    @property
    def scale(self) -> float:
        """Unit of the normalised margins: the width, or |target| (1 for a zero target) where it is 0."""
        return self.width if self.width > 0 else (abs(self.target) or 1.0)

    def limits(self) -> tuple[float, float]:
        """(lower, upper) edges of the band (+-inf on an open side)."""
        lo = self.target - self.width if self.rule in ("equal", "at_least") else -math.inf
        hi = self.target + self.width if self.rule in ("equal", "at_most") else math.inf
        return lo, hi

    def margins(self, value: float) -> list[float]:
        """Normalised margins, one per finite edge: >= 0 where the band holds on that side."""
        lo, hi = self.limits()
        return [(value - lo) / self.scale] * (lo > -math.inf) + [(hi - value) / self.scale] * (hi < math.inf)

    def miss(self, value: float) -> float:
        """How far (figure units) the value lies outside the band; 0 inside."""
        lo, hi = self.limits()
        return max(lo - value, value - hi, 0.0)


@dataclass(frozen=True)
class BandCheck:
    """A band at the fitted point: the figure's value, whether it holds, and the miss (absolute, relative)."""

    figure: str
    rule: str
    target: float
    width: float
    value: float
    holds: bool
    miss: float
    rel_miss: float


@dataclass(frozen=True)
class Move:
    """One parameter at the fitted point: value beside default, signed distance z (range units), inside its
    cited range or not, moved (|z| > the fit's move_tol) or not."""

    name: str
    default: float
    value: float
    z: float
    low: float
    high: float
    log: bool
    inside: bool
    moved: bool


@dataclass
class ChoiceFit:
    """The fit for one combination of the discrete choices."""

    choices: dict
    changed: list[str]
    feasible: bool
    distance: float
    violation: float
    point: dict
    figures: dict
    bands: list[BandCheck]
    moves: list[Move]
    message: str

    def as_dict(self) -> dict:
        return {"choices": self.choices, "changed_choices": self.changed, "feasible": self.feasible,
                "distance": self.distance, "violation": self.violation, "point": self.point,
                "figures": self.figures, "bands": [asdict(b) for b in self.bands],
                "moves": [asdict(m) for m in self.moves], "message": self.message}


@dataclass
class FitResult:
    """The best combination (feasible and closest, else the least violating), every combination, and the
    engine the points ran on."""

    feasible: bool
    best: ChoiceFit
    fits: list[ChoiceFit]
    extend: float
    n_points: int
    engine: dict = field(default_factory=dict)

    def moved(self) -> list[Move]:
        """The parameters the best fit moves."""
        return [m for m in self.best.moves if m.moved]

    def as_dict(self) -> dict:
        return {"feasible": self.feasible, "best": self.best.as_dict(), "extend": self.extend,
                "n_points": self.n_points, "engine": self.engine, "fits": [f.as_dict() for f in self.fits]}


class _Figures:
    """Figures of the points of one choice combination, by z; memoised, evaluated in batches on the engine."""

    def __init__(self, fn, dims, bands, fixed, engine, sweep, fd_step, bounds):
        self.fn, self.dims, self.bands, self.fixed = fn, dims, bands, fixed
        self.engine, self.sweep, self.h, self.bounds = engine, sweep, fd_step, bounds
        self.memo: dict[bytes, dict] = {}
        self.info: dict = {}

    def point(self, z) -> dict:
        return {**self.fixed, **{d.name: d.from_z(float(v)) for d, v in zip(self.dims, z)}}

    def at(self, zs) -> list[dict]:
        zs = [np.asarray(z, dtype=float) for z in zs]
        todo = list({z.tobytes(): z for z in zs if z.tobytes() not in self.memo}.values())
        if todo:
            res = run_sweep(self.fn, [self.point(z) for z in todo], engine=self.engine, **self.sweep)
            self.info = res.engine.as_dict() if res.engine.kind != "cache" else self.info or res.engine.as_dict()
            for z, r in zip(todo, res.results):
                self.memo[z.tobytes()] = r
        return [self.memo[z.tobytes()] for z in zs]

    def value(self, figs: dict, band: Band) -> float:
        if band.figure not in figs:
            raise ValueError(f"band figure {band.figure!r} is not among the figures {sorted(figs)}")
        return float(figs[band.figure])

    def margins_of(self, figs: dict) -> np.ndarray:
        return np.array([m for b in self.bands for m in b.margins(self.value(figs, b))])

    def margins(self, z) -> np.ndarray:
        return self.margins_of(self.at([z])[0])

    def jacobian(self, z) -> np.ndarray:
        """d margins / dz by forward differences (backward at an upper bound), one batch of D + 1 points."""
        z = np.asarray(z, dtype=float)
        steps = [self.h if z[i] + self.h <= self.bounds[i][1] else -self.h for i in range(len(z))]
        shifted = [z + s * np.eye(len(z))[i] for i, s in enumerate(steps)]
        figs = self.at([z] + shifted)
        m0 = self.margins_of(figs[0])
        return np.array([(self.margins_of(f) - m0) / s for f, s in zip(figs[1:], steps)]).T


def _violation(m: np.ndarray) -> float:
    return float(np.sum(np.minimum(m, 0.0) ** 2))


def _slsqp(F: _Figures, z0, bounds, maxiter: int):
    cons = [{"type": "ineq", "fun": F.margins, "jac": F.jacobian}]
    res = optimize.minimize(lambda z: float(z @ z), z0, jac=lambda z: 2 * z, method="SLSQP", bounds=bounds,
                            constraints=cons, options={"maxiter": maxiter, "ftol": 1e-12})
    return np.clip(res.x, [b[0] for b in bounds], [b[1] for b in bounds]), str(res.message)


def _least_violation(F: _Figures, z0, bounds, maxiter: int) -> np.ndarray:
    """Phase I: minimise the squared band violations (+ 1e-6 |z|^2, to take the closest of equally bad
    points) inside the box with L-BFGS-B."""
    def f(z):
        m = F.margins(z)
        g = 2 * np.minimum(m, 0.0) @ F.jacobian(z)
        return _violation(m) + 1e-6 * float(z @ z), g + 2e-6 * z

    res = optimize.minimize(f, z0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter})
    return res.x


def _starts(bounds, n_starts: int, seed: int) -> list[np.ndarray]:
    """The defaults (z = 0, clipped into the box) and n_starts - 1 scrambled Halton points of the box."""
    lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    starts = [np.clip(np.zeros(len(bounds)), lo, hi)]
    if n_starts > 1:
        u = qmc.Halton(len(bounds), scramble=True, seed=seed).random(n_starts - 1)
        starts += list(lo + u * (hi - lo))
    return starts


NEAR = 1e-3    # phase I ends this close (band-scale units) to satisfying every band: phase II starts from it


def _fit_choice(F: _Figures, bounds, n_starts, seed, maxiter, feas_tol):
    """(z, message): phase I (least violation) from every start; phase II (SLSQP, closest to the defaults)
    from each phase-I point that (nearly) satisfies every band; the closest feasible result, else the least
    violating phase-I point."""
    phase1 = [_least_violation(F, z0, bounds, maxiter) for z0 in _starts(bounds, n_starts, seed)]
    near = [z for z in phase1 if F.margins(z).min() >= -NEAR]
    found = [_slsqp(F, z, bounds, maxiter) for z in near]
    feasible = [(z, msg) for z, msg in found if F.margins(z).min() >= -feas_tol]
    if feasible:
        return min(feasible, key=lambda f: float(f[0] @ f[0]))
    z = min(phase1, key=lambda z: (_violation(F.margins(z)), float(z @ z)))
    return z, f"no point of the search box satisfies every band (least violation from {len(phase1)} starts)"


def _report(F: _Figures, z, choices, defaults, message, feas_tol, move_tol) -> ChoiceFit:
    figs = F.at([z])[0]
    checks = []
    for b in F.bands:
        v = F.value(figs, b)
        miss = b.miss(v)
        checks.append(BandCheck(b.figure, b.rule, b.target, b.width, v, miss <= feas_tol * b.scale, miss,
                                miss / (abs(b.target) or 1.0)))
    moves = [Move(d.name, float(d.default), d.from_z(float(zi)), float(zi), d.low, d.high, d.log,
                  d.inside(d.from_z(float(zi))), abs(float(zi)) > move_tol) for d, zi in zip(F.dims, z)]
    feasible = all(c.holds for c in checks)
    violation = float(sum(c.miss / F.bands[i].scale for i, c in enumerate(checks)))
    return ChoiceFit(dict(choices), [k for k in choices if choices[k] != defaults[k]], feasible,
                     float(np.linalg.norm(z)), violation, F.point(z), figs, checks, moves, message)


def choice_combinations(choices: Mapping[str, Sequence] | None) -> list[dict]:
    """Every combination of the discrete choices, the defaults (first options) first."""
    choices = dict(choices or {})
    for k, opts in choices.items():
        if not isinstance(opts, (list, tuple)) or not opts:
            raise ValueError(f"choice {k!r} must list its options (the first is the default), got {opts!r}")
    return [dict(zip(choices, combo)) for combo in itertools.product(*choices.values())]


def joint_fit(fn, dims: Sequence[Dim], bands: Sequence[Band], *, choices: Mapping[str, Sequence] | None = None,
              fixed: Mapping[str, Any] | None = None, extend: float = 0.0, n_starts: int = 4, seed: int = 0,
              fd_step: float = 1e-3, maxiter: int = 100, feas_tol: float = 1e-6, move_tol: float = 1e-4,
              engine: Engine | str | None = None, **sweep) -> FitResult:
    """The point closest to the defaults at which every band holds (see the module docstring).

    Args:
        fn: point function (point, seed) -> figures (e.g. a `points.ParamPoint`).
        dims: the fitted continuous parameters, each with a default and a cited range.
        bands: the targets.
        choices: discrete choices, name -> options (first = default); every combination is fitted.
        fixed: entries held at one value at every point.
        extend: search beyond the cited ranges by this many ranges on each side (0: within the ranges).
        n_starts: SLSQP starts (the defaults, then Halton points); seed: their scrambling and the points' seed.
        fd_step: finite-difference step, range units; maxiter: per optimiser run.
        feas_tol: a band holds within feas_tol of its scale (rounding of the optimiser's constraints).
        move_tol: |z| above which a parameter counts as moved.
        engine: an open Engine, or a kind opened once for the whole fit; None: `open_engine()` (a LocalCluster,
            or the cluster named by IBNN_DASK_SCHEDULER); "inprocess" for tests.
        **sweep: run_sweep options (cache_dir, code_version, chunk_size, desc).
    Returns:
        FitResult: best fit, every combination, points evaluated, engine.
    """
    dims, bands = check_dims(dims), list(bands)
    if not bands or not all(isinstance(b, Band) for b in bands):
        raise ValueError("bands must be a non-empty sequence of ibnn.explore.jointfit.Band")
    for d in dims:
        d.to_z(d.low)                                   # every dimension has a default
    extend = check_nonneg("extend", extend)
    n_starts, maxiter = check_int("n_starts", n_starts, 1), check_int("maxiter", maxiter, 1)
    fd_step = check_positive("fd_step", fd_step)
    combos = choice_combinations(choices)
    bounds = [d.z_bounds(extend) for d in dims]
    sweep = {"seed": seed, "seed_keys": (), "desc": "joint fit", **sweep}
    if sweep.get("code_version") is None:               # hashed once, not at every optimiser step
        sweep["code_version"] = default_code_version(fn)
    own = not isinstance(engine, Engine)
    eng = open_engine(engine) if own else engine
    try:
        fits, n_points, info = [], 0, {}
        for combo in combos:
            F = _Figures(fn, dims, bands, {**dict(fixed or {}), **combo}, eng, sweep, fd_step, bounds)
            z, msg = _fit_choice(F, bounds, n_starts, seed, maxiter, feas_tol)
            fits.append(_report(F, z, combo, combos[0], msg, feas_tol, move_tol))
            n_points, info = n_points + len(F.memo), F.info or info
    finally:
        if own:
            eng.close()
    fits.sort(key=lambda f: (not f.feasible, f.distance if f.feasible else f.violation, len(f.changed)))
    return FitResult(fits[0].feasible, fits[0], fits, extend, n_points, info)
