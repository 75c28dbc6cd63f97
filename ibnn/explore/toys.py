"""Tiny analytic point functions with known answers, for the tests and examples of the sweep engine, the Sobol
analysis and the joint fit (module-level, so dask workers import them by name).

Every function has the engine's signature ``fn(point, seed) -> dict``.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

# Ishigami & Homma (1990), "An importance quantification technique in uncertainty analysis for computer
# models", ISUMA '90: f = sin x1 + a sin^2 x2 + b x3^4 sin x1, x_i ~ U(-pi, pi). Closed-form variances:
ISHIGAMI_A, ISHIGAMI_B = 7.0, 0.1


def ishigami_indices(a: float = ISHIGAMI_A, b: float = ISHIGAMI_B) -> dict[str, dict[str, float]]:
    """Exact first-order (S1) and total (ST) Sobol indices of the Ishigami function.

    Returns:
        {"x1": {"S1", "ST"}, "x2": ..., "x3": ...}.
    """
    v1 = 0.5 * (1 + b * math.pi ** 4 / 5) ** 2
    v2 = a ** 2 / 8
    v13 = b ** 2 * math.pi ** 8 * (1 / 18 - 1 / 50)
    var = v1 + v2 + v13
    return {"x1": {"S1": v1 / var, "ST": (v1 + v13) / var}, "x2": {"S1": v2 / var, "ST": v2 / var},
            "x3": {"S1": 0.0, "ST": v13 / var}}


def ishigami(point: dict, seed: int) -> dict:
    """Ishigami function of x1, x2, x3 (seed unused), plus 'lin' = x1 + 2 x2 (S1 = ST = 1/5, 4/5, 0)."""
    x1, x2, x3 = point["x1"], point["x2"], point["x3"]
    y = math.sin(x1) + ISHIGAMI_A * math.sin(x2) ** 2 + ISHIGAMI_B * x3 ** 4 * math.sin(x1)
    return {"ishigami": y, "lin": x1 + 2.0 * x2}


def log_linear(point: dict, seed: int) -> dict:
    """'y' = log10(c) + 2 u: with c log-uniform over two decades and u uniform on [0, 1], S1 = ST = 1/2 each."""
    return {"y": math.log10(point["c"]) + 2.0 * point["u"]}


INTERRUPT_ENV = "IBNN_TOY_INTERRUPT_AT"


class Interrupt(BaseException):
    """Raised by `noisy_square` to simulate Ctrl-C (a BaseException, so the engine does not take it for a
    failure of the point)."""


def noisy_square(point: dict, seed: int) -> dict:
    """x^2 and a draw from the point's own seed.

    Sleeps point['sleep'] seconds (a stand-in for real work); raises ValueError where point['fail'] (to test
    error reporting) and Interrupt where x equals the environment variable IBNN_TOY_INTERRUPT_AT (to test
    resuming an interrupted sweep; in-process only).
    """
    if point.get("fail"):
        raise ValueError(f"asked to fail at x={point['x']}")
    stop = os.environ.get(INTERRUPT_ENV)
    if stop is not None and float(stop) == point["x"]:
        raise Interrupt(f"interrupted at x={point['x']}")
    time.sleep(float(point.get("sleep", 0.0)))
    rng = np.random.default_rng(seed)
    return {"square": point["x"] ** 2, "draw": float(rng.standard_normal()), "seed": seed}


def bands_toy(point: dict, seed: int) -> dict:
    """The joint-fit toy: f = a + log10(b) + offset, h = a - log10(b), g = c (c only enters g).

    With a in [0, 2] (default 1, linear), b in [0.1, 10] (default 1, log: two decades), in range units
    za = (a - 1) / 2, zb = log10(b) / 2: f = 1 + offset + 2 (za + zb), h = 1 + 2 (za - zb).
    """
    lb = math.log10(point["b"])
    return {"f": point["a"] + lb + float(point.get("offset", 0.0)), "h": point["a"] - lb, "g": point["c"]}
