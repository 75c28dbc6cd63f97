"""The reduced binarized neural network (BNN) that fits one 128 x 128 array, its training and its folded form.

Trained network (`BNN`, torch):
- on-array layers (`BinaryLayer`): binary +-1 weights (sign of latent real weights, sign(0) = +1), integer-scale
  pre-activation z = x @ W_b, batch-norm, then the binary activation sign(.) with sign(0) = +1. Layer 0 takes the
  unsigned word-line codes (0..2**bits-1), later layers the +-1 outputs of the layer before. Each on-array layer
  occupies its own columns of the array (one comparator = one neuron) and fan-in rows, weights stationary.
- readout, two kinds that both need only binary comparator outputs plus a little digital logic:
  "digital": a small digital layer with binary weights, score_c = sum_i a_i W_ic + b_c (XNOR-popcount and an
  integer bias), label = argmax (first index on ties);
  "vote": the last on-array layer has `votes` columns per class; label = argmax of the number of +1s per class
  (first index on ties).
- training: straight-through estimator (the gradient of sign is the clipped identity, 1 where |x| <= 1), latent
  real weights clipped to [-1, 1] after each Adam step, batch-norm before every sign, deterministic for a seed.
  In eval mode the BN + sign decision is evaluated exactly as the threshold comparison z >= t (or z <= t for a
  negative BN gain) in float64, so the folded integer network reproduces it bit for bit.

Folded network (`FoldedBNN`, what the mapping consumes): `FoldedLayer(weight int8 (fan_in, fan_out) in {-1,+1},
theta int64 (fan_out,))`, out = +1 iff x @ weight >= theta (ties +1), and the readout (`DigitalReadout` with
int8 weights and int64 bias, or `VoteReadout`).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import io
from .validate import check_choice, check_int, check_real

ARRAY_ROWS = 128
ARRAY_COLS = 128
N_CLASSES = 10
READOUTS = ("digital", "vote")
FORMAT = "ibnn-bnn-v1"
REQUIRED_META = ("topology", "size", "bits", "seed", "data_checksums", "readout")
#: Validation split used for model selection (5000 of the 60000 training images).
VAL_FRACTION = 1 / 12
#: The training recipe notebook 03 uses by default.
DEFAULT_RECIPE = {"hidden": [128], "readout": "digital", "epochs": 60, "lr": 1e-2, "batch_size": 512}


# ---------------------------------------------------------------------------------------------------------------
# Binary primitives
# ---------------------------------------------------------------------------------------------------------------

def binarize(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with sign(0) = +1, same dtype as x (no gradient)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class SignSTE(torch.autograd.Function):
    """Forward: sign with sign(0) = +1. Backward: straight-through, clipped identity (grad * 1[|x| <= 1])."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return binarize(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


class RoundSTE(torch.autograd.Function):
    """Forward: round half to even (torch.round). Backward: identity."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


# ---------------------------------------------------------------------------------------------------------------
# Thresholds from batch-norm (shared by the eval-mode model and by folding, so they agree exactly)
# ---------------------------------------------------------------------------------------------------------------

def bn_threshold(bn: nn.BatchNorm1d, bound: float):
    """(t float64, direction int64 in {+1, -1, 0}, beta_sign) of the decision BN(z) >= 0 in eval mode.

    gamma > 0: BN(z) >= 0  <=>  z >= t;  gamma < 0: <=>  z <= t;  gamma == 0: constant (beta >= 0).
    t = mu - beta * sqrt(var + eps) / gamma, computed in float64 and clipped to [-bound, bound] (|z| < bound).
    """
    gamma = bn.weight.detach().double()
    beta = bn.bias.detach().double()
    mu = bn.running_mean.detach().double()
    sd = torch.sqrt(bn.running_var.detach().double() + bn.eps)
    direction = torch.sign(gamma).to(torch.int64)
    safe = torch.where(gamma == 0, torch.ones_like(gamma), gamma)
    t = (mu - beta * sd / safe).clamp(-bound, bound)
    t = torch.nan_to_num(t, nan=0.0)
    return t, direction, beta >= 0


def _threshold_decision(z: torch.Tensor, t, direction, beta_pos) -> torch.Tensor:
    """+-1 float64 decisions of the threshold form (z float64, exact integers)."""
    up = z >= t
    down = z <= t
    const = beta_pos.expand_as(z)
    out = torch.where(direction > 0, up, torch.where(direction < 0, down, const))
    return out.double() * 2 - 1


# ---------------------------------------------------------------------------------------------------------------
# The trainable network
# ---------------------------------------------------------------------------------------------------------------

class BinaryLayer(nn.Module):
    """One on-array layer: binary weights (fan_in, fan_out), batch-norm, sign."""

    def __init__(self, fan_in: int, fan_out: int, max_input: int):
        super().__init__()
        self.fan_in, self.fan_out, self.max_input = fan_in, fan_out, max_input
        self.weight = nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-1, 1) / math.sqrt(fan_in))
        self.bn = nn.BatchNorm1d(fan_out)

    @property
    def bound(self) -> float:
        """|z| is always below this (fan_in * largest input + 1)."""
        return float(self.fan_in * self.max_input + 1)

    def binary_weight(self) -> torch.Tensor:
        return binarize(self.weight.detach())

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        """Integer-scale pre-activation x @ W_b (the differential bit-line signal in LSB units)."""
        return x @ sign_ste(self.weight)

    def forward(self, x, index: int = 0, preact_noise=None):
        if self.training:
            z = self.preact(x)
            if preact_noise is not None:
                z = preact_noise(index, z)
            return sign_ste(self.bn(z))
        z = x.double() @ self.binary_weight().double()
        t, d, b = bn_threshold(self.bn, self.bound)
        return _threshold_decision(z, t, d, b).to(x.dtype if x.is_floating_point() else torch.float32)


class DigitalHead(nn.Module):
    """Digital binary readout: score = a @ W_b + round(b); training logits = score * exp(log_scale)."""

    def __init__(self, fan_in: int, n_classes: int = N_CLASSES):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_in, n_classes).uniform_(-1, 1) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(fan_in)))

    def scores(self, a):
        if self.training:
            return a @ sign_ste(self.weight) + RoundSTE.apply(self.bias)
        return a.double() @ binarize(self.weight.detach()).double() + torch.round(self.bias.detach()).double()

    def forward(self, a):
        return self.scores(a) * self.log_scale.exp().to(a.dtype)


class VoteHead(nn.Module):
    """Vote readout: class score = sum of the +-1 outputs of its `votes` columns (= 2 * count(+1) - votes)."""

    def __init__(self, votes: int, n_classes: int = N_CLASSES):
        super().__init__()
        self.votes, self.n_classes = votes, n_classes
        self.log_scale = nn.Parameter(torch.tensor(0.0))

    def scores(self, a):
        return a.reshape(a.shape[0], self.n_classes, self.votes).sum(-1)

    def forward(self, a):
        return self.scores(a) * self.log_scale.exp().to(a.dtype)


def array_usage(hidden: Sequence[int], readout: str = "digital", n_in: int = 81, bias_rows: int = 8,
                rows: int = ARRAY_ROWS, cols: int = ARRAY_COLS) -> dict:
    """Rows and columns the on-array layers occupy (each layer its own columns; fan-in + bias rows per layer).

    Returns {"columns": total, "rows": max(fan_in + bias_rows), "layers": [{fan_in, fan_out}], "fits": bool,
    "digital": description of the readout logic}. `hidden` lists the on-array layer widths in order.
    """
    hidden = [check_int(f"hidden[{i}]", h, 1) for i, h in enumerate(hidden)]
    check_choice("readout", readout, READOUTS)
    fan_ins = [n_in] + hidden[:-1]
    layers = [{"fan_in": f, "fan_out": h} for f, h in zip(fan_ins, hidden)]
    used_cols = sum(hidden)
    used_rows = max(f + bias_rows for f in fan_ins)
    if readout == "digital":
        digital = {"kind": "digital", "xnor_popcount": f"{hidden[-1]}x{N_CLASSES}",
                   "ops": f"{N_CLASSES} popcounts of {hidden[-1]} bits + {N_CLASSES} bias adds + argmax"}
    else:
        votes = hidden[-1] // N_CLASSES
        digital = {"kind": "vote", "votes_per_class": votes,
                   "ops": f"{N_CLASSES} counts of {votes} bits + argmax"}
    return {"columns": used_cols, "rows": used_rows, "layers": layers, "bias_rows": bias_rows,
            "fits": used_cols <= cols and used_rows <= rows, "digital": digital}


class BNN(nn.Module):
    """Binarized network: on-array `hidden` layers (widths, in order) and a "digital" or "vote" readout."""

    def __init__(self, hidden: Sequence[int] = (128,), readout: str = "digital", n_in: int = 81, bits: int = 5,
                 n_classes: int = N_CLASSES):
        super().__init__()
        self.hidden = [check_int(f"hidden[{i}]", h, 1) for i, h in enumerate(hidden)]
        if not self.hidden:
            raise ValueError("hidden=[] must list at least one on-array layer width")
        self.readout_kind = check_choice("readout", readout, READOUTS)
        self.n_in = check_int("n_in", n_in, 1)
        self.bits = check_int("bits", bits, 1, 8)
        self.n_classes = check_int("n_classes", n_classes, 2)
        fan_ins = [self.n_in] + self.hidden[:-1]
        max_in = [2 ** self.bits - 1] + [1] * (len(self.hidden) - 1)
        self.layers = nn.ModuleList(BinaryLayer(f, h, m) for f, h, m in zip(fan_ins, self.hidden, max_in))
        if readout == "digital":
            self.head = DigitalHead(self.hidden[-1], n_classes)
        else:
            if self.hidden[-1] % n_classes:
                raise ValueError(f"hidden[-1]={self.hidden[-1]} must be a multiple of n_classes={n_classes} "
                                 "for the vote readout")
            self.head = VoteHead(self.hidden[-1] // n_classes, n_classes)

    @property
    def topology(self) -> list[int]:
        return [self.n_in, *self.hidden] + ([self.n_classes] if self.readout_kind == "digital" else [])

    def features(self, codes, preact_noise=None) -> list[torch.Tensor]:
        acts, x = [], codes
        for i, layer in enumerate(self.layers):
            x = layer(x, i, preact_noise)
            acts.append(x)
        return acts

    def forward(self, codes, preact_noise=None):
        """Training logits (B, n_classes)."""
        return self.head(self.features(codes, preact_noise)[-1])

    @torch.no_grad()
    def predict(self, codes, batch_size: int = 10000) -> torch.Tensor:
        """Labels int64 (B,) in eval mode (exact threshold form), without changing the module's mode."""
        was = self.training
        self.eval()
        try:
            codes = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes)
            out = []
            for s in range(0, codes.shape[0], batch_size):
                a = self.features(codes[s:s + batch_size].double())[-1]
                out.append(torch.argmax(self.head.scores(a), dim=1))
            return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)
        finally:
            self.train(was)


# ---------------------------------------------------------------------------------------------------------------
# Folded, hardware-facing network
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class FoldedLayer:
    """out = +1 iff x @ weight >= theta (ties +1), else -1. weight int8 (fan_in, fan_out) in {-1,+1}."""
    weight: torch.Tensor
    theta: torch.Tensor

    def __post_init__(self):
        self.weight = torch.as_tensor(self.weight).to(torch.int8)
        self.theta = torch.as_tensor(self.theta).to(torch.int64)
        if self.weight.ndim != 2 or not bool(((self.weight == 1) | (self.weight == -1)).all()):
            raise ValueError("FoldedLayer weight must be a 2-D tensor of +-1")
        if self.theta.shape != (self.weight.shape[1],):
            raise ValueError(f"theta has shape {tuple(self.theta.shape)}; expected ({self.weight.shape[1]},)")

    @property
    def fan_in(self) -> int:
        return self.weight.shape[0]

    @property
    def fan_out(self) -> int:
        return self.weight.shape[1]

    def preact(self, x) -> torch.Tensor:
        """x @ weight as exact integers (int64); x integer codes or +-1."""
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
        return (x.double() @ self.weight.double()).round().to(torch.int64)   # exact: |sum| << 2**53

    def __call__(self, x) -> torch.Tensor:
        return torch.where(self.preact(x) >= self.theta, 1, -1).to(torch.int8)


@dataclass
class DigitalReadout:
    """label = argmax(a @ weight + bias) (first index on ties); weight int8 (n, classes) +-1, bias int64."""
    weight: torch.Tensor
    bias: torch.Tensor
    kind: str = "digital"

    def __post_init__(self):
        self.weight = torch.as_tensor(self.weight).to(torch.int8)
        self.bias = torch.as_tensor(self.bias).to(torch.int64)

    def scores(self, a) -> torch.Tensor:
        return (torch.as_tensor(a).double() @ self.weight.double()).round().to(torch.int64) + self.bias

    def predict(self, a) -> torch.Tensor:
        return torch.argmax(self.scores(a), dim=1)


@dataclass
class VoteReadout:
    """label = argmax over classes of the count of +1s in the class's `votes` adjacent columns (first on ties)."""
    votes: int
    n_classes: int = N_CLASSES
    kind: str = "vote"

    def scores(self, a) -> torch.Tensor:
        a = torch.as_tensor(a)
        return (a > 0).reshape(a.shape[0], self.n_classes, self.votes).sum(-1).to(torch.int64)

    def predict(self, a) -> torch.Tensor:
        return torch.argmax(self.scores(a), dim=1)


@dataclass
class FoldedBNN:
    layers: list
    readout: object
    meta: dict = field(default_factory=dict)

    def hidden(self, codes) -> list[torch.Tensor]:
        """The +-1 int8 outputs of every on-array layer."""
        out, x = [], codes
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out

    def predict(self, codes) -> torch.Tensor:
        return self.readout.predict(self.hidden(codes)[-1])


def fold_layer(layer: BinaryLayer) -> FoldedLayer:
    """Fold BN into an integer threshold; a negative BN gain flips the column's weights and threshold."""
    w = layer.binary_weight().to(torch.int64)
    t, d, beta_pos = bn_threshold(layer.bn, layer.bound)
    big = int(layer.bound)
    theta = torch.where(d > 0, torch.ceil(t), torch.ceil(-t)).to(torch.int64)       # z >= t | -z >= -t
    theta = torch.where(d == 0, torch.where(beta_pos, -big, big), theta)            # constant +1 | -1
    w = torch.where((d < 0)[None, :], -w, w)
    return FoldedLayer(w.to(torch.int8), theta)


def fold(model: BNN, meta: dict | None = None) -> FoldedBNN:
    """The integer, hardware-facing form of a trained `model` (predicts exactly as model.predict)."""
    layers = [fold_layer(l) for l in model.layers]
    if model.readout_kind == "digital":
        readout = DigitalReadout(binarize(model.head.weight.detach()), torch.round(model.head.bias.detach()))
    else:
        readout = VoteReadout(model.head.votes, model.head.n_classes)
    full = model_meta(model)
    full["flipped"] = [int((l.bn.weight.detach() < 0).sum()) for l in model.layers]
    full.update(meta or {})
    return FoldedBNN(layers, readout, full)


def threshold_summary(folded: FoldedBNN, bits: int | None = None) -> list[dict]:
    """Per on-array layer: theta range, median |theta|, number of columns flipped by a negative BN gain (from
    the fold's metadata; None if unknown) and the bias rows a threshold needs when realised with rows driven at
    full-scale code: ceil(max|theta| / (2**bits - 1)). `input_max` is the largest input of the layer."""
    bits = bits if bits is not None else int(folded.meta.get("bits", 5))
    full = 2 ** bits - 1
    out = []
    for i, layer in enumerate(folded.layers):
        th = layer.theta
        drive = full if i == 0 else 1
        out.append({"theta_min": int(th.min()), "theta_max": int(th.max()),
                    "abs_theta_median": float(th.abs().double().median()),
                    "flipped": folded.meta.get("flipped", [None] * len(folded.layers))[i],
                    "bias_rows_full_scale": int(math.ceil(int(th.abs().max()) / full)),
                    "input_max": drive})
    return out


def model_meta(model: BNN) -> dict:
    return {"topology": model.topology, "on_array": list(model.hidden), "readout": model.readout_kind,
            "bits": model.bits, "n_in": model.n_in, "n_classes": model.n_classes}


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    model: BNN
    history: dict
    seconds: float


def _as_float(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()


def accuracy(model_or_folded, codes, labels) -> float:
    pred = model_or_folded.predict(codes)
    labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long()
    return float((pred == labels).double().mean())


@torch.no_grad()
def recalibrate_bn(model: BNN, codes, batch_size: int = 1000) -> BNN:
    """Re-estimate every batch-norm's running mean/var for the final binary weights (cumulative average over
    `codes`, training-mode forward without noise), so the eval-mode thresholds match the weights they act on."""
    x = _as_float(codes)
    was = model.training
    saved = [l.bn.momentum for l in model.layers]
    model.train()
    try:
        for l in model.layers:
            l.bn.reset_running_stats()
            l.bn.momentum = None
        for s in range(0, x.shape[0], batch_size):
            if x.shape[0] - s >= 2:
                model.features(x[s:s + batch_size])
    finally:
        for l, m in zip(model.layers, saved):
            l.bn.momentum = m
        model.train(was)
    return model


def train_bnn(codes, labels, val_codes=None, val_labels=None, *, hidden: Sequence[int] = (128,),
              readout: str = "digital", bits: int = 5, epochs: int = 20, batch_size: int = 512,
              lr: float = 1e-2, seed: int = 0, preact_noise: Callable | None = None,
              recalibrate: bool = True, progress: bool = False) -> TrainResult:
    """Train a `BNN` with the straight-through estimator and Adam; deterministic for a given seed.

    codes: (N, n_in) word-line codes 0..2**bits-1; labels (N,) 0..9, or (N, n_classes) class probabilities (soft
    targets, e.g. for distillation; the cross-entropy then uses them directly). Each epoch visits a seeded random
    permutation in batches of `batch_size`; the learning rate follows a cosine from `lr` to 0 over all steps;
    latent weights are clipped to [-1, 1] after each step. `preact_noise(layer_index, z) -> z'`, if given, perturbs
    each on-array layer's integer-scale pre-activation z = x @ W_b (B, fan_out) during training only.
    recalibrate: after the last epoch, re-estimate the batch-norm statistics for the final binary weights over
    the training codes (`recalibrate_bn`; latent weights oscillate around zero during training, so the running
    averages lag behind the weights the eval model ends up with).
    history: per epoch "loss" (mean training loss), "train_acc" (on the training batches, training mode) and,
    with validation data, "val_acc" (eval mode, exact; after each epoch) and "val_acc_recalibrated" (final model).
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_real("lr", lr, 0.0, None, lo_open=True)
    seed = check_int("seed", seed, 0)
    bits = check_int("bits", bits, 1, 8)
    if preact_noise is not None and not callable(preact_noise):
        raise ValueError(f"preact_noise={preact_noise!r} must be None or a callable (layer_index, preact)")
    x = _as_float(codes)
    y = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
    y = y.float() if y.ndim == 2 else y.long()          # (N, classes) probabilities: soft targets
    y_hard = y.argmax(1) if y.ndim == 2 else y
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"codes {tuple(x.shape)} and labels {tuple(y.shape)} must be (N, n_in) and (N,)")
    if x.numel() and (x.min() < 0 or x.max() > 2 ** bits - 1):
        raise ValueError(f"codes span {x.min():.0f}..{x.max():.0f}; accepted: 0..{2 ** bits - 1} for bits={bits}")
    from .progress import progress as _progress
    t0 = time.perf_counter()
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BNN(hidden, readout, n_in=x.shape[1], bits=bits)
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            steps_per_epoch = math.ceil(x.shape[0] / batch_size)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, epochs * steps_per_epoch)
                                                   / (epochs * steps_per_epoch))))
            latent = [l.weight for l in model.layers]
            if readout == "digital":
                latent.append(model.head.weight)
            hist = {"loss": [], "train_acc": [], "val_acc": []}
            loss_fn = nn.CrossEntropyLoss()
            for _ in _progress(range(epochs), desc="epochs", disable=None if progress else True):
                model.train()
                perm = torch.randperm(x.shape[0], generator=gen)
                tot, correct = 0.0, 0
                for s in range(0, x.shape[0], batch_size):
                    idx = perm[s:s + batch_size]
                    logits = model(x[idx], preact_noise)
                    loss = loss_fn(logits, y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    with torch.no_grad():
                        for w in latent:
                            w.clamp_(-1, 1)
                    tot += float(loss.detach()) * len(idx)
                    correct += int((logits.argmax(1) == y_hard[idx]).sum())
                hist["loss"].append(tot / x.shape[0])
                hist["train_acc"].append(correct / x.shape[0])
                if val_codes is not None:
                    hist["val_acc"].append(accuracy(model, val_codes, val_labels))
            if recalibrate:
                recalibrate_bn(model, x[torch.randperm(x.shape[0], generator=gen)])
                if val_codes is not None:
                    hist["val_acc_recalibrated"] = accuracy(model, val_codes, val_labels)
            model.eval()
    finally:
        torch.use_deterministic_algorithms(det)
    if val_codes is None:
        del hist["val_acc"]
    return TrainResult(model, hist, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------

def _plain(v):
    """Metadata as plain python (lists, not tuples/arrays) so that comparisons and weights_only loads work."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if torch.is_tensor(v) or isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_checkpoint(path, model, meta: dict | None = None):
    """Write a checkpoint atomically: the folded network, the trained state (if `model` is a BNN) and metadata.

    model: a trained `BNN` (folded here; its state_dict is kept too) or a `FoldedBNN`.
    meta must give (or `model` must carry) topology, size, bits, seed, data_checksums and readout.
    """
    from pathlib import Path
    path = Path(path)
    if isinstance(model, BNN):
        folded = fold(model, meta)
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        config = {"hidden": list(model.hidden), "readout": model.readout_kind, "n_in": model.n_in,
                  "bits": model.bits, "n_classes": model.n_classes}
    elif isinstance(model, FoldedBNN):
        folded = FoldedBNN(model.layers, model.readout, {**model.meta, **(meta or {})})
        trained, config = None, None
    else:
        raise ValueError(f"model of type {type(model).__name__} is not accepted; pass a BNN or a FoldedBNN")
    full_meta = _plain(folded.meta)
    missing = [k for k in REQUIRED_META if k not in full_meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}; required: {list(REQUIRED_META)}")
    ro = folded.readout
    readout = ({"kind": "digital", "weight": ro.weight.clone(), "bias": ro.bias.clone()}
               if isinstance(ro, DigitalReadout) else
               {"kind": "vote", "votes": int(ro.votes), "n_classes": int(ro.n_classes)})
    obj = {"format": FORMAT, "meta": full_meta,
           "layers": [{"weight": l.weight.clone(), "theta": l.theta.clone()} for l in folded.layers],
           "readout": readout, "trained": trained, "config": config}
    io.atomic_torch_save(obj, path)
    return path


def _load_raw(path, expect):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not an ibnn BNN checkpoint (format "
                         f"{obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r}, "
                         f"expected {FORMAT!r})")
    meta = obj["meta"]
    for key, want in (expect or {}).items():
        if key not in meta:
            raise ValueError(f"{path}: checkpoint field {key!r} expected {_plain(want)!r}, found nothing "
                             f"(fields: {sorted(meta)})")
        if _plain(want) != meta[key]:
            raise ValueError(f"{path}: checkpoint field {key!r} expected {_plain(want)!r}, found {meta[key]!r}")
    return obj


def load_checkpoint(path, expect: dict | None = None) -> FoldedBNN:
    """The FoldedBNN in `path` (torch.load weights_only=True); every key of `expect` must equal its metadata."""
    obj = _load_raw(path, expect)
    layers = [FoldedLayer(l["weight"], l["theta"]) for l in obj["layers"]]
    ro = obj["readout"]
    readout = (DigitalReadout(ro["weight"], ro["bias"]) if ro["kind"] == "digital"
               else VoteReadout(ro["votes"], ro["n_classes"]))
    return FoldedBNN(layers, readout, obj["meta"])


def load_trained(path, expect: dict | None = None) -> BNN:
    """The trained torch `BNN` (eval mode) in `path`; ValueError if it holds only a folded network."""
    obj = _load_raw(path, expect)
    if obj.get("trained") is None:
        raise ValueError(f"{path}: holds only a folded network, no trained state")
    cfg = obj["config"]
    model = BNN(cfg["hidden"], cfg["readout"], n_in=cfg["n_in"], bits=cfg["bits"], n_classes=cfg["n_classes"])
    model.load_state_dict(obj["trained"])
    return model.eval()
