"""Accuracy of the mapped network over many simulated chips, and the statistics of its drop."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy import stats

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


@dataclass
class DropStats:
    """The accuracy drop (software - chip, accuracy units: 0.004 = 0.4 points) over simulated chips."""
    software: float
    accuracies: list
    mean_drop: float
    std_drop: float
    median_drop: float
    interval95: tuple          # 2.5 and 97.5 percentiles of the per-chip drop (spread over chips)
    mean_ci95: tuple           # 95% confidence interval of the mean drop (t interval)
    worst_drop: float
    n_chips: int

    def as_dict(self) -> dict:
        """The fields as plain JSON-ready values (keys as in results/05_accuracy_on_chip.json)."""
        return {"software_accuracy": self.software, "chip_accuracies": list(self.accuracies),
                "mean_drop": self.mean_drop, "std_drop": self.std_drop, "median_drop": self.median_drop,
                "drop_interval95": list(self.interval95), "mean_drop_ci95": list(self.mean_ci95),
                "worst_drop": self.worst_drop, "n_chips": self.n_chips}


def drop_stats(accuracies, software: float) -> DropStats:
    """Accuracy drop (software - chip, in accuracy units, 0.004 = 0.4 points) over chips."""
    acc = np.asarray(torch.as_tensor(accuracies).double().cpu(), dtype=np.float64)
    if acc.ndim != 1 or acc.size == 0:
        raise ValueError(f"accuracies shape={acc.shape} must be a non-empty 1-D array (one per chip)")
    d = software - acc
    n = d.size
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if n > 1:
        h = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    else:
        h = float("inf")
    lo, hi = np.percentile(d, [2.5, 97.5])
    m = float(d.mean())
    ci = (m - h, m + h) if math.isfinite(h) else (m, m)
    return DropStats(float(software), acc.tolist(), m, sd, float(np.median(d)), (float(lo), float(hi)),
                     (float(ci[0]), float(ci[1])), float(d.max()), n)


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
