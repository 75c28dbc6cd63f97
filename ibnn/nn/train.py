"""Training the BNN: straight-through estimator, Adam with a cosine learning-rate decay, batch-norm
recalibration; deterministic for a seed."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..repro.device import as_tensor
from ..repro.progress import progress as _progress
from ..validate import check_choice, check_int, check_real
from .binary import BNN, N_CLASSES, READOUTS


@dataclass(frozen=True)
class Recipe:
    """The training recipe: the one place its defaults live (notebook 03, noise-aware retraining, benchmarks).

    hidden: on-array layer widths, in order; readout: "digital" (a small digital binary last layer) or "vote";
    bits: input code width; epochs, batch_size, lr: Adam with a cosine decay from lr to 0 over every step;
    val_fraction: the part of the 60k training images held back for model selection (5000 of 60000).
    """
    hidden: tuple = (128,)
    readout: str = "digital"
    bits: int = 5
    epochs: int = 60
    batch_size: int = 512
    lr: float = 1e-2
    val_fraction: float = 1 / 12

    def __post_init__(self):
        hidden = tuple(self.hidden)
        if not hidden:
            raise ValueError("Recipe.hidden=() must list at least one on-array layer width")
        object.__setattr__(self, "hidden", tuple(check_int(f"Recipe.hidden[{i}]", h, 1) for i, h in enumerate(hidden)))
        check_choice("Recipe.readout", self.readout, READOUTS)
        if self.readout == "vote" and self.hidden[-1] % N_CLASSES:
            raise ValueError(f"Recipe.hidden[-1]={self.hidden[-1]} is out of range for readout='vote'; accepted: a "
                             f"multiple of n_classes={N_CLASSES}")
        check_int("Recipe.bits", self.bits, 1, 8)
        check_int("Recipe.epochs", self.epochs, 1)
        check_int("Recipe.batch_size", self.batch_size, 1)
        check_real("Recipe.lr", self.lr, 0.0, None, lo_open=True)
        check_real("Recipe.val_fraction", self.val_fraction, 0.0, 0.5, lo_open=True)

    def replace(self, **kw) -> "Recipe":
        """A copy with the given fields changed (each checked)."""
        return Recipe(**{**self.as_dict(), **kw})

    def as_dict(self) -> dict:
        """Plain fields (hidden as a list), as stored in checkpoint metadata."""
        return {"hidden": list(self.hidden), "readout": self.readout, "bits": self.bits, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "val_fraction": self.val_fraction}

    @classmethod
    def from_meta(cls, meta: dict) -> "Recipe":
        """The recipe a checkpoint was trained with (its metadata: on_array, readout, bits, epochs, lr, ...)."""
        base = cls()
        return cls(hidden=tuple(meta.get("on_array") or meta["topology"][1:-1]),
                   readout=meta.get("readout", base.readout), bits=int(meta.get("bits", base.bits)),
                   epochs=int(meta.get("epochs", base.epochs)), batch_size=int(meta.get("batch_size", base.batch_size)),
                   lr=float(meta.get("lr", base.lr)), val_fraction=float(meta.get("val_fraction", base.val_fraction)))


@dataclass
class TrainResult:
    """A trained model, its per-epoch history and the training wall time (printed, never stored in results)."""
    model: BNN
    history: dict
    seconds: float


def _as_float(x) -> torch.Tensor:
    return as_tensor(x).float()


def accuracy(model_or_folded, codes, labels) -> float:
    """Fraction of `labels` a model (trained or folded) predicts from `codes`."""
    pred = model_or_folded.predict(codes)
    labels = as_tensor(labels).long()
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


def train_bnn(codes, labels, val_codes=None, val_labels=None, *, recipe: Recipe = Recipe(), seed: int = 0,
              preact_noise: Callable | None = None, recalibrate: bool = True, progress: bool = False) -> TrainResult:
    """Train a `BNN` with the straight-through estimator and Adam; deterministic for a given seed.

    Args:
        codes: (N, n_in) word-line codes 0..2**bits-1; labels (N,) 0..9, or (N, n_classes) class probabilities
            (soft targets, e.g. for distillation; the cross-entropy then uses them directly).
        val_codes, val_labels: validation data, scored after every epoch (history "val_acc").
        recipe: topology and optimiser settings (`Recipe`). Each epoch visits a seeded random permutation in
            batches of recipe.batch_size; the learning rate follows a cosine from lr to 0 over all steps; latent
            weights are clipped to [-1, 1] after each step.
        preact_noise: `preact_noise(layer_index, z) -> z'` perturbs each on-array layer's integer-scale
            pre-activation z = x @ W_b (B, fan_out) during training only.
        recalibrate: after the last epoch, re-estimate the batch-norm statistics for the final binary weights
            over the training codes (`recalibrate_bn`; latent weights oscillate around zero during training, so
            the running averages lag behind the weights the eval model ends up with).
    Returns:
        TrainResult; history: per epoch "loss" (mean training loss), "train_acc" (on the training batches,
        training mode) and, with validation data, "val_acc" (eval mode, exact) and "val_acc_recalibrated".
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe={recipe!r} must be an ibnn.nn.train.Recipe")
    seed = check_int("seed", seed, 0)
    if preact_noise is not None and not callable(preact_noise):
        raise ValueError(f"preact_noise={preact_noise!r} must be None or a callable (layer_index, preact)")
    x, y = _check_data(codes, labels, recipe.bits)
    t0 = time.perf_counter()
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BNN(recipe.hidden, recipe.readout, n_in=x.shape[1], bits=recipe.bits)
            gen = torch.Generator().manual_seed(seed)
            hist = _fit(model, x, y, recipe, gen, preact_noise, progress,
                        None if val_codes is None else (val_codes, val_labels))
            if recalibrate:
                recalibrate_bn(model, x[torch.randperm(x.shape[0], generator=gen)])
                if val_codes is not None:
                    hist["val_acc_recalibrated"] = accuracy(model, val_codes, val_labels)
            model.eval()
    finally:
        torch.use_deterministic_algorithms(det)
    return TrainResult(model, hist, time.perf_counter() - t0)


def _check_data(codes, labels, bits: int):
    """(codes float32 (N, n_in), labels int64 (N,) or float (N, classes)), or a ValueError."""
    x = as_tensor(codes).float()
    y = as_tensor(labels)
    y = y.float() if y.ndim == 2 else y.long()          # (N, classes) probabilities: soft targets
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"codes {tuple(x.shape)} and labels {tuple(y.shape)} must be (N, n_in) and (N,)")
    if x.numel() and (x.min() < 0 or x.max() > 2 ** bits - 1):
        raise ValueError(f"codes span {x.min():.0f}..{x.max():.0f}; accepted: 0..{2 ** bits - 1} for bits={bits}")
    return x, y


def _fit(model: BNN, x, y, recipe: Recipe, gen, preact_noise, progress: bool, val) -> dict:
    """The epochs of training (Adam, cosine schedule, latent weights clipped); returns the history."""
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    total = recipe.epochs * math.ceil(x.shape[0] / recipe.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    latent = [l.weight for l in model.layers] + ([model.head.weight] if recipe.readout == "digital" else [])
    y_hard = y.argmax(1) if y.ndim == 2 else y
    hist = {"loss": [], "train_acc": []} | ({"val_acc": []} if val is not None else {})
    loss_fn = nn.CrossEntropyLoss()
    for _ in _progress(range(recipe.epochs), desc="epochs", disable=None if progress else True):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        tot, correct = 0.0, 0
        for s in range(0, x.shape[0], recipe.batch_size):
            idx = perm[s:s + recipe.batch_size]
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
        if val is not None:
            hist["val_acc"].append(accuracy(model, *val))
    return hist
