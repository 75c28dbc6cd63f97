"""Global sensitivity: Sobol first-order and total indices, with bootstrap intervals, through the sweep engine.

Every ranged parameter is an independent input distributed over its cited range: uniformly, or log-uniformly
where the range spans a decade or more (`space.spans_decade`). The log-uniform case is sampled as a uniform
variable on [log10 low, log10 high] and mapped back: Sobol indices belong to the input *distribution*, so this is
exactly the log-uniform analysis.

Estimators (SALib, `SALib.sample.sobol` and `SALib.analyze.sobol`): a scrambled Sobol' sequence gives the two
base matrices A, B of N rows (N a power of two) and the D matrices AB_i; N (D + 2) evaluations in all. First-order
indices after Saltelli et al., "Variance based sensitivity analysis of model output", Comput. Phys. Commun.
181:259 (2010), total indices after Jansen, "Analysis of variance designs for model output", Comput. Phys.
Commun. 117:35 (1999). Intervals: a bootstrap over the N rows (num_resamples resamples), reported as the
half-width at conf_level (normal approximation, as SALib does). All outputs come from the same evaluations.

A figure that the model cannot evaluate at some point (None, or missing) makes the analysis refuse, naming the
output and the number of points: Sobol indices need every point.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..validate import check_int, check_real
from .engine import run_sweep
from .space import Dim, check_dims, unit_to_values


@dataclass(frozen=True)
class SobolIndex:
    """Indices of one input for one output; *_conf: half-width of the bootstrap interval at conf_level."""

    name: str
    S1: float
    S1_conf: float
    ST: float
    ST_conf: float

    def as_dict(self) -> dict:
        return {"S1": self.S1, "S1_conf": self.S1_conf, "ST": self.ST, "ST_conf": self.ST_conf}


@dataclass
class SobolResult:
    """Indices per output, with what they were computed from.

    Attributes:
        dims: the inputs (ranges and scales).
        indices: output -> one SobolIndex per input, in the order of dims.
        n_base: N; n_points: evaluations, N (D + 2).
        conf_level, num_resamples, seed: of the sampling and the bootstrap.
        sweep: the engine's summary (engine kind, workers, cached / computed points).
        variance: output -> variance of the output over all evaluations.
    """

    dims: list[Dim]
    indices: dict[str, list[SobolIndex]]
    n_base: int
    n_points: int
    conf_level: float
    num_resamples: int
    seed: int
    sweep: dict
    variance: dict[str, float] = field(default_factory=dict)

    def index(self, output: str, name: str) -> SobolIndex:
        """The indices of input `name` for `output` (KeyError naming the inputs otherwise)."""
        for ix in self.indices[output]:
            if ix.name == name:
                return ix
        raise KeyError(f"no input {name!r}; inputs: {[d.name for d in self.dims]}")

    def ranking(self, output: str, by: str = "ST") -> list[str]:
        """Input names, most influential first."""
        return [ix.name for ix in sorted(self.indices[output], key=lambda ix: -getattr(ix, by))]

    def as_dict(self) -> dict:
        """For a results file: inputs with ranges and scale, indices with intervals per output, the engine."""
        return {"inputs": [{"name": d.name, "low": d.low, "high": d.high, "log": d.log} for d in self.dims],
                "indices": {o: {ix.name: ix.as_dict() for ix in v} for o, v in self.indices.items()},
                "variance": self.variance, "n_base": self.n_base, "n_points": self.n_points,
                "conf_level": self.conf_level, "num_resamples": self.num_resamples, "seed": self.seed,
                "sweep": self.sweep}


def sobol_problem(dims: Sequence[Dim]) -> dict:
    """The SALib problem: bounds on each dimension's own scale (log10 for log dimensions)."""
    dims = check_dims(dims)
    return {"num_vars": len(dims), "names": [d.name for d in dims], "bounds": [[d.t(d.low), d.t(d.high)] for d in dims]}


def sobol_points(dims: Sequence[Dim], n_base: int, seed: int = 0,
                 base: Mapping[str, Any] | None = None) -> list[dict]:
    """The N (D + 2) points of the Saltelli design (first and total order only).

    Args:
        dims: the inputs; n_base: N, a power of two; seed: scrambling seed.
        base: entries added unchanged to every point (e.g. the discrete choices held fixed).
    Returns:
        Point dicts in SALib's row order (what `sobol_indices` hands to SALib's analysis).
    """
    from SALib.sample import sobol as sobol_sample

    n_base = check_int("n_base", n_base, 2)
    if n_base & (n_base - 1):
        raise ValueError(f"n_base={n_base} must be a power of two (Sobol' sequences balance only then)")
    base = dict(base or {})
    clash = sorted(set(base) & {d.name for d in dims})
    if clash:
        raise ValueError(f"base entries {clash} are also sampled dimensions")
    u = sobol_sample.sample(sobol_problem(dims), n_base, calc_second_order=False, scramble=True, seed=seed)
    return [{**base, **p} for p in unit_to_values(dims, u)]


def _output_matrix(results: Sequence[dict | None], outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
    """output -> values over all points; refuses outputs missing or non-numeric at any point."""
    if outputs is None:
        outputs = [k for k, v in results[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {}
    for name in outputs:
        vals = [None if r is None else r.get(name) for r in results]
        bad = sum(1 for v in vals if not isinstance(v, (int, float)) or isinstance(v, bool))
        if bad:
            raise ValueError(f"output {name!r} is missing or not a number at {bad} of {len(vals)} points; Sobol "
                             f"indices need it at every point")
        out[name] = np.asarray(vals, dtype=float)
    if not out:
        raise ValueError("no numeric output to analyse")
    return out


def analyze(dims: Sequence[Dim], Y: Mapping[str, np.ndarray], conf_level: float = 0.95, num_resamples: int = 200,
            seed: int = 0) -> dict[str, list[SobolIndex]]:
    """SALib's Sobol analysis of each output (rows in `sobol_points` order)."""
    from SALib.analyze import sobol as sobol_analyze

    problem = sobol_problem(dims)
    out = {}
    for name, y in Y.items():
        if np.var(y) == 0:
            raise ValueError(f"output {name!r} is constant over the design: its indices are undefined")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # seed + 1: SALib 1.6 tests `if seed:` and falls back to the unseeded global RNG for seed 0
            s = sobol_analyze.analyze(problem, y, calc_second_order=False, num_resamples=num_resamples,
                                      conf_level=conf_level, seed=seed + 1)
        out[name] = [SobolIndex(d.name, float(s["S1"][i]), float(s["S1_conf"][i]), float(s["ST"][i]),
                                float(s["ST_conf"][i])) for i, d in enumerate(dims)]
    return out


def sobol_indices(fn, dims: Sequence[Dim], n_base: int, *, outputs: Sequence[str] | None = None,
                  base: Mapping[str, Any] | None = None, seed: int = 0, num_resamples: int = 200,
                  conf_level: float = 0.95, **sweep) -> SobolResult:
    """Sobol first-order and total indices of several outputs of a point function.

    Args:
        fn: point function (point, seed) -> dict of figures.
        dims: the ranged inputs (e.g. `space.dims_from_params(P, names)`).
        n_base: N, a power of two; the design has N (D + 2) points.
        outputs: figures to analyse (default: every numeric figure of the first point).
        base: entries fixed at every point (discrete choices).
        seed: seed of the scrambling and of the bootstrap (the points' own seeds follow their content).
        num_resamples, conf_level: bootstrap.
        **sweep: passed to `run_sweep` (engine, cache_dir, code_version, chunk_size, seed_keys, desc).
    Returns:
        SobolResult.
    """
    dims = check_dims(dims)
    conf_level = check_real("conf_level", conf_level, 0.0, 1.0, lo_open=True, hi_open=True)
    num_resamples = check_int("num_resamples", num_resamples, 10)
    points = sobol_points(dims, n_base, seed, base)
    sweep.setdefault("desc", "sobol")
    res = run_sweep(fn, points, seed=seed, **sweep)
    Y = _output_matrix(res.results, outputs)
    indices = analyze(dims, Y, conf_level, num_resamples, seed)
    return SobolResult(dims, indices, n_base, len(points), conf_level, num_resamples, seed, res.summary(),
                       {k: float(np.var(v)) for k, v in Y.items()})
