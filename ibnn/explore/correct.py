"""The accuracy drop of one configuration on simulated chips, naive and after the per-chip correction, and the
images it is measured on (`EvalData`).

Correction: the per-chip bias-row rewrite of `ibnn.analysis.corrections` (`CORRECTION`; notebook 05's realistic
correction: the chip's own SRAM bias cells rewritten per chip), chip in the loop, on training images only (never
the test images the drop is measured on; `check_calibration_set` refuses them).
Both drops are paired per image with the software network on the same images and carry the two-level bootstrap
interval over chips x images (`ibnn.analysis.bootstrap.drop_ci`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis import calibration, corrections
from ..analysis.bootstrap import drop_ci

CORRECTION = "per-chip bias-row rewrite (ibnn.analysis.corrections.calibrate_bias_rows)"


@dataclass
class EvalData:
    """The images a point is measured on: test codes (B, n_features) int64 and labels (B,), the software
    network's correctness on them (B,) bool, and calibration codes from the training split (N, n_features)."""

    codes: torch.Tensor
    labels: torch.Tensor
    soft_correct: torch.Tensor
    cal_codes: torch.Tensor

    def digest(self) -> str:
        """sha256 of every tensor (what a cached point depends on)."""
        h = hashlib.sha256()
        for t in (self.codes, self.labels, self.soft_correct, self.cal_codes):
            h.update(np.ascontiguousarray(t.cpu().numpy()).tobytes() + b"|")
        return h.hexdigest()[:16]


def eval_data(folded, test_codes, test_labels, cal_codes) -> EvalData:
    """EvalData with the software network's correctness computed here; cal_codes must come from the training
    split (the caller draws them there; they are checked against the test codes)."""
    codes = torch.as_tensor(test_codes).to(torch.int64)
    labels = torch.as_tensor(test_labels).to(torch.int64)
    cal = torch.as_tensor(cal_codes).to(torch.int64)
    calibration.check_calibration_set("train", cal, codes)
    soft = torch.as_tensor(folded.predict(codes)).to(torch.int64) == labels
    return EvalData(codes, labels, soft, cal)


def noise_seeds(seed: int) -> dict:
    """The seeds of one point's temporal noise (test run, calibration) and bootstrap, from the engine's seed."""
    s = int(seed) % (2 ** 31)
    return {"run": s + 1, "cal": s + 101, "boot": s % 100_003}


def drops(mapping, chips, data: EvalData, res, noise: dict):
    """(naive DropCI dict, corrected DropCI dict or None, correction name or None) on res.n_chips x
    res.n_images; the correction is calibrated on res.n_cal training images (0: none)."""
    n = res.n_images
    codes, labels, soft = data.codes[:n], data.labels[:n], data.soft_correct[:n]
    naive_pred = mapping.run(chips, codes, noise_seed=noise["run"]).labels
    naive = drop_ci(naive_pred == labels[None], soft, n_boot=res.n_boot, seed=noise["boot"]).as_dict()
    if res.n_cal == 0:
        return naive, None, None
    cal = corrections.calibrate_bias_rows(mapping, chips, data.cal_codes[:res.n_cal], split="train",
                                          noise_seed=noise["cal"])
    pred = calibration.run_corrected(mapping, chips, codes, cal, noise_seed=noise["run"]).labels
    mapping.program(chips)                       # leave the chips as the mapping programs them
    corrected = drop_ci(pred == labels[None], soft, n_boot=res.n_boot, seed=noise["boot"]).as_dict()
    return naive, corrected, CORRECTION
