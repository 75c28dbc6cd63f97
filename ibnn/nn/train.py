"""Training the BNN: straight-through estimator, Adam with a cosine learning-rate decay, batch-norm
recalibration; deterministic for a seed."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..repro.progress import progress as _progress
from ..validate import check_int, check_real
from .binary import BNN


#: Validation split used for model selection (5000 of the 60000 training images).
VAL_FRACTION = 1 / 12


#: The training recipe notebook 03 uses by default.
DEFAULT_RECIPE = {"hidden": [128], "readout": "digital", "epochs": 60, "lr": 1e-2, "batch_size": 512}


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
