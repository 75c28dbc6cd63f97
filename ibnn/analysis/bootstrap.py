"""Uncertainty of accuracies and accuracy drops measured on many simulated chips x many test images.

One run of the mapped network gives a correctness matrix C[i, j] (chip i classifies image j correctly), each cell
with its own temporal-noise draw (`ibnn.circuit.Chip` draws comparator noise per chip, image and cycle), and the
software network's correctness s[j] on the same images. The drop is paired per image:

    drop = mean_j s_j - mean_ij C_ij = mean_ij (s_j - C_ij).

A conclusion about the drop must cover three sources of sampling: which chips were made (static mismatch), which
images were drawn (the test set is a sample of the digit distribution), and the temporal noise of every decision.
In the crossed random-effects model x_ij = s_j - C_ij = mu + a_i + b_j + e_ij they are the chip (a), image (b) and
residual (e: chip x image interaction and temporal noise) components, and

    var(drop) = var(a) / n_chips + var(b) / n_images + var(e) / (n_chips n_images).

An interval over chips alone (a t interval of per-chip accuracies on one fixed image set) leaves out var(b), which
dominates for 10^4 images and a few 10^-2 of disagreeing labels.

Two-level bootstrap (`drop_ci`, method name `CI_METHOD`): every replicate draws n_chips chips and n_images images
with replacement, independently (the "pigeonhole" bootstrap of a crossed design, A. B. Owen, "The pigeonhole
bootstrap", Ann. Appl. Stat. 1(2):386-411, 2007), and recomputes the drop on the resampled cells with the software
reference resampled on the same images. Owen shows that its variance is mildly conservative (it counts the residual
term a few times over, a term divided by n_chips n_images), never anti-conservative for the grand mean; the
coverage test in tests/test_bootstrap.py checks the nominal rate on synthetic crossed data. Percentile
intervals. Vectorised: a replicate's resample is a pair of count vectors u (chips) and v (images), and
drop* = (s . v) / n_images - (u C v) / (n_chips n_images), a batched matrix product.

Replicates depend only on (seed, n_chips, n_images, n_boot), so two methods evaluated on the same chips and images
and bootstrapped with the same seed use the same resamples: their difference (`paired_difference`) is paired by
construction. `resolution` states what an experiment can tell apart; `variance_components` predicts it for another
design (n_chips, n_images) before running it. Inverse points and choices made on validation data:
`ibnn.analysis.inverse`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from ..repro.device import elementwise_threads, torch_threads
from ..validate import check_choice, check_int, check_real

CI_METHOD = "two-level bootstrap (chips x images)"


METHODS = {"both": CI_METHOD, "chips": "bootstrap over chips (images fixed)",
           "images": "bootstrap over images (chips fixed)"}


BLOCK = 200              # replicates per block (fixed: the resamples do not depend on memory settings)


Z95 = 1.959963984540054  # standard normal 97.5% quantile


Z80 = 0.8416212335729143  # standard normal 80% quantile (power 0.8)


def _as_matrix(name: str, x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).cpu()
    if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{name} shape={tuple(t.shape)} must be (n_chips >= 1, n_images >= 1)")
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name} must hold 0/1 (or bool) correctness values")
    return t.to(torch.float32)


def _as_vector(name: str, x, n: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).cpu()
    if t.shape != (n,):
        raise ValueError(f"{name} shape={tuple(t.shape)} must be ({n},): one value per image of the matrix")
    return t.to(torch.float64)


def _check_boot(n_boot, seed, level):
    return (check_int("n_boot", n_boot, 10, 10 ** 6), check_int("seed", seed, 0),
            check_real("level", level, 0.0, 1.0, lo_open=True, hi_open=True))


def _counts(gen: torch.Generator, rows: int, n: int) -> torch.Tensor:
    """(rows, n) float32 multiplicities of n draws with replacement from n items, per row."""
    idx = torch.randint(0, n, (rows, n), generator=gen)
    return torch.zeros(rows, n, dtype=torch.float32).scatter_add_(1, idx, torch.ones(rows, n))


def _generators(seed: int):
    g_c = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0]).generate_state(1)[0]))
    g_i = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
    return g_c, g_i


def replicates(mats: Sequence, softs: Sequence | None = None, n_boot: int = 2000, seed: int = 0,
               over: str = "both") -> torch.Tensor:
    """Bootstrap replicates of mean_j s_j - mean_ij C_ij for each (C, s), all on the SAME resamples.

    mats: M correctness matrices (n_chips, n_images), same shape (the same chips and images); softs: M software
    correctness vectors (n_images,), or None for all zeros (the statistic is then minus the chip accuracy).
    over: "both" (chips and images), "chips" (images fixed) or "images" (chips fixed).
    Returns float64 (M, n_boot). C may be any real matrix (a difference of two correctness matrices, say)."""
    over = check_choice("over", over, tuple(METHODS))
    n_boot = check_int("n_boot", n_boot, 1, 10 ** 6)
    seed = check_int("seed", seed, 0)
    C = torch.stack([torch.as_tensor(m, dtype=torch.float64) for m in mats])          # (M, nc, ni)
    M, nc, ni = C.shape
    S = (torch.zeros(M, ni, dtype=torch.float64) if softs is None else
         torch.stack([torch.as_tensor(s, dtype=torch.float64) for s in softs]))
    g_c, g_i = _generators(seed)
    out = torch.empty(M, n_boot, dtype=torch.float64)
    with torch_threads(elementwise_threads()):    # memory-bound: one thread unless IBNN_ELEMENTWISE_THREADS
        for b0 in range(0, n_boot, BLOCK):
            r = min(BLOCK, n_boot - b0)
            U = _counts(g_c, BLOCK, nc)[:r] if over != "images" else torch.ones(r, nc)
            V = _counts(g_i, BLOCK, ni)[:r] if over != "chips" else torch.ones(r, ni)
            Vd, Ud = V.double(), U.double()
            for m in range(M):
                # sum_ij U_bi C_ij V_bj as (U * (V C^T)).sum: one (r, ni) x (ni, nc) product instead of an (r, ni)
                # matrix of chip sums times V (exact either way for integer C: every partial sum is an integer)
                cv = Vd @ C[m].T                                                          # (r, nc)
                out[m, b0:b0 + r] = (Vd @ S[m]) / ni - (Ud * cv).sum(1) / (nc * ni)
    return out


def _percentile(rep: torch.Tensor, level: float) -> tuple[float, float]:
    a = 0.5 * (1 - level)
    lo, hi = np.quantile(rep.numpy(), [a, 1 - a])
    return float(lo), float(hi)


@dataclass
class DropCI:
    """A drop (software - chip accuracy, paired per image; 0.004 = 0.4 points) with its interval."""
    mean_drop: float
    ci95: list                 # [lo, hi] percentile interval at `level` (0.95 unless stated)
    se: float                  # bootstrap standard error
    software_accuracy: float   # on the images of the experiment
    chip_accuracy: float       # mean over chips and images
    n_chips: int
    n_images: int
    n_boot: int
    ci_method: str = CI_METHOD
    level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def drop_ci(correct, software_correct, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
            over: str = "both") -> DropCI:
    """Mean drop with its bootstrap interval (default: the two-level bootstrap over chips x images).

    correct: (n_chips, n_images) bool/0-1, chip i right on image j (one run: each cell its own noise draw);
    software_correct: (n_images,) the software network right on image j. over: "both" | "chips" | "images"."""
    n_boot, seed, level = _check_boot(n_boot, seed, level)
    C = _as_matrix("correct", correct)
    s = _as_vector("software_correct", software_correct, C.shape[1])
    rep = replicates([C], [s], n_boot, seed, over)[0]
    sw, acc = float(s.mean()), float(C.double().mean())
    return DropCI(sw - acc, list(_percentile(rep, level)), float(rep.std()), sw, acc, int(C.shape[0]),
                  int(C.shape[1]), n_boot, METHODS[over], level)


def drop_from_replicates(rep: torch.Tensor, correct, software_correct, level: float = 0.95) -> DropCI:
    """The `DropCI` of (correct, software_correct) from replicates already drawn for it (`replicates`, over both
    chips and images): what `drop_ci` returns with the same n_boot and seed, without drawing them again."""
    C = _as_matrix("correct", correct)
    s = _as_vector("software_correct", software_correct, C.shape[1])
    rep = torch.as_tensor(rep, dtype=torch.float64).reshape(-1)
    sw, acc = float(s.mean()), float(C.double().mean())
    return DropCI(sw - acc, list(_percentile(rep, level)), float(rep.std()), sw, acc, int(C.shape[0]),
                  int(C.shape[1]), int(rep.numel()), CI_METHOD, level)


@dataclass
class AccuracyCI:
    """Chip accuracy (mean over chips and images) with its interval; the software accuracy on the same images
    (image bootstrap) and the paired drop, when a software reference is given."""
    accuracy: float
    ci95: list
    se: float
    n_chips: int
    n_images: int
    ci_method: str = CI_METHOD
    software_accuracy: float | None = None
    software_ci95: list | None = None
    drop: DropCI | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["drop"] = self.drop.as_dict() if self.drop is not None else None
        return d


def accuracy_ci(correct, software_correct=None, n_boot: int = 2000, seed: int = 0,
                level: float = 0.95) -> AccuracyCI:
    """Chip accuracy with a two-level (chips x images) interval; with `software_correct` also the software
    accuracy on the same images and the paired drop (for plots of chip accuracy against its own software
    accuracy: both on the same >= 1000 images, with error bars)."""
    n_boot, seed, level = _check_boot(n_boot, seed, level)
    C = _as_matrix("correct", correct)
    nc, ni = C.shape
    if software_correct is None:
        rep = -replicates([C], None, n_boot, seed)[0]
        return AccuracyCI(float(C.double().mean()), list(_percentile(rep, level)), float(rep.std()), nc, ni)
    s = _as_vector("software_correct", software_correct, ni)
    rep = replicates([C, torch.zeros_like(C)], [torch.zeros(ni), s], n_boot, seed)     # (-acc*, sw*), same resamples
    acc_rep, sw_rep = -rep[0], rep[1]
    return AccuracyCI(float(C.double().mean()), list(_percentile(acc_rep, level)), float(acc_rep.std()), nc, ni,
                      software_accuracy=float(s.mean()), software_ci95=list(_percentile(sw_rep, level)),
                      drop=drop_ci(C, s, n_boot, seed, level))


@dataclass
class DiffCI:
    """Difference a - b of two methods' drops (or accuracies) on the same chips and images, paired."""
    difference: float
    ci95: list
    se: float
    of: str                    # "drop" or "accuracy"
    paired: bool
    n_chips: int
    n_images: int
    n_boot: int
    ci_method: str = CI_METHOD
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0 (the two methods are told apart)."""
        return self.ci95[0] > 0 or self.ci95[1] < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "resolved": self.resolved}


def paired_difference(correct_a, software_a, correct_b, software_b=None, of: str = "drop", n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95, paired: bool = True) -> DiffCI:
    """drop_a - drop_b (of="drop") or acc_a - acc_b (of="accuracy") with a two-level bootstrap interval.

    Both methods ran on the same chips (rows) and images (columns); software_b defaults to software_a (the same
    network). paired=False resamples the two methods independently (what an unpaired comparison would report;
    for comparison only)."""
    n_boot, seed, level = _check_boot(n_boot, seed, level)
    of = check_choice("of", of, ("drop", "accuracy"))
    A, B = _as_matrix("correct_a", correct_a), _as_matrix("correct_b", correct_b)
    if A.shape != B.shape:
        raise ValueError(f"correct_b shape={tuple(B.shape)} must equal correct_a's {tuple(A.shape)}: a paired "
                         f"comparison needs the same chips and images")
    sa = _as_vector("software_a", software_a, A.shape[1])
    sb = sa if software_b is None else _as_vector("software_b", software_b, A.shape[1])
    if of == "accuracy":
        sa, sb = torch.zeros_like(sa), torch.zeros_like(sb)
    sign = 1.0 if of == "drop" else -1.0
    if paired:
        rep = sign * replicates([A - B], [sa - sb], n_boot, seed)[0]
    else:
        rep = sign * (replicates([A], [sa], n_boot, seed)[0] - replicates([B], [sb], n_boot, seed + 1)[0])
    point = sign * (float(sa.mean() - sb.mean()) - float((A.double() - B.double()).mean()))
    return DiffCI(point, list(_percentile(rep, level)), float(rep.std()), of, bool(paired), int(A.shape[0]),
                  int(A.shape[1]), n_boot, CI_METHOD if paired else "two-level bootstrap, unpaired", level)


def difference_from_replicates(rep_a: torch.Tensor, rep_b: torch.Tensor, point: float, n_chips: int,
                               n_images: int, level: float = 0.95) -> DiffCI:
    """drop_a - drop_b from two methods' replicates drawn on the SAME resamples (same seed and shape): the drop is
    linear in the cells, so the difference of the replicates is the replicate of the difference, exactly what
    `paired_difference` computes."""
    rep = torch.as_tensor(rep_a, dtype=torch.float64) - torch.as_tensor(rep_b, dtype=torch.float64)
    return DiffCI(float(point), list(_percentile(rep, level)), float(rep.std()), "drop", True, int(n_chips),
                  int(n_images), int(rep.numel()), CI_METHOD, level)


@dataclass
class Resolution:
    """What an experiment can tell apart, in accuracy units (0.001 = 0.1 points)."""
    halfwidth: float           # half-width of the ci95 of the quantity (a drop, or a paired difference)
    se: float
    mdd80: float               # minimum detectable difference: (z_0.975 + z_0.8) se (5% test, 80% power)
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


def resolution(ci) -> Resolution:
    """The resolution of an experiment from a `DropCI` / `DiffCI` (for telling two methods apart, pass their
    `paired_difference`): "tells drops apart by X points" with X the half-width of the interval."""
    if not hasattr(ci, "ci95") or not hasattr(ci, "se"):
        raise ValueError(f"ci={ci!r} must be a DropCI or DiffCI (with ci95 and se)")
    hw = 0.5 * (ci.ci95[1] - ci.ci95[0])
    mdd = (Z95 + Z80) * ci.se
    return Resolution(hw, ci.se, mdd, f"tells drops apart by {100 * hw:.2f} points (95% interval half-width); "
                                      f"detects a difference of {100 * mdd:.2f} points with 80% power")


@dataclass
class VarianceComponents:
    """Crossed random-effects variance components of x_ij = s_j - C_ij (method of moments, two-way ANOVA)."""
    chip: float
    image: float
    residual: float
    n_chips: int
    n_images: int

    def se(self, n_chips: int, n_images: int) -> float:
        """Predicted standard error of the mean drop for a design with n_chips x n_images."""
        n_chips, n_images = check_int("n_chips", n_chips, 1), check_int("n_images", n_images, 1)
        return math.sqrt(self.chip / n_chips + self.image / n_images + self.residual / (n_chips * n_images))

    def halfwidth(self, n_chips: int, n_images: int) -> float:
        """Predicted 95% half-width (normal approximation) for n_chips x n_images."""
        return Z95 * self.se(n_chips, n_images)

    def as_dict(self) -> dict:
        return asdict(self)


def variance_components(correct, software_correct=None) -> VarianceComponents:
    """Chip, image and residual variance components of the per-cell drop (negative estimates set to 0).

    Use: `vc.halfwidth(n_chips, n_images)` predicts the resolution of another design before running it, e.g.
    to size sweep points (cheap: chips cost more than images)."""
    C = _as_matrix("correct", correct).double()
    nc, ni = C.shape
    s = torch.zeros(ni, dtype=torch.float64) if software_correct is None else \
        _as_vector("software_correct", software_correct, ni)
    x = s[None, :] - C
    mu = x.mean()
    r, c = x.mean(1), x.mean(0)
    ss_r = ni * float(((r - mu) ** 2).sum())
    ss_c = nc * float(((c - mu) ** 2).sum())
    ss_t = float(((x - mu) ** 2).sum())
    ms_r = ss_r / max(nc - 1, 1)
    ms_c = ss_c / max(ni - 1, 1)
    ms_e = (ss_t - ss_r - ss_c) / max((nc - 1) * (ni - 1), 1)
    return VarianceComponents(max((ms_r - ms_e) / ni, 0.0), max((ms_c - ms_e) / nc, 0.0), max(ms_e, 0.0), nc, ni)


def ci_over_chips_t(correct, software_correct, level: float = 0.95) -> list:
    """The old interval, for comparison: a t interval of the per-chip drops over chips (images fixed)."""
    from scipy import stats
    C = _as_matrix("correct", correct).double()
    s = _as_vector("software_correct", software_correct, C.shape[1])
    d = (float(s.mean()) - C.mean(1)).numpy()
    if d.size < 2:
        return [float(d.mean()), float(d.mean())]
    h = float(stats.t.ppf(0.5 + 0.5 * level, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return [float(d.mean() - h), float(d.mean() + h)]
