"""Per-chip digital readout retraining, chip in the loop: the correction closest to the prototype's own method.

The JSSC 2017 prototype corrected its circuit errors by training the digital logic after the comparators with the
chip in the loop (J. Zhang, Z. Wang, N. Verma, IEEE JSSC 52(4):915-924, 2017: error-adaptive boosting of its
column outputs). Here the digital 128 -> 10 readout (+-1 weights, integer biases: exactly the
`ibnn.nn.DigitalReadout` form, so the logic is unchanged) is trained again per chip on that chip's own last-layer
outputs for training images (`chip_hidden`), batched over chips: straight-through estimator as `ibnn.nn.train_bnn`
(sign with clipped-identity gradient, rounded biases, latent weights clipped to [-1, 1]), Adam with a cosine
learning rate, written out (each chip's parameters are independent and Adam is elementwise, so the batch equals
training each chip alone), starting from the software readout. With held-back outputs (training-split images not
used for the retraining) a chip keeps the retrained readout only if it scores at least as well there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..nn.binary import RoundSTE, binarize, sign_ste
from ..nn.folded import DigitalReadout
from ..repro.device import as_tensor, torch_threads
from ..validate import check_int, check_real
from .calibration import ChipCorrection, check_calibration_set, run_corrected


@dataclass
class PerChipReadout:
    """One `DigitalReadout` per chip: label = argmax(a @ weight[k] + bias[k]) (first index on ties)."""
    weight: torch.Tensor          # (n_chips, n, classes) int8 +-1
    bias: torch.Tensor            # (n_chips, classes) int64
    kind: str = "digital"

    def scores(self, a) -> torch.Tensor:
        """a: (n_chips, B, n) +-1 -> int64 (n_chips, B, classes)."""
        s = torch.bmm(as_tensor(a).to(torch.float32), self.weight.to(torch.float32))   # exact: |s| <= n << 2**24
        return s.round().to(torch.int64) + self.bias[:, None, :]

    def predict(self, a, chunk: int = 4096) -> torch.Tensor:
        """Labels int64 (n_chips, B), in chunks of images (bounded memory)."""
        a = as_tensor(a)
        return torch.cat([torch.argmax(self.scores(a[:, s:s + chunk]), dim=-1) for s in range(0, a.shape[1], chunk)],
                         1)

    def for_chip(self, k: int) -> DigitalReadout:
        """Chip k's readout as an `ibnn.nn.DigitalReadout`."""
        return DigitalReadout(self.weight[k].clone(), self.bias[k].clone())


def chip_hidden(mapping, chip, codes, split: str, correction: ChipCorrection | None = None,
                noise_seed: int = 4242, test_codes=None) -> torch.Tensor:
    """The last on-array layer's +-1 outputs (n_chips, N, n) of every chip for calibration (training) images,
    with a correction applied (the chip in the loop: what the digital logic sees)."""
    check_calibration_set(split, codes, test_codes)
    return run_corrected(mapping, chip, codes, correction, noise_seed, layers=True).activations[-1]


def _ce(aT, y, W, b, log_scale, train_w: bool = True):
    """Per-chip mean cross-entropy (n_chips,) of the readout's logits for labels y (B,); aT: the +-1 outputs
    transposed, float32 (n_chips, n, B) (class scores as W^T a: the faster product for 10 classes)."""
    Wb = sign_ste(W) if train_w else sign_ste(W).detach()
    s = torch.bmm(Wb.transpose(1, 2), aT) + RoundSTE.apply(b)[:, :, None]              # (n_chips, classes, B)
    logp = torch.log_softmax(s * log_scale.exp()[:, None, None], 1)
    return -logp.gather(1, y[None, None, :].expand(aT.shape[0], 1, -1)).squeeze(1).mean(1)


def _adam_fit(a, y, params, lrs, epochs: int, batch_size: int, seed: int, train_w: bool = True) -> None:
    """Minimise the summed per-chip cross-entropy over params [W, b, log_scale] with learning rates `lrs` (Adam,
    cosine schedule, W clipped to [-1, 1] after each step). In place."""
    N = a.shape[1]
    steps = max(1, epochs * math.ceil(N / batch_size))
    mom, var = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    gen, k = torch.Generator().manual_seed(seed), 0
    a = a.contiguous()                                        # int8 (n_chips, N, n)
    for _ in range(epochs):
        perm = torch.randperm(N, generator=gen)
        # one gather of whole rows per epoch (a gather along the last axis of int8 is ~20x slower), transposed once
        ap, yp = a.index_select(1, perm).transpose(1, 2).contiguous(), y[perm]               # (n_chips, n, N)
        for s0 in range(0, N, batch_size):
            loss = _ce(ap[:, :, s0:s0 + batch_size].to(torch.float32), yp[s0:s0 + batch_size], *params,
                       train_w=train_w).sum()
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            k += 1
            cos = 0.5 * (1 + math.cos(math.pi * min(k - 1, steps) / steps))
            with torch.no_grad():
                for p, g, m, v, r in zip(params, grads, mom, var, lrs):
                    if g is None:
                        continue
                    m.mul_(0.9).add_(g, alpha=0.1)
                    v.mul_(0.999).addcmul_(g, g, value=0.001)
                    p.sub_(cos * r * (m / (1 - 0.9 ** k)) / ((v / (1 - 0.999 ** k)).sqrt() + 1e-8))
                params[0].clamp_(-1, 1)


def _init_scale(a, y, W, b) -> torch.Tensor:
    """Per-chip logit scale at the start: the best of a grid (log scale -4..0) on up to 2000 images."""
    grid = torch.linspace(-4.0, 0.0, 17)
    sub = a[:, :min(a.shape[1], 2000)].transpose(1, 2).to(torch.float32)
    with torch.no_grad():
        ce = torch.stack([_ce(sub, y[:sub.shape[2]], W, b, torch.full((a.shape[0],), float(g))) for g in grid])
    return grid[ce.argmin(0)].clone()


def _accuracy(ro: PerChipReadout, a, y) -> torch.Tensor:
    return (ro.predict(a) == y[None]).double().mean(1)


def _keep_better(new: PerChipReadout, old: PerChipReadout, val_hidden, val_labels, info: dict) -> PerChipReadout:
    """Each chip keeps the retrained readout only if it scores at least as well on the held-back outputs."""
    va, vy = as_tensor(val_hidden).to(torch.int8), as_tensor(val_labels).long()
    keep = _accuracy(new, va, vy) >= _accuracy(old, va, vy)
    info.update({"n_val_images": int(va.shape[1]), "kept_retrained": int(keep.sum())})
    return PerChipReadout(torch.where(keep[:, None, None], new.weight, old.weight),
                          torch.where(keep[:, None], new.bias, old.bias))


def retrain_readout(hidden, labels, init, epochs: int = 20, lr: float = 1e-2, batch_size: int = 500,
                    latent: float = 0.5, bias_lr: float = 0.1, seed: int = 0, weights: bool = True,
                    val_hidden=None, val_labels=None) -> tuple[PerChipReadout, dict]:
    """Retrain the digital readout per chip on that chip's hidden outputs (module docstring).

    hidden: (n_chips, N, n) +-1 outputs for training images (`chip_hidden`); labels: (N,); init: the software
    `DigitalReadout` (latent weights start at latent x its +-1 weights, so `latent` sets how readily a weight
    flips; biases at its integers, learning rate `bias_lr` in score units). weights=False retrains the biases only.
    val_hidden / val_labels: each chip's outputs for other training-split images (keep-if-better).
    Returns (PerChipReadout, info)."""
    epochs, batch_size = check_int("epochs", epochs, 0), check_int("batch_size", batch_size, 1)
    lr, latent = check_real("lr", lr, 0.0, lo_open=True), check_real("latent", latent, 0.0, 1.0, lo_open=True)
    bias_lr = check_real("bias_lr", bias_lr, 0.0)
    a = as_tensor(hidden).to(torch.int8)                      # kept compact; float per batch
    if a.dim() != 3:
        raise ValueError(f"hidden shape={tuple(a.shape)} must be (n_chips, N, n)")
    nc, N, _ = a.shape
    y = as_tensor(labels).long()
    if y.shape != (N,):
        raise ValueError(f"labels shape={tuple(y.shape)} must be ({N},): one label per image of hidden")
    W0, b0 = as_tensor(init.weight).to(torch.float32), as_tensor(init.bias).to(torch.float32)
    W = (latent * W0)[None].repeat(nc, 1, 1).requires_grad_(True)
    b = b0[None].repeat(nc, 1).requires_grad_(True)
    with torch_threads(1):       # small elementwise work: one thread (OpenMP barriers cost more on 2 cores)
        ls = _init_scale(a, y, W, b).requires_grad_(True)
        _adam_fit(a, y, [W, b, ls], (lr, bias_lr, lr), epochs, batch_size, check_int("seed", seed, 0), bool(weights))
    new = PerChipReadout(binarize(W.detach()).to(torch.int8), torch.round(b.detach()).to(torch.int64))
    old = PerChipReadout(W0.to(torch.int8)[None].repeat(nc, 1, 1), b0.round().to(torch.int64)[None].repeat(nc, 1))
    info = {"n_images": int(N), "epochs": epochs, "weights_trained": bool(weights),
            "train_acc_before": _accuracy(old, a, y).mean().item(),
            "train_acc_after": _accuracy(new, a, y).mean().item()}
    if val_hidden is not None:
        new = _keep_better(new, old, val_hidden, val_labels, info)
    info["weights_changed_mean"] = float((new.weight != old.weight).double().sum((1, 2)).mean())
    info["bias_change_rms"] = float((new.bias - old.bias).double().pow(2).mean().sqrt())
    return new, info


def readout_retraining(mapping, chip, codes, labels, split: str, base: ChipCorrection | None = None,
                       val_codes=None, val_labels=None, test_codes=None, noise_seed: int = 4242,
                       **train) -> ChipCorrection:
    """Every chip's outputs for `codes` (training split, with `base` applied, e.g. a bias-row rewrite), then
    `retrain_readout` (keyword arguments `train`). Returns `base` with the per-chip readout added (its cycles
    include both)."""
    if getattr(mapping.readout, "weight", None) is None:
        raise ValueError("readout retraining needs a digital readout (weights and biases); the mapping's is "
                         f"{type(mapping.readout).__name__}")
    h = chip_hidden(mapping, chip, codes, split, base, noise_seed, test_codes)
    vh = None if val_codes is None else chip_hidden(mapping, chip, val_codes, split, base, noise_seed + 1, test_codes)
    ro, info = retrain_readout(h, labels, mapping.readout, val_hidden=vh, val_labels=val_labels, **train)
    cycles = len(mapping.layers) * (int(codes.shape[0]) + (0 if val_codes is None else int(val_codes.shape[0])))
    if base is None:
        return ChipCorrection("readout_retraining", mapping.theta.to(torch.float64)[None].repeat(chip.n_chips, 1),
                              None, ro, cycles, {"readout": info})
    return ChipCorrection(base.name + "+readout_retraining", base.theta, base.weights, ro, base.cycles + cycles,
                          {**base.info, "readout": info})
