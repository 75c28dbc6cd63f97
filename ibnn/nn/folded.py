"""The folded, hardware-facing network: integer thresholds, +-1 weights, and the digital readouts.

`FoldedLayer(weight int8 (fan_in, fan_out) in {-1,+1}, theta int64 (fan_out,))`: out = +1 iff x @ weight >= theta
(ties +1). `fold(model)` turns a trained `BNN` into a `FoldedBNN` that predicts exactly as the trained model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..repro.device import as_tensor
from .binary import BNN, N_CLASSES, BinaryLayer, binarize, bn_threshold, model_meta

F32_EXACT = 2 ** 24       # every integer of magnitude up to 2**24 is a float32
DOT_ROWS = 1 << 15        # rows of x per float32 product in `exact_dot` (a 16-MB buffer for 128 columns)


def exact_dot(x, weight: torch.Tensor) -> torch.Tensor:
    """x @ weight exactly, int64 (B, m), for integer-valued x (B, n) and an integer weight (n, m).

    Where x has an integer dtype and n * max|x| * max|weight| <= 2**24, every product and every partial sum is an
    integer of at most that magnitude, so float32 computes it exactly in any order of summation (whatever the
    BLAS's blocking): a float32 product, DOT_ROWS rows at a time through one buffer. Otherwise (floating x, larger
    values) float64, rounded (exact while |sum| < 2**53). The readout of many chips' outputs (bench_mapping's (b))
    is several times faster this way than in float64."""
    x = as_tensor(x)
    if not _float32_exact(x, weight):
        return (x.double() @ weight.double()).round().to(torch.int64)
    wf = weight.to(device=x.device, dtype=torch.float32)
    flat = x.reshape(-1, x.shape[-1])
    n_rows, m = flat.shape[0], weight.shape[1]
    out = torch.empty(n_rows, m, dtype=torch.int64, device=x.device)
    # one float32 buffer for every chunk: a fresh copy per chunk is mapped and faulted in anew, several times slower
    rows = min(DOT_ROWS, n_rows)
    buf, res = torch.empty(rows, flat.shape[1], device=x.device), torch.empty(rows, m, device=x.device)
    for r0 in range(0, n_rows, rows):
        k = min(rows, n_rows - r0)
        buf[:k].copy_(flat[r0:r0 + k])
        torch.matmul(buf[:k], wf, out=res[:k])
        out[r0:r0 + k].copy_(res[:k])
    return out.reshape(*x.shape[:-1], m)


def _float32_exact(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `exact_dot` may take the float32 route: integer x, and n * max|x| * max|weight| <= 2**24 (the
    magnitudes in Python ints: abs() of an int16's -2**15 overflows)."""
    if x.dtype.is_floating_point or x.dtype == torch.bool or x.numel() == 0 or weight.numel() == 0:
        return False
    x_max = {torch.int8: 128, torch.uint8: 255}.get(x.dtype) or max(int(x.max()), -int(x.min()))
    return x.shape[-1] * x_max * max(int(weight.max()), -int(weight.min())) <= F32_EXACT


@dataclass
class FoldedLayer:
    """out = +1 iff x @ weight >= theta (ties +1), else -1. weight int8 (fan_in, fan_out) in {-1,+1}.

    >>> layer = FoldedLayer(torch.tensor([[1, -1], [1, 1]]), torch.tensor([3, 0]))
    >>> layer(torch.tensor([[2, 1], [1, 1]])).tolist()   # dots [3, -1] and [2, 0]: 3 >= 3, -1 < 0; 2 < 3, 0 >= 0
    [[1, -1], [-1, 1]]
    """
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
        return exact_dot(x, self.weight)

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
        """Integer class scores a @ weight + bias, int64 (B, classes)."""
        return exact_dot(a, self.weight) + self.bias

    def predict(self, a) -> torch.Tensor:
        """Labels int64 (B,) of a (B, n): argmax of the scores, DOT_ROWS rows at a time, so the scores of many
        chips' outputs (bench_mapping's (b): 10**6 rows) are never all held at once."""
        a = as_tensor(a)
        out = torch.empty(a.shape[0], dtype=torch.int64, device=a.device)
        for r0 in range(0, a.shape[0], DOT_ROWS):
            out[r0:r0 + DOT_ROWS] = torch.argmax(self.scores(a[r0:r0 + DOT_ROWS]), dim=1)
        return out


@dataclass
class VoteReadout:
    """label = argmax over classes of the count of +1s in the class's `votes` adjacent columns (first on ties)."""
    votes: int
    n_classes: int = N_CLASSES
    kind: str = "vote"

    def scores(self, a) -> torch.Tensor:
        """Per class the count of +1 outputs among its columns, int64 (B, classes)."""
        a = torch.as_tensor(a)
        return (a > 0).reshape(a.shape[0], self.n_classes, self.votes).sum(-1).to(torch.int64)

    def predict(self, a) -> torch.Tensor:
        """Labels int64 (B,): argmax of the counts."""
        return torch.argmax(self.scores(a), dim=1)


@dataclass
class FoldedBNN:
    """The hardware-facing network: FoldedLayers (on the array), a digital readout, and metadata."""
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
        """Labels int64 (B,) for word-line codes (B, n_in)."""
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
