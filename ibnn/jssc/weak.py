"""Weak classifiers as one column of the array computes them: binary weights on 5-bit inputs, a threshold realised
by bias rows, the comparator's sign as the weak decision.

The prototype (J. Zhang, Z. Wang, N. Verma, IEEE JSSC 52(4):915-924, 2017) implements "mixed-signal weak
classifiers via columns of the SRAM": each column stores +-1 weights in its cells, the word-line DACs drive the
5-bit pixel codes, and the comparator reads the sign of V_BL - V_BLB. Here a weak classifier is

    h(x) = +1  iff  sum_i w_i x_i + B >= 0,   w_i in {-1, +1} (81 pixel rows),   B = sum_b w_b c_b (bias rows),

with x_i the codes of `ibnn.data.features(images, 9, 5)`. The comparator compares BL with BLB directly (no
reference trim is known on the prototype), so the whole threshold T = -B lives in bias rows: rows driven with
fixed codes c_b in every cycle whose +-1 cells (per column) sum to B. The bias-row set is that of
`ibnn.mapping` (`fine_codes`): K coarse rows at full scale (31) and bits + 1 fine rows at 16, 8, 4, 2, 1, 1.
With +-1 cells they reach every B with the parity of K in [-(31 K + 32), 31 K + 32] (`BiasRows.reachable`).
The training scan below only considers those thresholds, so the weak classifier trained in software is exactly
the function an ideal column computes (tests/test_jssc.py).

Training a binary-weight linear weak learner on weighted samples (`train_weak`), cheap enough to run once per
column per chip, batched over many problems (chips x classes) at once:

1. Direction: w = sign(S^-1 (mu_+ - mu_-)), mu_+- the sample-weighted class means of the codes and S a fixed,
   ridge-regularised pooled within-class covariance of the training codes (computed once, `pooled_covariance`).
   This is Fisher's discriminant with the covariance frozen (the sample weights move only the means), binarised:
   one (P x N) @ (N x D) product for P problems and a fixed (D x D) product, no per-problem solve.
   method="mean" drops S (sign of the class-mean difference; for many pixels, where S is poorly estimated).
2. Threshold: the exact minimiser of the weighted 0/1 error over every reachable threshold, by a weighted
   histogram of the integer dot products (one scatter-add) and a cumulative sum: O(P N + P Z), Z levels.
3. Refinement (`flips` > 0): greedy single-weight flips. Each step ranks the D possible flips by the gradient of
   a sigmoid-smoothed weighted error (one more (P x N) @ (N x D) product), tries the `candidates` best exactly
   (threshold re-scanned) and keeps the best if it lowers the weighted 0/1 error; a problem stops at its first
   step without gain. Binarising a real direction loses what a binary-constrained search recovers; the surrogate
   ranking makes that search cost a few products instead of D exact scans per step.

Why not the alternatives: a per-problem weighted covariance (weighted LDA) needs P (D x D) estimates and solves
per round; exhaustive flip passes need D exact scans per pass; straight-through gradient training needs many
passes over the data per weak learner. `weight_bits` > 1 gives a digital reference with multi-bit weights
(quantised direction, no flips).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..mapping import fine_codes
from ..repro.device import torch_threads
from ..validate import check_choice, check_int, check_real

METHODS = ("lda", "mean")


# ------------------------------------------------------------------------------------------------------------
# bias rows: which thresholds a column can realise, and the cells that realise them
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BiasRows:
    """The bias rows every column shares: `n_coarse` rows at code 2**bits - 1, then bits + 1 fine rows
    (`ibnn.mapping.fine_codes`). Their codes are fixed; each column's +-1 cells in them set its bias B."""

    n_coarse: int
    bits: int = 5

    def __post_init__(self):
        check_int("n_coarse", self.n_coarse, 0)
        check_int("bits", self.bits, 1, 8)

    @property
    def full(self) -> int:
        return 2 ** self.bits - 1

    @property
    def codes(self) -> torch.Tensor:
        """(n_rows,) int64 codes: fine rows first, then coarse (the order `pattern` uses)."""
        return torch.tensor(fine_codes(self.bits) + [self.full] * self.n_coarse, dtype=torch.int64)

    @property
    def n_rows(self) -> int:
        return self.bits + 1 + self.n_coarse

    @property
    def reach(self) -> int:
        """Largest |B| the rows reach: the sum of their codes."""
        return int(self.codes.sum())

    def reachable(self, T) -> torch.Tensor:
        """Bool tensor: threshold T (= -B) is reachable (|T| <= reach, T of the parity of n_coarse)."""
        T = torch.as_tensor(T, dtype=torch.int64)
        return (T.abs() <= self.reach) & ((T - self.n_coarse) % 2 == 0)

    def pattern(self, B) -> torch.Tensor:
        """(n_rows, n) int8 +-1 cells whose signed code sum is B (n,) (each B reachable, else ValueError)."""
        B = torch.as_tensor(B, dtype=torch.int64).reshape(-1)
        bad = ~self.reachable(-B)
        if bool(bad.any()):
            raise ValueError(f"bias B={int(B[bad][0])} is not reachable with {self.n_coarse} coarse bias rows; "
                             f"accepted: integers of the parity of {self.n_coarse} in [-{self.reach}, {self.reach}]")
        c, K = self.full, self.n_coarse
        fine = fine_codes(self.bits)
        fs = sum(fine)
        m = torch.div(B + c * K + c, 2 * c, rounding_mode="floor").clamp(0, K)    # coarse rows at +1
        P = (B - c * (2 * m - K) + fs) // 2                                          # fine positive sum
        P = P.clamp(0, fs)
        rem, rows = P.clone(), []
        for code in fine:                                                            # greedy: exact for 2^k..1,1
            take = rem >= code
            rem = torch.where(take, rem - code, rem)
            rows.append(torch.where(take, 1, -1))
        k = torch.arange(K)[:, None]
        rows = torch.stack(rows) if rows else torch.empty(0, B.numel(), dtype=torch.int64)
        out = torch.cat([rows, torch.where(k < m[None, :], 1, -1)]).to(torch.int8)
        if not torch.equal((out.to(torch.int64) * self.codes[:, None]).sum(0), B):
            raise ValueError(f"bias pattern failed to realise B (internal error; n_coarse={K})")
        return out


# ------------------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """Training codes prepared once for many `train_weak` calls: float32 (N, D) and its transpose, and the
    largest |dot product| any +-1 weight vector can give on them."""

    x: torch.Tensor
    xT: torch.Tensor
    zmax: int

    @classmethod
    def of(cls, x) -> "Inputs":
        """x (N, D) integer codes prepared once (an Inputs is returned as it is)."""
        if isinstance(x, Inputs):
            return x
        xf = torch.as_tensor(x).to(torch.float32)                  # codes: exact in float32
        if xf.dim() != 2:
            raise ValueError(f"x shape={tuple(xf.shape)} must be (N, D)")
        return cls(xf, xf.T.contiguous(), int(xf.abs().sum(1).max()) if len(xf) else 0)


@dataclass
class WeakLearners:
    """P binary-weight linear classifiers h(x) = +1 iff x @ w >= T (equivalently x @ w + B >= 0, B = -T)."""

    w: torch.Tensor          # (P, D) int8 in {-1, +1}
    T: torch.Tensor          # (P,) int64 reachable thresholds
    error: torch.Tensor      # (P,) float64 weighted training error of (w, T)
    n_flips: torch.Tensor | None = None   # (P,) flips accepted after the closed form

    def decide(self, x: torch.Tensor) -> torch.Tensor:
        """(P, N) int8 decisions for codes x (N, D): the ideal column (float32 products of codes <= 255 and +-1
        weights are exact integers below 2**24)."""
        x = torch.as_tensor(x)
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        z = self.w.to(torch.float32) @ x.T
        return torch.where(z >= self.T[:, None].to(torch.float32), 1, -1).to(torch.int8)


def pooled_covariance(x, labels, n_classes: int = 10, ridge: float = 1e-2) -> torch.Tensor:
    """(D, D) float64 within-class covariance of codes x (N, D), pooled over classes, plus `ridge` times its mean
    diagonal (regularises pixels that are almost always 0)."""
    ridge = check_real("ridge", ridge, 0.0)
    x = torch.as_tensor(x).to(torch.float64)
    y = torch.as_tensor(labels).to(torch.int64)
    S = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    for k in range(n_classes):
        xk = x[y == k]
        if len(xk):
            xc = xk - xk.mean(0)
            S += xc.T @ xc
    S /= max(len(x) - n_classes, 1)
    return S + ridge * S.diagonal().mean() * torch.eye(len(S), dtype=torch.float64)


def _threshold_table(bias: BiasRows, zmax: int):
    """Histogram layout for the threshold scan: (lo, nb, penalty). Dot products are clamped to [lo, lo + nb - 1]
    = [-R - 1, R + 1], R = min(reach, zmax + 1): every reachable threshold lies inside, and a clamped value stays
    on the same side of each of them. penalty (nb,) is +inf on bins whose threshold T = lo + j is unreachable."""
    R = min(bias.reach, zmax + 1)
    lo, nb = -R - 1, 2 * R + 3
    T_all = torch.arange(nb, dtype=torch.int64) + lo
    tie = 1e-12 * T_all.abs().to(torch.float64) / max(R, 1)            # ties go to the threshold nearest 0
    return lo, nb, torch.where(bias.reachable(T_all), tie, torch.inf)


def _scan_thresholds(z: torch.Tensor, u: torch.Tensor, w_neg: torch.Tensor, table):
    """Best reachable threshold per problem. z (P, N) integer-valued dot products, u (P, N) signed sample
    weights (d for y = +1, -d for y = -1), w_neg (P,) the weight of the negatives. Deciding +1 iff z >= T, the
    weighted error is w_neg + sum_{z < T} u (positives below T, negatives at or above it): one scatter-add and
    one cumulative sum. Returns (T (P,) int64, error (P,))."""
    lo, nb, penalty = table
    idx = (z.to(torch.int64) - lo).clamp_(0, nb - 1)
    hist = torch.zeros(z.shape[0], nb, dtype=u.dtype).scatter_add_(1, idx, u)
    err = torch.cumsum(hist, 1).sub_(hist).add_(w_neg[:, None])          # sum over bins < j
    j = (err + penalty).argmin(1)
    return j + lo, err.gather(1, j[:, None])[:, 0]


def train_weak(x, y, d, bias: BiasRows, S_inv: torch.Tensor | None = None, method: str = "lda",
               flips: int = 0, candidates: int = 2, softness: float = 0.1, weight_bits: int = 1) -> WeakLearners:
    """Train P binary-weight weak learners at once (see the module docstring). One intra-op thread: the work is
    many small elementwise passes, ~10x slower with two threads on a shared 2-core machine.

    Args:
        x: (N, D) integer codes (shared by all problems), or `Inputs.of(x)` prepared once.
        y: (P, N) or (N,) labels in {-1, +1}.
        d: (P, N) non-negative sample weights (normalised inside).
        bias: the bias rows; only their reachable thresholds are scanned.
        S_inv: (D, D) inverse pooled covariance (method "lda"); None for method "mean".
        flips: most single-weight flips accepted after the closed form (0: closed form only).
        candidates: flips tried exactly per step (the best by the surrogate gradient).
        softness: width of the sigmoid surrogate, in units of the weighted spread of the dot products.
        weight_bits: 1 (the array: +-1 cells); > 1 a digital reference with signed integer weights
            round(v / max|v| * (2**(weight_bits-1) - 1)) of the direction v (no flips).
    Returns:
        WeakLearners with w (P, D) int8, T (P,), the weighted training error (P,) and the flips accepted.
    """
    method = check_choice("method", method, METHODS)
    flips = check_int("flips", flips, 0, 10000)
    candidates = check_int("candidates", candidates, 1, 64)
    softness = check_real("softness", softness, 0.0, lo_open=True)
    weight_bits = check_int("weight_bits", weight_bits, 1, 8)
    inp = Inputs.of(x)
    d = torch.as_tensor(d).to(torch.float32)
    if d.dim() == 1:
        d = d[None]
    y = torch.as_tensor(y).to(torch.float32).expand_as(d)
    if d.shape[1] != inp.x.shape[0]:
        raise ValueError(f"d shape={tuple(d.shape)} does not match x shape={tuple(inp.x.shape)} (N differs)")
    if bool((d < 0).any()) or not bool(torch.isfinite(d).all()):
        raise ValueError("d must hold finite, non-negative sample weights")
    if method == "lda" and S_inv is None:
        raise ValueError("method='lda' needs S_inv (the inverse pooled covariance, see pooled_covariance)")
    with torch_threads(1):
        return _train(inp, y, d, bias, S_inv if method == "lda" else None, flips, candidates, softness, weight_bits)


def _train(inp, y, d, bias, S_inv, flips, candidates, softness, weight_bits=1):
    xf = inp.x
    d = d / d.sum(1, keepdim=True).clamp_min(1e-30)
    u = d * y                                                            # signed weights
    dn = torch.where(y > 0, 0.0, d)
    w_neg = dn.sum(1)
    w_pos = 1.0 - w_neg
    # weighted class means: sum_pos d x / W+ - sum_neg d x / W-, from (u @ x) and (d @ x)
    ux, dx = u @ xf, d @ xf
    mu = 0.5 * (dx + ux) / w_pos.clamp_min(1e-30)[:, None] - 0.5 * (dx - ux) / w_neg.clamp_min(1e-30)[:, None]
    if S_inv is not None:
        mu = mu.to(torch.float64) @ S_inv.to(torch.float64)
    top = 2 ** (weight_bits - 1) - 1
    if weight_bits == 1:
        w = torch.where(mu >= 0, 1.0, -1.0).to(torch.float32)
    else:
        w = torch.round(mu / mu.abs().amax(1, keepdim=True).clamp_min(1e-30) * top).to(torch.float32)
        flips = 0
    table = _threshold_table(bias, inp.zmax * max(top, 1))
    z = w @ inp.xT                                                       # exact integers (|z| < 2**24)
    T, err = _scan_thresholds(z, u, w_neg, table)
    n = torch.zeros(len(w), dtype=torch.int64)
    if flips:
        _refine(inp, y, d, u, w_neg, w, z, T, err, n, table, flips, candidates, softness)
    return WeakLearners(w.to(torch.int8), T, err.to(torch.float64), n)


def _refine(inp, y, d, u, w_neg, w, z, T, err, n, table, steps, k, softness):
    """Greedy flips guided by a smooth surrogate, in place on w, z, T, err, n: each step ranks the flips by the
    gradient of a sigmoid-smoothed weighted error (one (P, N) @ (N, D) product), tries the `k` best exactly
    (threshold re-scanned) and keeps the best one if it lowers the weighted 0/1 error; a problem stops at its
    first step without gain, and only the problems still improving are computed."""
    act = torch.arange(w.shape[0])
    for _ in range(steps):
        za, ya, da, ua, wa = z[act], y[act], d[act], u[act], w[act]
        zc = za - (T[act].to(za.dtype) - 0.5)[:, None]
        mean = (da * zc).sum(1, keepdim=True)
        var = (da * zc * zc).sum(1, keepdim=True) - mean * mean
        scale = softness * var.clamp_min(1.0).sqrt()
        s = torch.sigmoid(ya * zc / -scale)
        grad = (ua * s * (1 - s) / scale) @ inp.x                       # d(soft error)/dz_n, projected on pixels
        cand = torch.topk(-(wa * grad), k, dim=1).indices               # flip i changes soft error by ~ 2 w_i g_i
        ar = torch.arange(len(act))
        best_e, best_T = err[act].clone(), T[act].clone()
        best_i = torch.full((len(act),), -1, dtype=torch.int64)
        for r in range(k):
            i = cand[:, r]
            T2, e2 = _scan_thresholds(za - 2 * wa[ar, i][:, None] * inp.xT[i], ua, w_neg[act], table)
            better = e2 < best_e - 1e-7 * best_e.abs().clamp_min(1e-6)
            best_e, best_T = torch.where(better, e2, best_e), torch.where(better, T2, best_T)
            best_i = torch.where(better, i, best_i)
        keep = best_i >= 0
        if not bool(keep.any()):
            break
        act, i, ar = act[keep], best_i[keep], ar[keep]
        sgn = wa[ar, i]
        z[act] = za[ar] - 2 * sgn[:, None] * inp.xT[i]
        w[act, i] = -sgn
        T[act], err[act] = best_T[keep], best_e[keep]
        n[act] += 1
