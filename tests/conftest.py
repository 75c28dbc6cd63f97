"""Shared test fixtures and fakes: a tiny folded network, an exact integer chip, a chip with comparator offsets.

The fakes implement the contracts the real objects fulfil (`ibnn.nn.FoldedBNN`, `ibnn.circuit.Chip`), so the
mapping and analysis tests need neither a trained checkpoint nor the circuit models.
"""
from __future__ import annotations

import pytest
import torch

from ibnn import params
from ibnn.circuit.chip import ChipOutput
from ibnn.repro import lean  # noqa: F401  (the workers' nbformat imports skip rfc3987_syntax's grammar)


class FakeLayer:
    """A folded layer: out = +1 iff x @ weight >= theta."""

    def __init__(self, weight, theta):
        self.weight, self.theta = weight, theta


class FakeVote:
    """Vote readout: n_per columns per class, popcount of +1 per class, argmax (lowest index wins ties)."""
    kind = "vote"

    def __init__(self, n_classes, n_per):
        self.n_classes, self.n_per = n_classes, n_per

    def predict(self, a):
        return (a > 0).reshape(a.shape[0], self.n_classes, self.n_per).sum(-1).argmax(-1)


class FakeFolded:
    """A FoldedBNN-like network of FakeLayers and a readout."""

    def __init__(self, layers, readout, meta):
        self.layers, self.readout, self.meta = layers, readout, meta

    def hidden(self, codes):
        a, outs = codes.to(torch.int64), []
        for L in self.layers:
            a = torch.where(a @ L.weight.to(torch.int64) >= L.theta, 1, -1).to(torch.int8)
            outs.append(a)
            a = a.to(torch.int64)
        return outs

    def predict(self, codes):
        return self.readout.predict(self.hidden(codes)[-1])


def make_folded(sizes=(81, 48, 40), seed=0, theta_scale=1.0, n_classes=10) -> FakeFolded:
    """A random binary network with thresholds around the typical dot product (a vote readout)."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (torch.randint(0, 2, (fi, fo), generator=g) * 2 - 1).to(torch.int8)
        spread = (31 * fi ** 0.5 if i == 0 else fi ** 0.5) * theta_scale   # codes ~ U(0, 31) / +-1 inputs
        layers.append(FakeLayer(w, (torch.randn(fo, generator=g) * spread).round().to(torch.int64)))
    return FakeFolded(layers, FakeVote(n_classes, sizes[-1] // n_classes),
                      {"size": 9, "bits": 5, "readout_kind": "vote", "n_classes": n_classes})


class IntegerChip:
    """sign(codes @ W - theta), exactly: the ideal-chip contract of ibnn.circuit.Chip (128 x 128)."""

    cols = 128

    def __init__(self, n_chips=1):
        self.n_chips = n_chips
        self.device = torch.device("cpu")
        self.W = None
        self.volts_per_lsb = 1e-3

    def program(self, weights):
        self.W = weights.to(torch.int64)

    def signal(self, codes, noise_seed):
        """The comparator input in LSB, (n_chips, B, cols)."""
        dot = codes.to(torch.float64) @ self.W.to(torch.float64)  # exact: |dot| << 2**53
        return dot.expand(self.n_chips, *dot.shape) if dot.dim() == 2 else dot

    def evaluate(self, codes, theta=None, noise_seed=None, *, dv=False, drops=False, cols=None):
        v = self.signal(codes, noise_seed)
        th = torch.zeros(self.cols, dtype=torch.float64) if theta is None else theta
        th = th[:, None, :] if th.dim() == 2 else th
        dec = torch.where(v >= th, 1, -1).to(torch.int8)
        if cols is not None:                           # the real chip's contract: the same decisions as a slice
            dec, v = dec[..., cols], v[..., cols]
        return ChipOutput(dec, v * self.volts_per_lsb if dv else None)


class OffsetChip(IntegerChip):
    """Integer chip whose comparators have a static per-chip, per-column offset (LSB) and Gaussian noise."""

    def __init__(self, n_chips=2, sigma=20.0, noise=0.0, seed=0):
        super().__init__(n_chips)
        g = torch.Generator().manual_seed(seed)
        self.offset = torch.randn(n_chips, self.cols, generator=g, dtype=torch.float64) * sigma
        self.noise = noise

    def signal(self, codes, noise_seed):
        v = super().signal(codes, noise_seed) + self.offset[:, None, :]
        if self.noise:
            g = torch.Generator().manual_seed(0 if noise_seed is None else noise_seed)
            v = v + torch.randn(v.shape, generator=g, dtype=torch.float64) * self.noise
        return v


def random_codes(n, seed=1, nf=81):
    """Sparse-ish codes like MNIST's: 60 % zeros, the rest uniform in 1..31, uint8 (n, nf)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 32, (n, nf), generator=g)
    return torch.where(torch.rand(n, nf, generator=g) < 0.6, 0, c).to(torch.uint8)


@pytest.fixture(scope="session")
def P():
    """The default parameter set."""
    return params.load()
