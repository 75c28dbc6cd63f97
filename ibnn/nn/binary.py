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

import math
from typing import Sequence

import torch
from torch import nn

from ..repro.device import as_tensor
from ..validate import check_choice, check_int

N_CLASSES = 10


READOUTS = ("digital", "vote")


def binarize(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with sign(0) = +1, same dtype as x (no gradient)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class SignSTE(torch.autograd.Function):
    """Forward: sign with sign(0) = +1. Backward: straight-through, clipped identity (grad * 1[|x| <= 1])."""

    @staticmethod
    def forward(ctx, x):
        """sign(x) with sign(0) = +1."""
        ctx.save_for_backward(x)
        return binarize(x)

    @staticmethod
    def backward(ctx, grad):
        """The straight-through gradient: grad where |x| <= 1, else 0."""
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """sign(x) (sign(0) = +1) with the straight-through gradient."""
    return SignSTE.apply(x)


class RoundSTE(torch.autograd.Function):
    """Forward: round half to even (torch.round). Backward: identity."""

    @staticmethod
    def forward(ctx, x):
        """round(x), half to even."""
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        """The identity gradient."""
        return grad


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
        """The +-1 weights (sign of the latent weights), detached."""
        return binarize(self.weight.detach())

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        """Integer-scale pre-activation x @ W_b (the differential bit-line signal in LSB units)."""
        return x @ sign_ste(self.weight)

    def forward(self, x, index: int = 0, preact_noise=None):
        """+-1 outputs: training mode STE through batch-norm and sign; eval mode the exact threshold form."""
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
        """Integer class scores a @ W_b + round(b) (training: with straight-through gradients)."""
        if self.training:
            return a @ sign_ste(self.weight) + RoundSTE.apply(self.bias)
        return a.double() @ binarize(self.weight.detach()).double() + torch.round(self.bias.detach()).double()

    def forward(self, a):
        """Training logits: the scores times exp(log_scale)."""
        return self.scores(a) * self.log_scale.exp().to(a.dtype)


class VoteHead(nn.Module):
    """Vote readout: class score = sum of the +-1 outputs of its `votes` columns (= 2 * count(+1) - votes)."""

    def __init__(self, votes: int, n_classes: int = N_CLASSES):
        super().__init__()
        self.votes, self.n_classes = votes, n_classes
        self.log_scale = nn.Parameter(torch.tensor(0.0))

    def scores(self, a):
        """Per class the sum of its columns' +-1 outputs."""
        return a.reshape(a.shape[0], self.n_classes, self.votes).sum(-1)

    def forward(self, a):
        """Training logits: the vote scores times exp(log_scale)."""
        return self.scores(a) * self.log_scale.exp().to(a.dtype)


def array_usage(hidden: Sequence[int], readout: str, n_in: int, bias_rows: int, rows: int, cols: int) -> dict:
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
        """The +-1 outputs of every on-array layer, in order."""
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
            codes = as_tensor(codes)
            out = []
            for s in range(0, codes.shape[0], batch_size):
                a = self.features(codes[s:s + batch_size].double())[-1]
                out.append(torch.argmax(self.head.scores(a), dim=1))
            return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)
        finally:
            self.train(was)


def model_meta(model: BNN) -> dict:
    """The topology metadata of a trained model (stored in checkpoints)."""
    return {"topology": model.topology, "on_array": list(model.hidden), "readout": model.readout_kind,
            "bits": model.bits, "n_in": model.n_in, "n_classes": model.n_classes}
