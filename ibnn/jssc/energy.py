"""Energy per ten-way decision of the boosted classifier on the array, and of digital systems that compute the same
(or a standard-trained) classifier. Thin by design: the array's physics is the cost room's
(`ibnn.cost.energy.imc_inference_energy` on one `ibnn.cost.activity.CycleActivity`, so a change of the energy
model there is picked up here), the digital datapath is `ibnn.cost.digital.digital_layer_energy`.

In-memory decision (`imc_decision_energy`): one classify cycle in which every row is driven (the pixel rows at
their codes, the bias rows at theirs) and every column is read (the chip as built; the boosted classifier uses
n_columns of them), plus the digital weighted vote beside the array (`vote_energy`). The bit-line drops are the
chip model's own (`Chip.evaluate(drops=True)`), on every chip of the batch and every image given.

Digital systems (`digital_boosted_energy`, `digital_linear_energy`): a discrete SRAM + digital-MAC datapath on the
same parameter set: every weight bit read from SRAM, the products and adder trees, one threshold comparison per
weak classifier, registers, control overhead, then the same vote (boosted) or an argmax over ten scores (linear).
Multi-bit weights (`multibit_layer_energy`) extend `digital_layer_energy`'s accounting: an input_bits x
weight_bits array multiplier (one AND-like gate and one full-adder bit per partial-product bit) and an
accumulator of input_bits + weight_bits + 1 bits per MAC.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .. import params as _params
from ..cost import digital as _digital
from ..cost import energy as _energy
from ..cost.activity import CycleActivity
from ..validate import check_int
from .boost import Boosted
from .columns import Layout


def vote_energy(P, n_columns: int, n_classes: int = 10, alpha_bits: int = 8) -> float:
    """Energy (J) of the weighted vote: each of the n_columns comparator bits gates the add of its alpha_bits vote
    weight into its class accumulator (accumulator width alpha_bits + log2(columns per class)), then an argmax over
    n_classes accumulators; vote weights are read from latches (registers), and the control overhead is added."""
    P = _params.require(P)
    n = check_int("n_columns", n_columns, 1)
    K = check_int("n_classes", n_classes, 2)
    b = check_int("alpha_bits", alpha_bits, 1, 32)
    acc = b + max(1, math.ceil(math.log2(max(n // K, 1) + 1)))
    e = (n * acc * P.e_fa_bit                       # gated adds
         + (K - 1) * acc * P.e_fa_bit               # argmax comparisons
         + (n + K * acc) * P.e_reg_bit)             # comparator bits latched, accumulators
    return float(e * (1 + P.digital_control_overhead))


def multibit_layer_energy(P, fan_in: int, fan_out: int, input_bits: int, weight_bits: int) -> dict:
    """Energy (J) of one fully connected layer with weight_bits-bit weights on the digital datapath, by component
    (the components of `ibnn.cost.digital.digital_layer_energy`; weight_bits = 1 is that function)."""
    P = _params.require(P)
    wb = check_int("weight_bits", weight_bits, 1, 32)
    if wb == 1:
        return _digital.digital_layer_energy(P, fan_in, fan_out, input_bits)
    fan_in, fan_out = check_int("fan_in", fan_in, 1), check_int("fan_out", fan_out, 1)
    ib = check_int("input_bits", input_bits, 1, 16)
    macs = fan_in * fan_out
    nb = ib + wb + max(1, math.ceil(math.log2(fan_in)))       # accumulator bits
    out = {
        "weight_read": macs * wb * P.e_sram_read_bit + fan_out * nb * P.e_sram_read_bit,
        "multiply": macs * ib * wb * (P.e_xnor + P.e_fa_bit),
        "accumulate": macs * (ib + wb + 1) * P.e_fa_bit,
        "threshold": fan_out * nb * P.e_fa_bit,
        "register": _digital.register_energy(fan_in * ib + fan_out * nb, P.e_reg_bit),
    }
    out["control"] = P.digital_control_overhead * sum(out.values())
    return out


def digital_boosted_energy(P, n_columns: int, n_features: int = 81, input_bits: int = 5, n_classes: int = 10,
                           alpha_bits: int = 8, weight_bits: int = 1) -> dict:
    """Energy (J) per decision, by component, of a boosted classifier on a discrete SRAM + digital-MAC system:
    one layer of n_columns weak classifiers (weight_bits-bit weights, integer thresholds) and the weighted vote."""
    out = dict(multibit_layer_energy(P, n_features, n_columns, input_bits, weight_bits))
    out["vote"] = vote_energy(P, n_columns, n_classes, alpha_bits)
    return out


def digital_linear_energy(P, weight_bits: int, n_features: int = 81, input_bits: int = 5,
                          n_classes: int = 10) -> dict:
    """Energy (J) per decision, by component, of a ten-class linear classifier with weight_bits-bit weights
    (standard training) on the digital system: one layer of n_classes neurons, then an argmax over their scores."""
    out = dict(multibit_layer_energy(P, n_features, n_classes, input_bits, weight_bits))
    nb = input_bits + weight_bits + max(1, math.ceil(math.log2(n_features)))
    out["argmax"] = float((n_classes - 1) * nb * P.e_fa_bit * (1 + P.digital_control_overhead))
    return out


@dataclass
class DecisionEnergy:
    """Mean energy (J) per decision on the array, by component (the cost room's cycle components, "readout" = 0,
    and "vote"), over n_chips x n_images classify cycles; total_J = the system scope + the vote, macro_J = the
    macro scope (everything before the digital vote)."""

    breakdown: dict
    total_J: float
    macro_J: float
    array_J: float
    n_chips: int
    n_images: int

    def as_dict(self) -> dict:
        return asdict(self)


def imc_decision_energy(P, chip, boosted: Boosted, x, layout: Layout, noise_seed: int = 7) -> DecisionEnergy:
    """Mean energy per decision over every instance of `chip` and images x (B, n_features): the classifier(s)
    (one for all chips or one per chip) programmed, one classify cycle per image with the chip model's bit-line
    drops, through `ibnn.cost.energy.imc_inference_energy`, plus the weighted vote."""
    P = _params.require(P)
    G = boosted.w.shape[0]
    if G not in (1, chip.n_chips):
        raise ValueError(f"boosted has {G} classifiers; the chip batch has {chip.n_chips} chips")
    W = layout.weights(boosted.w, boosted.T)
    chip.program(W[0] if G == 1 else W)
    codes = layout.codes(x)
    drops = chip.evaluate(codes, None, check_int("noise_seed", noise_seed, 0), drops=True).drops
    n, B = drops.shape[:2]
    cfg = boosted.config
    act = CycleActivity(layer=0, codes=codes.repeat(n, 1).numpy(),
                        drops=drops.reshape(n * B, *drops.shape[2:]).to(torch.float64).cpu().numpy(),
                        input_bits=cfg.bits, columns=list(range(cfg.n_columns)),
                        register_bits=cfg.n_features * cfg.bits)
    e = _energy.imc_inference_energy(P, [act], readout={"kind": "none"})
    bd = dict(e["breakdown"])
    bd["vote"] = vote_energy(P, cfg.n_columns, cfg.n_classes, cfg.alpha_bits)
    return DecisionEnergy(bd, float(e["total_J"] + bd["vote"]), float(e["macro_J"]), float(e["array_J"]), n, B)


def quantised_linear(weights: torch.Tensor, bias: torch.Tensor, bits: int):
    """Integer version of a linear classifier (K, D) with `bits` signed weight bits and one scale for all classes
    (so the argmax needs no per-class multiply): W_q = round(W / s), s = max|W| / (2**(bits-1) - 1); for 1 bit
    W_q = sign(W), s = mean|W|. The bias becomes round(b / s). Returns (W_q (K, D) int64, b_q (K,) int64)."""
    bits = check_int("bits", bits, 1, 32)
    w = torch.as_tensor(weights).to(torch.float64)
    b = torch.as_tensor(bias).to(torch.float64)
    if bits == 1:
        s = w.abs().mean().clamp_min(1e-300)
        wq = torch.where(w >= 0, 1, -1).to(torch.int64)
    else:
        s = w.abs().max().clamp_min(1e-300) / (2 ** (bits - 1) - 1)
        wq = torch.round(w / s).to(torch.int64)
    return wq, torch.round(b / s).to(torch.int64)

