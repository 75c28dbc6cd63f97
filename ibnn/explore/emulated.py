"""Sobol indices of a smooth figure at a Saltelli size its real model cannot afford: SALib on a response surface
fitted to the real model's own evaluations, the surface's out-of-sample error measured and stated.

Why. A point of notebook 09 whose circuit parameters move rebuilds the cell model, the word-line tables and the
chip (about a second on one core); SALib's Saltelli design needs N (D + 2) points, and the bootstrap intervals of
the energy figures only shrink below their indices at N of order 100 (thousands of points). The energy figures
are smooth, deterministic functions of the parameters on common random numbers (the same chip draws, images and
noise streams at every point), so a low-order surface through a few dozen real points can carry them.

Surface. Each input on its unit coordinate u in [0, 1] (its own scale: log10 for a log dimension, as the Sobol
sample is drawn); the fitted quantity is ln y for a positive output, y otherwise or where asked (`linear`: a
signed quantity near zero such as an accuracy drop, whose logarithm would magnify its Monte-Carlo noise where it is
small); the form is a quadratic
polynomial: 1, every u_i, then the squares u_i^2 and the products u_i u_j of the inputs in order of their linear
effect, as many terms as give the smallest leave-one-out error (at most half as many terms as points; the choice
by that error makes it slightly optimistic). Least squares (numpy lstsq).

Error, stated. Leave-one-out residuals of the least-squares fit (exact, through the hat matrix: PRESS):
`loo_rms` (of ln y: relative error) and q2 = 1 - PRESS / total sum of squares, the fraction of the output's
variance over the training design that the surface predicts for a point it was not fitted on. The part of the
variance it misses (1 - q2) bounds what the surface can misattribute between the indices.

Inputs an output does not read (every swap of the direct design left it bit-identical: `inert_inputs`) are left
out of its surface, so its terms go to the inputs that act.

Intervals. SALib's bootstrap over the surface's Saltelli rows, combined with the spread of the indices over
surfaces (same terms) refitted with each training point left out (jackknife: the uncertainty of the fit from
finitely many real points; SALib's estimators on the same Saltelli sample): conf = sqrt(conf_SALib^2 +
(z sd_jack)^2), z the normal quantile of conf_level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import norm

from ..validate import check_int, check_real
from .sobol import SobolIndex, analyze, sobol_problem
from .space import Dim, check_dims


def unit_coordinates(dims: Sequence[Dim], points: Sequence[Mapping[str, float]]) -> np.ndarray:
    """(n, D) unit coordinates of points (each dimension on its own scale, 0 at low, 1 at high)."""
    dims = check_dims(dims)
    lo = np.array([d.t(d.low) for d in dims])
    hi = np.array([d.t(d.high) for d in dims])
    t = np.array([[d.t(float(p[d.name])) for d in dims] for p in points], dtype=float)
    return (t - lo) / (hi - lo)


@dataclass(frozen=True)
class Surface:
    """A fitted quadratic surface (module docstring): terms as index tuples ((), (i,), (i, i), (i, j)), their
    coefficients, whether it models ln y, and its leave-one-out error over the training points."""

    output: str
    terms: tuple
    coef: tuple
    log: bool
    loo_rms: float
    q2: float
    n_train: int

    def predict_unit(self, u: np.ndarray) -> np.ndarray:
        """The surface at unit coordinates u (n, D)."""
        f = _design(np.atleast_2d(u), self.terms) @ np.asarray(self.coef)
        return np.exp(f) if self.log else f

    def as_dict(self) -> dict:
        """For a results file: form, error, size (not the coefficients)."""
        return {"output": self.output, "quantity": "ln y" if self.log else "y", "n_terms": len(self.terms),
                "n_pairs": sum(1 for t in self.terms if len(t) == 2 and t[0] != t[1]), "n_train": self.n_train,
                "loo_rms": self.loo_rms, "q2": self.q2,
                "form": "quadratic in the unit coordinates: 1, u_i, u_i^2, u_i u_j of the inputs of largest "
                        "linear effect; least squares; leave-one-out error (PRESS)"}


def _design(u: np.ndarray, terms: Sequence[tuple]) -> np.ndarray:
    cols = [np.prod(u[:, list(t)], axis=1) if t else np.ones(len(u)) for t in terms]
    return np.stack(cols, axis=1)


def _terms(u: np.ndarray, f: np.ndarray, n_max: int) -> tuple:
    """1 and every linear term; then, while the count stays within n_max, the squares and then the pairwise
    products of the inputs in order of their linear effect (|slope| x spread)."""
    D = u.shape[1]
    if D + 1 > n_max:
        raise ValueError(f"{D} inputs need at least {2 * (D + 1)} training points for a linear surface")
    terms = [()] + [(i,) for i in range(D)]
    slope = np.linalg.lstsq(_design(u, terms), f, rcond=None)[0][1:]
    order = [int(i) for i in np.argsort(-np.abs(slope) * u.std(axis=0), kind="stable")]
    squares = [(i, i) for i in order]
    terms += squares[:n_max - len(terms)]
    pairs: list = []
    for k in range(2, D + 1):
        cand = [(min(a, b), max(a, b)) for i, a in enumerate(order[:k]) for b in order[:i]]
        if len(terms) + len(cand) > n_max:
            break
        pairs = cand
    return tuple(terms + sorted(pairs))


def _loo(X: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(least-squares coefficients, leave-one-out residuals through the hat matrix)."""
    coef, *_ = np.linalg.lstsq(X, f, rcond=None)
    h = np.einsum("ij,ji->i", X, np.linalg.pinv(X))
    return coef, (f - X @ coef) / np.clip(1.0 - h, 1e-12, None)


def fit_surface(output: str, u: np.ndarray, y: np.ndarray, log: bool | None = None,
                terms: Sequence[tuple] | None = None) -> Surface:
    """The surface of one output through training points (unit coordinates u (n, D), values y (n,)).
    log: fit ln y (default: where every y > 0). terms: the polynomial's terms (default: chosen by the
    leave-one-out error, module docstring)."""
    u, y = np.asarray(u, dtype=float), np.asarray(y, dtype=float)
    if u.ndim != 2 or len(u) != len(y) or len(y) < 4:
        raise ValueError(f"fit_surface({output!r}): u {u.shape} and y {y.shape} must give at least 4 points")
    log = bool(np.all(y > 0)) if log is None else bool(log)
    if log and not np.all(y > 0):
        raise ValueError(f"output {output!r} has values <= 0: it cannot be fitted as ln y")
    f = np.log(y) if log else y
    ss = float(((f - f.mean()) ** 2).sum())
    if terms is None:
        D = u.shape[1]
        if len(y) < D + 2:
            raise ValueError(f"fit_surface({output!r}): {D} inputs need at least {D + 2} training points, got "
                             f"{len(y)}")
        sizes = sorted({D + 1, *range(D + 1, max(D + 2, len(y) // 2) + 1, 2)})
        cands = [_terms(u, f, n) for n in sizes]
        terms = min(cands, key=lambda t: float((_loo(_design(u, t), f)[1] ** 2).sum()))
    coef, res = _loo(_design(u, terms), f)
    q2 = 1.0 - float((res ** 2).sum()) / ss if ss > 0 else 1.0
    return Surface(output, tuple(terms), tuple(float(c) for c in coef), log, float(np.sqrt((res ** 2).mean())),
                   q2, len(y))


@dataclass
class EmulatedSobol:
    """Indices of each output from its surface, with the surfaces' errors and the Saltelli size used on them."""

    dims: list
    indices: dict
    surfaces: dict
    n_base: int
    n_points: int
    n_jackknife: int
    conf_level: float
    inert: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """For a results file."""
        return {"inputs": [d.name for d in self.dims], "n_base": self.n_base, "n_points": self.n_points,
                "n_jackknife": self.n_jackknife, "conf_level": self.conf_level, "inert": self.inert,
                "surfaces": {o: s.as_dict() for o, s in self.surfaces.items()},
                "indices": {o: {ix.name: ix.as_dict() for ix in v} for o, v in self.indices.items()},
                "ranking": {o: [ix.name for ix in sorted(v, key=lambda ix: -ix.ST)] for o, v in self.indices.items()}}


def _point_indices(y: np.ndarray, D: int, N: int) -> np.ndarray:
    """(D, 2) S1 and ST of a Saltelli sample's outputs by SALib's own estimators (no bootstrap)."""
    from SALib.analyze.sobol import first_order, separate_output_values, total_order

    A, B, AB, _ = separate_output_values((y - y.mean()) / y.std(), D, N, False)
    return np.array([[first_order(A, AB[:, j], B), total_order(A, AB[:, j], B)] for j in range(D)])


def inert_inputs(dims: Sequence[Dim], values: Mapping[str, Sequence], n_base: int) -> dict[str, list[str]]:
    """Per output, the inputs of a direct Saltelli design (`sobol.sobol_points` order, N = n_base) whose every
    swap (A -> AB_i) left the output bit-identical: inputs the output does not read at this operating point
    (a measured fact of the design; their direct indices are exactly 0)."""
    from SALib.analyze.sobol import separate_output_values

    dims = check_dims(dims)
    out = {}
    for name, y in values.items():
        A, _, AB, _ = separate_output_values(np.asarray(y, dtype=float), len(dims), n_base, False)
        out[name] = [d.name for j, d in enumerate(dims) if np.array_equal(AB[:, j], A)]
    return out


def emulated_sobol(dims: Sequence[Dim], points: Sequence[Mapping[str, float]], values: Mapping[str, Sequence],
                   n_base: int = 2048, inert: Mapping[str, Sequence[str]] | None = None, conf_level: float = 0.95,
                   num_resamples: int = 100, seed: int = 0, linear: Sequence[str] = ()) -> EmulatedSobol:
    """Sobol indices (SALib) of every output in `values` from its surface through the real evaluations
    (`points`, e.g. a direct `sobol.SobolResult`'s samples and values), at Saltelli size n_base on the surface;
    `inert`: output -> inputs it does not read (`inert_inputs`), left out of its surface (their indices come out
    exactly 0); `linear`: outputs fitted as y even where every value is positive. Intervals as in the module
    docstring (the refits: jackknife, each real point left out once)."""
    from SALib.sample import sobol as sobol_sample

    dims = check_dims(dims)
    n_base = check_int("n_base", n_base, 2)
    conf_level = check_real("conf_level", conf_level, 0.0, 1.0, lo_open=True, hi_open=True)
    u = unit_coordinates(dims, points)
    problem = sobol_problem(dims)
    x = sobol_sample.sample(problem, n_base, calc_second_order=False, scramble=True, seed=seed)
    lo = np.array([b[0] for b in problem["bounds"]])
    ux = (x - lo) / (np.array([b[1] for b in problem["bounds"]]) - lo)
    z = float(norm.ppf(0.5 + conf_level / 2))
    out, surfaces = {}, {}
    for name, y in values.items():
        y = np.asarray(y, dtype=float)
        skip = set((inert or {}).get(name, ()))
        act = [j for j, d in enumerate(dims) if d.name not in skip]
        s = surfaces[name] = fit_surface(name, u[:, act], y, log=False if name in linear else None)
        main = analyze(dims, {name: s.predict_unit(ux[:, act])}, conf_level, num_resamples, seed)[name]
        jack = [_point_indices(fit_surface(name, np.delete(u[:, act], k, 0), np.delete(y, k), s.log, s.terms)
                               .predict_unit(ux[:, act]), len(dims), n_base) for k in range(len(y))]
        jack = np.asarray(jack)
        sd = np.sqrt((len(y) - 1) / len(y) * ((jack - jack.mean(axis=0)) ** 2).sum(axis=0))
        out[name] = [SobolIndex(ix.name, ix.S1, math.hypot(ix.S1_conf, z * sd[i, 0]), ix.ST,
                                math.hypot(ix.ST_conf, z * sd[i, 1])) for i, ix in enumerate(main)]
    return EmulatedSobol(dims, out, surfaces, n_base, len(x), len(next(iter(values.values()))), conf_level,
                         {k: list(v) for k, v in (inert or {}).items()})
