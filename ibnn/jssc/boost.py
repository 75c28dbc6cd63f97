"""Boosting the column weak classifiers into a ten-way classifier, with the digital weighted vote beside the array.

Scheme: one-vs-all discrete AdaBoost (Y. Freund, R. Schapire, J. Comput. Syst. Sci. 55(1):119-139, 1997), one
binary problem per class ("digit k" against the rest), `n_per_class` rounds each, so 10 x n_per_class columns
(<= 128). Why this scheme: a column's comparator gives one binary decision, so a column is a binary weak
classifier; the prototype combines "multiple columns" into "a strong classifier through boosting" and makes a
ten-way decision (JSSC 2017 abstract). Multiclass SAMME (J. Zhu, H. Zou, S. Rosset, T. Hastie, Stat. Interface
2:349-360, 2009) needs ten-way weak classifiers, which one column cannot produce. One-vs-all binary boosting with
a per-class weighted vote and an argmax is the simplest scheme whose weak learners are single columns (all-vs-all
would need 45 binary problems, under three columns each).

Rounds of the ten classes are independent, so round t trains ten columns at once (column index t * 10 + k), and
every chip of a batch trains its own columns at the same time (problems = chips x classes, `weak.train_weak`).

Per round, per chip and class (sample weights d, labels y = +-1, `respond` gives the column's decisions h):
    eps = sum d [h != y],  alpha = 1/2 ln((1 - eps) / eps),  d <- d exp(-alpha y h) / Z.
Initial weights are balanced: half the weight on the class, half on the rest (otherwise "always -1" is a weak
classifier with error 0.1 on the first round). In software training h is the ideal column (x @ w >= T); in
error-adaptive boosting (EACB, Z. Wang, R. Schapire, N. Verma, IEEE TCAS-I 62(4):1136-1145, 2015, the training
the prototype builds on) h is the chip's own comparator output on the training images, so the sample weights,
hence every later column, and every vote weight follow that chip's actual errors.

Vote (`vote`): the digital logic beside the array adds the integer vote weight a_j of each column that fires
into its class's accumulator and takes the argmax (lowest class on ties): score_k = sum_j a_j h_j over the
class's columns, computed as 2 sum_j a_j [h_j = +1] - sum_j a_j (the second term a per-class constant).
Vote weights are alpha quantised to `alpha_bits` signed bits (`quantise_alpha`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from ..repro.device import torch_threads
from ..validate import check_choice, check_int, check_real
from .weak import METHODS, BiasRows, Inputs, WeakLearners, train_weak

EPS_FLOOR = 1e-6      # weighted error floor: keeps alpha finite when a column separates its training set


@dataclass(frozen=True)
class BoostConfig:
    """Configuration of the boosted classifier (all columns share the bias rows)."""

    n_per_class: int = 12        # weak classifiers (columns) per class
    n_classes: int = 10
    # coarse bias rows at full scale (code 31). Every bias row is driven in every cycle, so each adds mismatched
    # current to both bit-lines (and word-line and DAC energy): fewer rows, fewer column errors, but a shorter
    # threshold reach. Chosen on validation data (development chips, training-split images not used for training)
    # by the project's rule, the fewest rows whose chip-in-the-loop accuracy is not resolvably below the best
    # candidate's: `choices.choose_bias_rows` (scripts/jssc_choose_bias_rows.py prints every candidate).
    n_coarse: int = 1
    method: str = "lda"          # weak-learner direction: "lda" (pooled covariance) or "mean"
    flips: int = 20              # most greedy single-weight flips per weak learner (0: closed form only)
    candidates: int = 2          # flips tried exactly per greedy step
    softness: float = 0.1        # surrogate width (fraction of the weighted spread of the dot products)
    alpha_bits: int = 8          # signed bits of the digital vote weights
    weight_bits: int = 1         # 1: the array's +-1 cells; > 1: a digital reference with multi-bit weights
    n_features: int = 81
    bits: int = 5

    def __post_init__(self):
        check_int("n_per_class", self.n_per_class, 1)
        check_int("n_classes", self.n_classes, 2)
        check_int("n_coarse", self.n_coarse, 0)
        check_choice("method", self.method, METHODS)
        check_int("flips", self.flips, 0, 10000)
        check_int("candidates", self.candidates, 1, 64)
        check_real("softness", self.softness, 0.0, lo_open=True)
        check_int("alpha_bits", self.alpha_bits, 2, 32)
        check_int("weight_bits", self.weight_bits, 1, 8)
        check_int("n_features", self.n_features, 1)
        check_int("bits", self.bits, 1, 8)

    @property
    def n_columns(self) -> int:
        return self.n_per_class * self.n_classes

    @property
    def bias(self) -> BiasRows:
        return BiasRows(self.n_coarse, self.bits)

    def check_fits(self, rows: int, cols: int) -> None:
        """ValueError unless the columns and the data + bias rows fit a rows x cols array."""
        need_r = self.n_features + self.bias.n_rows
        if self.n_columns > cols or need_r > rows:
            raise ValueError(f"BoostConfig needs {self.n_columns} columns and {need_r} rows "
                             f"({self.n_features} data + {self.bias.n_rows} bias); the array has {cols} columns "
                             f"and {rows} rows")


@dataclass
class Boosted:
    """A boosted classifier, one per chip (G = 1 for software training). Column j = round * n_classes + class."""

    config: BoostConfig
    w: torch.Tensor          # (G, n_columns, D) int8 +-1 data weights
    T: torch.Tensor          # (G, n_columns) int64 thresholds (bias B = -T)
    alpha: torch.Tensor      # (G, n_columns) float64 vote weights
    train_error: torch.Tensor  # (G, n_columns) weighted error of the column as used (chip or ideal)
    meta: dict = field(default_factory=dict)

    @property
    def classes(self) -> torch.Tensor:
        """(n_columns,) class of each column."""
        return torch.arange(self.config.n_columns) % self.config.n_classes

    def truncate(self, n_per_class: int) -> "Boosted":
        """The classifier of the first n_per_class rounds (what boosting had after that many)."""
        n = check_int("n_per_class", n_per_class, 1, self.config.n_per_class) * self.config.n_classes
        return Boosted(replace(self.config, n_per_class=n_per_class), self.w[:, :n], self.T[:, :n],
                       self.alpha[:, :n], self.train_error[:, :n], dict(self.meta))

    def ideal_decisions(self, x) -> torch.Tensor:
        """(G, N, n_columns) int8: the columns as an ideal array computes them."""
        xf = torch.as_tensor(x).to(torch.float64)
        z = torch.einsum("nd,gcd->gnc", xf, self.w.to(torch.float64))
        return torch.where(z >= self.T[:, None, :].to(torch.float64), 1, -1).to(torch.int8)

    def predict(self, h: torch.Tensor, quantised: bool = True) -> torch.Tensor:
        """Labels (G, N) from column decisions h (G, N, n_columns) by the weighted vote."""
        a = quantise_alpha(self.alpha, self.config.alpha_bits) if quantised else self.alpha
        return vote(h, a, self.classes, self.config.n_classes)


def quantise_alpha(alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer vote weights (int64) with `bits` signed bits: round(alpha / max|alpha| * (2**(bits-1) - 1)) per
    classifier (last dimension); the argmax of the vote is scale-free, so the scale is not needed."""
    bits = check_int("bits", bits, 2, 32)
    top = alpha.abs().amax(-1, keepdim=True).clamp_min(1e-300)
    return torch.round(alpha / top * (2 ** (bits - 1) - 1)).to(torch.int64)


def vote(h: torch.Tensor, a: torch.Tensor, classes: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Weighted vote: argmax_k sum_{j in class k} a_j h_j (lowest k on ties), in the accumulate-if-fired form
    2 sum_j a_j [h_j = +1] - sum_j a_j.

    h: (G or 1, N, C) +-1 decisions; a: (G or 1, C) vote weights: integers (the digital vote; the float64 sums
    below are then exact integers, checked to stay below 2**53) or floats; classes: (C,) class of each column.
    Returns (G, N) int64 labels."""
    G = max(h.shape[0], a.shape[0]) if h.dim() == 3 and a.dim() == 2 else -1
    if G < 0 or h.shape[-1] != a.shape[-1] or h.shape[0] not in (1, G) or a.shape[0] not in (1, G) \
            or classes.shape != (a.shape[-1],):
        raise ValueError(f"vote: h shape={tuple(h.shape)}, a shape={tuple(a.shape)}, classes shape="
                         f"{tuple(classes.shape)} do not match ((G, N, C), (G, C), (C,))")
    if not a.dtype.is_floating_point and a.numel() and int(a.abs().max()) * a.shape[-1] >= 2 ** 52:
        raise ValueError("vote weights too large for exact accumulation (|a| * columns must stay below 2**52)")
    onehot = torch.nn.functional.one_hot(classes.to(torch.int64), n_classes).to(torch.float64)      # (C, K)
    A = (a.to(torch.float64)[:, :, None] * onehot[None]).expand(G, -1, -1)                          # (G, C, K)
    fired = (h > 0).to(torch.float64).expand(G, -1, -1)
    score = 2 * torch.bmm(fired, A) - A.sum(1)[:, None, :]
    return score.argmax(-1)                                # torch.argmax returns the first maximum


def prefix_votes(h: torch.Tensor, a: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Labels (R, G, N) of the classifiers made of the first r = 1..R rounds, for round-major columns (column
    t * n_classes + k), with the vote weights `a` (G, R * n_classes) as stored (one quantisation for all r):
    score_k(r) = sum_{t < r} a_{t,k} h_{t,k}, a running sum over rounds (exact for integer weights)."""
    G, N, C = h.expand(max(h.shape[0], a.shape[0]), -1, -1).shape
    R = C // n_classes
    if C != R * n_classes or a.shape[-1] != C:
        raise ValueError(f"prefix_votes: {C} columns are not whole rounds of {n_classes} classes (a shape "
                         f"{tuple(a.shape)})")
    c = h.to(torch.float64) * a.to(torch.float64)[:, None, :]                                    # (G, N, C)
    score = torch.cumsum(c.reshape(G, N, R, n_classes), 2)
    return score.argmax(-1).permute(2, 0, 1)


def balanced_weights(labels: torch.Tensor, n_classes: int, G: int = 1) -> torch.Tensor:
    """(G, n_classes, N) float64 initial sample weights: half the weight on class k, half on the rest."""
    y = torch.as_tensor(labels).to(torch.int64)
    pos = torch.nn.functional.one_hot(y, n_classes).T.to(torch.float64)                  # (K, N)
    d = pos / pos.sum(1, keepdim=True) + (1 - pos) / (1 - pos).sum(1, keepdim=True)
    return (0.5 * d)[None].expand(G, -1, -1).clone()


Respond = Callable[[int, WeakLearners], torch.Tensor]


def boost(x, labels, config: BoostConfig, S_inv: torch.Tensor | None, respond: Respond | None = None,
          n_problems: int = 1) -> Boosted:
    """One-vs-all AdaBoost; G = n_problems independent classifiers (chips) trained at once (one intra-op
    thread: elementwise work on a shared 2-core machine is much faster so).

    Args:
        x: (N, D) training codes; labels: (N,) int classes.
        respond: respond(round, learners) -> (G, n_classes, N) +-1 decisions of the new columns (learners: G *
            n_classes problems, chip-major) on the training images; None: the ideal column (software training).
    Returns:
        Boosted with (G, n_columns) columns."""
    with torch_threads(1):
        return _boost(x, labels, config, S_inv, respond, n_problems)


def _boost(x, labels, cfg, S_inv, respond, n_problems):
    x = x.x.to(torch.int64) if isinstance(x, Inputs) else torch.as_tensor(x).to(torch.int64)
    y = torch.as_tensor(labels).to(torch.int64)
    G, K, N = check_int("n_problems", n_problems, 1), cfg.n_classes, x.shape[0]
    if x.shape[1] != cfg.n_features or y.shape != (N,):
        raise ValueError(f"x shape={tuple(x.shape)}, labels shape={tuple(y.shape)}: expected (N, "
                         f"{cfg.n_features}) and (N,)")
    ypm = torch.where(torch.nn.functional.one_hot(y, K).T > 0, 1.0, -1.0).to(torch.float32)     # (K, N)
    ypm_p = ypm[None].expand(G, -1, -1).reshape(G * K, N)
    d = balanced_weights(y, K, G).reshape(G * K, N).to(torch.float32)
    inp = Inputs.of(x)
    ws, Ts, alphas, errs, nflips = [], [], [], [], []
    for t in range(cfg.n_per_class):
        L = train_weak(inp, ypm_p, d, cfg.bias, S_inv=S_inv, method=cfg.method, flips=cfg.flips,
                       candidates=cfg.candidates, softness=cfg.softness, weight_bits=cfg.weight_bits)
        if respond is None:
            h = L.decide(inp.x).to(torch.float32)                                                    # (G*K, N)
        else:
            h = respond(t, L).reshape(G * K, N).to(torch.float32)
        eps = ((d * (h != ypm_p)).sum(1) / d.sum(1)).to(torch.float64)
        e = eps.clamp(EPS_FLOOR, 1 - EPS_FLOOR)
        alpha = 0.5 * torch.log((1 - e) / e)
        d = d * torch.exp(-alpha.to(torch.float32)[:, None] * ypm_p * h)
        d = d / d.sum(1, keepdim=True)
        ws.append(L.w.reshape(G, K, -1))
        Ts.append(L.T.reshape(G, K))
        alphas.append(alpha.reshape(G, K))
        errs.append(eps.reshape(G, K))
        nflips.append(L.n_flips.reshape(G, K))
    cat = lambda v: torch.cat(v, 1)          # noqa: E731  (G, n_columns, ...), column = t * K + k
    return Boosted(cfg, cat(ws), cat(Ts), cat(alphas), cat(errs),
                   {"n_train": int(N), "trained_on": "ideal" if respond is None else "chip",
                    "mean_flips": float(torch.cat(nflips, 1).double().mean())})
