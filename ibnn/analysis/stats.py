"""Simulated chips for the analysis, the mapped network's accuracy on each, and where its errors come from (per-layer
flip rates). The statistics of drops (two-level bootstrap over chips x images): `ibnn.analysis.bootstrap`."""
from __future__ import annotations

from typing import Sequence

import torch

from ..circuit.chip import Chip
from ..repro.device import as_tensor
from ..validate import check_int


def make_chips(P, n_chips: int, seed: int = 0, nonideal=None, device=None) -> Chip:
    """`n_chips` simulated chips of parameter set P (`ibnn.circuit.Chip`); n_chips <= 0 is a ValueError before
    any work."""
    n_chips = check_int("n_chips", n_chips, 1)
    seed = check_int("seed", seed, 0)
    return Chip(P, n_chips=n_chips, seed=seed, nonideal=nonideal, device=device)


def chip_accuracies(mapping, chip, codes, labels, theta=None, noise_seed: int | None = 0,
                    batch: int | None = None) -> torch.Tensor:
    """Accuracy of the mapped network on every chip: float64 (n_chips,). (Activations: `mapping.run`.)"""
    labels, codes = as_tensor(labels).to(torch.int64), as_tensor(codes)
    if labels.shape != (codes.shape[-2],):
        raise ValueError(f"labels shape={tuple(labels.shape)} must be ({codes.shape[-2]},) like the codes")
    pred = mapping.run(chip, codes, theta=theta, noise_seed=noise_seed, batch=batch).labels
    return (pred == labels[None]).double().mean(1)


def layer_flip_rates(acts_chip: Sequence[torch.Tensor], acts_ref: Sequence[torch.Tensor]) -> list[dict]:
    """Per layer: the fraction of neuron outputs that differ from the ideal chip's, mean and per chip.

    acts_chip[l]: (n_chips, B, n_l); acts_ref[l]: (B, n_l) or (n_chips, B, n_l). Later layers see the flips of
    earlier ones (end-to-end, as on the chip)."""
    out = []
    for l, (a, r) in enumerate(zip(acts_chip, acts_ref)):
        if r.dim() == 2:
            r = r[None]
        flips = (a != r).double()
        out.append({"layer": l, "flip_rate": float(flips.mean()),
                    "flip_rate_per_chip": flips.mean((1, 2)).tolist(),
                    "flip_rate_per_column": flips.mean((0, 1)).tolist()})
    return out
