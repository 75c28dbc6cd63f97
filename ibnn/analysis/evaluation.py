"""Notebook 05's experiments as functions: one test bed (images, labels, the software network's correctness on
them), each method's correctness matrix on the held-out chips, its drop with a two-level bootstrap interval and
its paired difference to other methods on the same chips and images, and the design (how many chips) chosen from
the variance components of a tuning run.

Every drop reported here carries "ci95" and "ci_method" (`ibnn.analysis.bootstrap.CI_METHOD`): chips, test images
and the temporal noise of every decision are all sampled. Paired comparisons use the same bootstrap resamples for
both methods (same seed, same chips x images), so their interval is that of the difference itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..repro.device import as_tensor
from ..validate import check_int, check_real
from . import bootstrap as B
from .calibration import ChipCorrection, run_corrected


@dataclass
class TestBed:
    """Images a method is scored on: codes (N, n_features), labels (N,), and the software network's correctness
    soft (N,) bool on the same images (the reference of every drop)."""
    codes: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor

    @classmethod
    def of(cls, network, codes, labels) -> "TestBed":
        """The test bed of `network` (anything with predict(codes) -> labels) on these images."""
        codes, labels = as_tensor(codes), as_tensor(labels).long()
        if labels.shape != (codes.shape[0],):
            raise ValueError(f"labels shape={tuple(labels.shape)} must be ({codes.shape[0]},) like the codes")
        return cls(codes, labels, as_tensor(network.predict(codes)).long() == labels)

    @property
    def software_accuracy(self) -> float:
        """The software network's accuracy on these images."""
        return float(self.soft.double().mean())

    def head(self, n: int) -> "TestBed":
        """The first n images (a smaller experiment on the same images, so it stays paired)."""
        n = check_int("n", n, 1, int(self.labels.numel()))
        return TestBed(self.codes[:n], self.labels[:n], self.soft[:n])


@dataclass
class Outcome:
    """What one method did on the held-out chips: correct (n_chips, N) bool, and the last layer's outputs of its
    array configuration (n_chips, N, n) int8 when kept (a readout retrained afterwards is scored on them)."""
    correct: torch.Tensor
    last_layer: torch.Tensor | None = None


def run_method(mapping, chip, bed: TestBed, correction: ChipCorrection | None = None, noise_seed: int = 1,
               keep_last_layer: bool = False) -> Outcome:
    """Run the mapped network with a correction (None: naive) on every chip for the test bed's images."""
    out = run_corrected(mapping, chip, bed.codes, correction, noise_seed, layers=keep_last_layer)
    last = out.activations[-1] if keep_last_layer else None
    return Outcome(out.labels == bed.labels[None], last)


def relabel(outcome: Outcome, readout, bed: TestBed) -> Outcome:
    """The same array run with another (per-chip) readout: exactly what running again with it gives (the array's
    outputs, noise included, are the same; only the digital logic after the comparators differs)."""
    if outcome.last_layer is None:
        raise ValueError("outcome.last_layer is None: run the array configuration with keep_last_layer=True")
    return Outcome(readout.predict(outcome.last_layer) == bed.labels[None], outcome.last_layer)


def software_reference(bed: TestBed, network: str, why: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """The one software reference of every drop: the network's accuracy on the test bed, with a bootstrap
    interval over images (the test set is a sample of the digit distribution)."""
    a = B.accuracy_ci(bed.soft[None], n_boot=n_boot, seed=seed)
    return {"network": network, "software_accuracy": a.accuracy, "ci95": a.ci95, "n_images": a.n_images,
            "ci_method": B.METHODS["images"], "why": why}


def chip_spread(correct, soft) -> dict:
    """How single chips differ: percentiles of the per-chip drop over the chips drawn (images fixed), and the
    typical 95% half-width of ONE chip's drop from its images alone (normal approximation, s_j - C_ij over j).
    A description of chip-to-chip spread, not an interval of the mean drop."""
    C, s = as_tensor(correct).double(), as_tensor(soft).double()
    x = s[None] - C                                                        # (n_chips, N) per-cell drop
    d = x.mean(1).numpy()
    hw = (B.Z95 * x.std(1) / x.shape[1] ** 0.5).numpy()
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"per_chip": d.tolist(), "p2_5": float(lo), "p97_5": float(hi), "max": float(d.max()),
            "one_chip_halfwidth_median": float(np.median(hw)),
            "note": "spread of single chips' drops over the chips drawn (images fixed); not an interval of the mean"}


class Resamples:
    """Bootstrap replicates of each method's drop, drawn once per (method, chips, images) and reused: every drop
    and every paired difference on the same chips x images then comes from the same resamples (replicates depend
    only on the seed and the shape), and each is computed once."""

    def __init__(self, n_boot: int = 2000, seed: int = 0):
        self.n_boot, self.seed = check_int("n_boot", n_boot, 10), check_int("seed", seed, 0)
        self._cache: dict = {}

    def _rep(self, C, s, k: int, n: int) -> torch.Tensor:
        key = (id(C), id(s), k, n)
        if key not in self._cache:    # the tensors are kept with their replicates, so an id is never reused
            self._cache[key] = (C, s, B.replicates([as_tensor(C)[:k, :n]], [as_tensor(s)[:n]], self.n_boot,
                                                   self.seed)[0])
        return self._cache[key][2]

    def drop(self, C, s) -> B.DropCI:
        """The drop of (C, s) with its two-level interval."""
        C, s = as_tensor(C), as_tensor(s)
        return B.drop_from_replicates(self._rep(C, s, C.shape[0], C.shape[1]), C, s)

    def difference(self, ca, sa, cb, sb) -> B.DiffCI:
        """drop_a - drop_b on the common chips and images (`aligned`), paired."""
        a, a_s, b, b_s = aligned(ca, sa, cb, sb)
        k, n = a.shape
        point = (float(a_s.double().mean()) - float(a.double().mean())) - (
            float(b_s.double().mean()) - float(b.double().mean()))
        return B.difference_from_replicates(self._rep(ca, sa, k, n), self._rep(cb, sb, k, n), point, k, n)


def summarise(correct, soft, n_boot: int = 2000, seed: int = 0, naive=None, naive_soft=None,
              correction: ChipCorrection | None = None, resamples: Resamples | None = None) -> dict:
    """A method's drop with its two-level bootstrap interval, its resolution, the spread over chips and (with
    `naive`, the naive run's correctness on the same chips and images) the paired difference to the naive mapping.

    Keys: mean_drop, ci95, ci_method, se, software_accuracy, chip_accuracy, n_chips, n_images, n_boot, level,
    resolution {halfwidth, se, mdd80, text}, spread, vs_naive (DiffCI dict: difference, ci95, ci_method, resolved),
    correction (what it changed and cost)."""
    rs = Resamples(n_boot, seed) if resamples is None else resamples
    d = rs.drop(correct, soft)
    out = {**d.as_dict(), "resolution": B.resolution(d).as_dict(), "spread": chip_spread(correct, soft)}
    if naive is not None:
        ns = soft if naive_soft is None else naive_soft
        diff = rs.difference(correct, soft, naive, ns)
        c, s, nv, ns = aligned(correct, soft, naive, ns)
        out["vs_naive"] = {**diff.as_dict(), "resolution": B.resolution(diff).as_dict()}
        if not torch.equal(as_tensor(s), as_tensor(ns)):       # another network: compare what the chips score, too
            acc = B.paired_difference(c, s, nv, ns, of="accuracy", n_boot=rs.n_boot, seed=rs.seed)
            out["accuracy_vs_naive"] = {**acc.as_dict(), "resolution": B.resolution(acc).as_dict()}
    if correction is not None:
        out["correction"] = correction.summary()
    return out


def aligned(ca, sa, cb, sb):
    """Two methods' (correct, soft) cut to their common chips and images, for a paired comparison: chips that are
    the first rows of one batch (a batch of k chips of a seed is the first k chips of any larger batch of that
    seed) and images that are the first of one test bed (`TestBed.head`)."""
    ca, cb, sa, sb = as_tensor(ca), as_tensor(cb), as_tensor(sa), as_tensor(sb)
    if sa.shape[0] != ca.shape[1] or sb.shape[0] != cb.shape[1]:
        raise ValueError("each soft must have one entry per image (column) of its correctness matrix")
    k, n = min(ca.shape[0], cb.shape[0]), min(ca.shape[1], cb.shape[1])
    return ca[:k, :n], sa[:n], cb[:k, :n], sb[:n]


def compare(results: Mapping[str, tuple], pairs: Sequence[tuple[str, str]], n_boot: int = 2000,
            seed: int = 0, resamples: Resamples | None = None) -> dict:
    """Paired differences drop_a - drop_b for each (a, b) in pairs; results[name] = (correct, soft) on the same
    images and chips (the common first chips where one ran on fewer, `aligned`). Returns {"a - b": DiffCI dict
    with its resolution}."""
    rs = Resamples(n_boot, seed) if resamples is None else resamples
    out = {}
    for a, b in pairs:
        diff = rs.difference(*results[a], *results[b])
        out[f"{a} - {b}"] = {**diff.as_dict(), "resolution": B.resolution(diff).as_dict()}
    return out


@dataclass
class Design:
    """The number of held-out chips, chosen from variance components measured on a tuning run."""
    n_chips: int
    n_images: int
    rule: str
    predicted: list            # per candidate: n_chips, halfwidth (per method), relative to the image floor
    floor: dict                # per method: the 95% half-width with infinitely many chips (images only)
    components: dict           # per method: VarianceComponents dict

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return dict(self.__dict__)


def choose_design(components: Mapping[str, B.VarianceComponents], n_images: int, candidates: Sequence[int],
                  tolerance: float = 0.05) -> Design:
    """The smallest candidate chip count whose predicted 95% half-width is, for every method given, within
    `tolerance` (relative) of that method's image floor (the half-width with infinitely many chips and
    `n_images` images); the largest candidate if none is. Chips cost time, images are the fixed test set."""
    n_images = check_int("n_images", n_images, 1)
    tolerance = check_real("tolerance", tolerance, 0.0)
    cands = sorted(check_int("candidates[]", c, 1) for c in candidates)
    if not cands or not components:
        raise ValueError("candidates and components must be non-empty")
    floor = {k: B.Z95 * (vc.image / n_images) ** 0.5 for k, vc in components.items()}
    pred, chosen = [], None
    for nc in cands:
        hw = {k: vc.halfwidth(nc, n_images) for k, vc in components.items()}
        rel = {k: hw[k] / floor[k] - 1 if floor[k] > 0 else float("inf") for k in hw}
        pred.append({"n_chips": nc, "halfwidth": hw, "above_floor": rel})
        if chosen is None and all(r <= tolerance for r in rel.values()):
            chosen = nc
    rule = (f"smallest chip count whose predicted 95% half-width is within {100 * tolerance:g}% of the image "
            f"floor for every method ({', '.join(components)}), else the largest candidate")
    return Design(chosen if chosen is not None else cands[-1], n_images, rule, pred, floor,
                  {k: vc.as_dict() for k, vc in components.items()})
