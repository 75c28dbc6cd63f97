"""The digital baseline: the same network on a fixed-function 130-nm datapath, and the digital readout that both
sides share.

One storage assumption for every weight it holds (`weights_in_sram`: 1 = every layer weight, threshold and
readout weight read from SRAM on every inference, a discrete SRAM + digital-MAC system; 0 = all held in latches),
XNOR + adder-tree popcount for binary layers, conditional negation + adder tree for the 5-bit first layer, one
threshold comparison per neuron, input/output registers, a control overhead fraction, and the same readout as the
in-memory chip (its weights under the same assumption). Primitive energies are Horowitz's 45-nm
figures scaled to 130 nm by E * (node/45)^k * (VDD/0.9)^2 (`scale_45_to_130` in energy.toml).
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

from .. import params as _params
from ..validate import check_choice, check_int, check_nonneg, check_positive, check_real
from .ops import READOUT_KINDS, check_shapes

DIGITAL_COMPONENTS = ("weight_read", "multiply", "accumulate", "threshold", "register", "control")



def acc_bits(fan_in: int, input_bits: int) -> int:
    """Bits of a signed accumulator for `fan_in` products of an unsigned `input_bits` input and a +-1 weight."""
    fan_in = check_int("fan_in", fan_in, 1)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    return int(math.ceil(math.log2(fan_in * (2 ** input_bits - 1) + 1))) + 1


def register_energy(n_bits, e_reg_bit: float) -> float:
    """Energy (J) to write `n_bits` flip-flop bits."""
    return float(check_nonneg("n_bits", n_bits) * check_positive("e_reg_bit", e_reg_bit))


def digital_layer_energy(P, fan_in: int, fan_out: int, input_bits: int) -> dict[str, float]:
    """Energy (J) of one fully connected binary-weight layer on the digital baseline, by DIGITAL_COMPONENTS.

    weight_read: fan_in*fan_out weight bits and the thresholds (acc_bits each) read from SRAM, in the fraction
        weights_in_sram (the one storage assumption; 0: held in latches, no read energy).
    multiply: XNOR per MAC for 1-bit inputs; conditional negation (input_bits XNOR/XOR) per MAC otherwise.
    accumulate: ripple-carry adder tree: about (input_bits + 1) full-adder bits per MAC.
    threshold: one acc_bits-wide comparison (subtraction) per neuron.
    register: inputs latched (fan_in*input_bits bits) and outputs (fan_out bits).
    control: digital_control_overhead times the sum of the above.
    """
    P = _params.require(P)
    fan_in = check_int("fan_in", fan_in, 1)
    fan_out = check_int("fan_out", fan_out, 1)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    macs = fan_in * fan_out
    nb = acc_bits(fan_in, input_bits)
    e_rd = P.e_sram_read_bit * check_real("weights_in_sram", P.weights_in_sram, 0, 1)
    e_x, e_fa = P.e_xnor, P.e_fa_bit
    out = {
        "weight_read": macs * e_rd + fan_out * nb * e_rd,
        "multiply": macs * input_bits * e_x,
        "accumulate": macs * (input_bits + 1) * e_fa,
        "threshold": fan_out * nb * e_fa,
        "register": register_energy(fan_in * input_bits + fan_out, P.e_reg_bit),
    }
    out["control"] = check_nonneg("digital_control_overhead", P.digital_control_overhead) * sum(out.values())
    return out


def readout_energy(P, kind: str = "vote", n_in: int = 1, n_classes: int = 10,
                   weights_in_sram: float | None = None) -> dict[str, float]:
    """Energy (J) of the digital readout of one inference, the same on both sides.

    kind "vote": the n_in binary column outputs are counted per class (about n_in full-adder bits) and the ten
        counts compared (n_classes - 1 comparisons of log2(n_in/n_classes + 1) bits).
    kind "digital" (alias "linear"): a small digital last layer with +-1 weights: n_in * n_classes XNOR + adder
        tree + a bias add per class, then the argmax; its weights are read from SRAM in the fraction
        `weights_in_sram` (default P's weights_in_sram, the baseline's one storage assumption; the in-memory chip
        passes its own, imc_readout_weights_in_sram; 0: held in latches beside the logic).
    kind "none": no digital readout.
    """
    P = _params.require(P)
    check_choice("readout kind", kind, READOUT_KINDS)
    if kind == "none":
        return {"readout": 0.0}
    n_in = check_int("n_in", n_in, 1)
    n_classes = check_int("n_classes", n_classes, 2)
    if kind == "vote":
        cnt_bits = int(math.ceil(math.log2(n_in / n_classes + 1)))
        e = (n_in * P.e_fa_bit + (n_classes - 1) * cnt_bits * P.e_fa_bit
             + (n_in + n_classes * cnt_bits) * P.e_reg_bit)
    else:
        macs = n_in * n_classes
        nb = acc_bits(n_in, 1)
        f = P.weights_in_sram if weights_in_sram is None else weights_in_sram
        e = (macs * P.e_sram_read_bit * check_real("weights_in_sram", f, 0, 1)
             + macs * P.e_xnor + macs * 2 * P.e_fa_bit           # XNOR + adder-tree popcount (1-b inputs)
             + (2 * n_classes - 1) * nb * P.e_fa_bit             # bias adds and the argmax comparisons
             + (n_in + n_classes * nb) * P.e_reg_bit)            # input and score registers
    return {"readout": float(e * (1 + P.digital_control_overhead))}


def sum_breakdowns(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Component-wise sum of energy breakdowns (dicts of J)."""
    out: dict[str, float] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0.0) + check_nonneg(f"energy component {k!r}", v)
    return out


def digital_inference_energy(P, layer_shapes: Sequence[tuple[int, int]] = (), input_bits: int = 5,
                             readout: Mapping | None = None) -> dict[str, float]:
    """Energy (J) per inference of the digital baseline, by component (DIGITAL_COMPONENTS + readout).

    layer_shapes: [(fan_in, fan_out), ...] of the on-array layers, first layer fed by `input_bits`-bit codes,
        later layers by +-1 activations (1 bit). readout: kwargs of `readout_energy` (kind, n_in, n_classes).
    """
    P = _params.require(P)
    shapes = check_shapes(layer_shapes)
    parts = [digital_layer_energy(P, fi, fo, input_bits if i == 0 else 1) for i, (fi, fo) in enumerate(shapes)]
    out = sum_breakdowns(parts)
    out.update(readout_energy(P, **(readout or {"kind": "none"})))
    return out
