"""One column in classify mode: the differential bit-line pair (BL, BLB) and its comparator.

Bit-lines. Both are precharged to VDD and discharged during the word-line pulse T (t_eval) by the currents of the
cells on them: a cell storing +1 pulls BLB, a cell storing -1 pulls BL, so
V_BL - V_BLB = (swing of BLB) - (swing of BL) grows with sum_i w_i x_i.
Each line obeys C dV/dt = -sum_i I_i(V). Model (stated assumptions):

* Separable drain law. The cell currents are evaluated at V = VDD (the start of the pulse, where the word-line DAC
  sets them) and share one normalised drain law f(V) = I(V)/I(VDD) of the nominal cell at a reference code
  (mid-scale, 16): sum_i I_i(V) = f(V) sum_i I_i(VDD). The exact per-cell law differs from f by the code-dependence
  of DIBL; the closed form is checked against a fine-step ODE of the exact per-cell currents in the tests and in
  the notebook (error stated there).
* f(V) is fitted by two affine pieces: saturation (V >= V_k), f = a1 + b1 V (DIBL and channel-length modulation:
  the current falls linearly as the line falls), and triode (V < V_k), f = b2 V through the origin (the current
  vanishes as V_BL -> 0). With a compression scale s (Nonidealities.compression), f_s = 1 - s (1 - f): s = 0 is the
  ideal linear bit-line (no compression, no floor), s = 1 the physical law.
* Closed form: with the linear swing S = T sum_i I_i(VDD) / C, dV/dS = -f(V), which for an affine piece
  f = a + b V integrates to V(S) = V0 - (a + b V0) S phi(b S), phi(x) = (1 - exp(-x)) / x. The two pieces join at
  V_k. For s > 0 the line never goes below the floor 0 V (clamped: a cell with V_DS = 0 carries no current).

Comparator: input-referred static offset per column (per chip) and temporal noise per decision; decision +1 iff
(V_BL - V_BLB) + offset + noise >= reference, else -1 (ties give +1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..validate import check_nonneg, check_positive

REFERENCE_CODE = 16


@dataclass(frozen=True)
class DrainLaw:
    """Two-piece affine normalised drain law f(V) (f(VDD) ~ 1); see the module docstring."""

    vdd: float
    vk: float
    a1: float
    b1: float
    a2: float
    b2: float

    def f(self, v) -> torch.Tensor:
        """f(V) of the two affine pieces (float64, broadcast)."""
        v = torch.as_tensor(v, dtype=torch.float64)
        return torch.where(v >= self.vk, self.a1 + self.b1 * v, self.a2 + self.b2 * v)

    def scaled(self, s: float) -> "DrainLaw":
        """f_s = 1 - s (1 - f): s = 0 linear bit-line, s = 1 this law."""
        s = check_nonneg("compression", s)
        return DrainLaw(self.vdd, self.vk, 1.0 - s + s * self.a1, s * self.b1, 1.0 - s + s * self.a2,
                        s * self.b2)

    @property
    def ideal(self) -> bool:
        return self.a1 == 1.0 and self.b1 == 0.0 and self.a2 == 1.0 and self.b2 == 0.0

    @classmethod
    def fit(cls, cell_current_of_vbl, vdd: float, n: int = 241) -> "DrainLaw":
        """Fit the two-piece law to v -> I(v) of one cell (a callable on a float64 tensor of bit-line voltages).

        The knee V_k is chosen on a grid to minimise the squared error over 0..VDD; the saturation piece is a
        least-squares line on V >= V_k normalised so f(VDD) = 1, the triode piece joins it at V_k through 0."""
        v = torch.linspace(0.0, vdd, n, dtype=torch.float64)
        f = (cell_current_of_vbl(v) / cell_current_of_vbl(torch.tensor(vdd, dtype=torch.float64))).numpy()
        v = v.numpy()
        best = None
        for vk in np.linspace(0.02, 0.6 * vdd, 120):
            hi = v >= vk
            b1, a1 = np.polyfit(v[hi], f[hi], 1)
            scale = 1.0 / (a1 + b1 * vdd)
            a1, b1 = a1 * scale, b1 * scale
            fk = a1 + b1 * vk
            model = np.where(hi, a1 + b1 * v, fk * v / vk)
            err = float(np.sum((model - f) ** 2))
            if best is None or err < best[0]:
                best = (err, vk, a1, b1, fk / vk)
        _, vk, a1, b1, b2 = best
        return cls(float(vdd), float(vk), float(a1), float(b1), 0.0, float(b2))


def _affine_step(v0: float, a: float, b: float, s: torch.Tensor) -> torch.Tensor:
    """V after a linear swing s from v0 under dV/dS = -(a + b V) (a, b, v0 scalars; s a tensor):
    V = -a/b + (v0 + a/b) exp(-b s) for b != 0, V = v0 - a s for b = 0."""
    if abs(b) * 10.0 < 1e-7:     # |b S| < 1e-7 for any swing below 10 V: the linear limit is exact to float64
        return v0 - a * s
    return (v0 + a / b) * torch.exp(-b * s) - a / b


def discharge(swing, law: DrainLaw) -> torch.Tensor:
    """Closed-form final bit-line voltage (V) for the linear swing S = T sum I(VDD) / C (V, tensor >= 0).

    dtype follows `swing` (float32 or float64)."""
    s = torch.as_tensor(swing)
    if not s.dtype.is_floating_point:
        s = s.to(torch.float64)
    if law.ideal:
        return law.vdd - s
    v1 = _affine_step(law.vdd, law.a1, law.b1, s)
    fk = law.a1 + law.b1 * law.vk          # f at the knee
    f0 = law.a1 + law.b1 * law.vdd         # f at VDD (1 for the fitted law)
    if fk <= 0:                            # the saturation piece alone never reaches the knee
        return torch.clamp(v1, min=max(law.vk, 0.0))
    s_k = math.log(f0 / fk) / law.b1 if abs(law.b1) * 10.0 >= 1e-7 else (law.vdd - law.vk) / law.a1
    v2 = _affine_step(law.vk, law.a2, law.b2, s - s_k)
    return torch.clamp(torch.where(s <= s_k, v1, v2), min=0.0)


def discharge_ode(current_of_v, c: float, t: float, vdd: float, steps: int = 4000,
                  trajectory: bool = False) -> torch.Tensor:
    """Reference: integrate C dV/dt = -I(V) from V = vdd with classic RK4 in `steps` steps (I(V) a callable,
    V tensor -> A), clamping V at the 0-V floor. Returns V(T), or with trajectory=True V at the steps + 1 times
    t * k / steps stacked along dim 0."""
    c, t = check_positive("c_bl", c), check_positive("t_eval", t)
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps={steps} is out of range; accepted: integer in [1, inf)")
    h = t / steps
    v = torch.as_tensor(vdd, dtype=torch.float64) + 0.0 * current_of_v(torch.tensor(vdd, dtype=torch.float64))
    out = [v] if trajectory else None
    for _ in range(steps):
        k1 = -current_of_v(v) / c
        k2 = -current_of_v(v + 0.5 * h * k1) / c
        k3 = -current_of_v(v + 0.5 * h * k2) / c
        k4 = -current_of_v(v + h * k3) / c
        v = torch.clamp(v + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0, min=0.0)
        if trajectory:
            out.append(v)
    return torch.stack(out) if trajectory else v


def decide(dv, reference, offset=0.0, noise=0.0) -> torch.Tensor:
    """Comparator: +1 iff dv + offset + noise >= reference (ties +1), else -1; int8."""
    x = dv + offset + noise
    return torch.where(x >= reference, 1, -1).to(torch.int8)
