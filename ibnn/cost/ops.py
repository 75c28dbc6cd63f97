"""Ops accounting and efficiency figures.

One multiply-accumulate = 2 ops ("mac2"); the 1-bit-normalised count ("1b") multiplies by input bits x weight bits
(Shanbhag & Roy, CICC 2022 benchmarking). Any other definition raises ValueError.
"""
from __future__ import annotations

from typing import Sequence

from ..validate import check_choice, check_int, check_nonneg, check_positive

OP_DEFINITIONS = ("mac2", "1b")


READOUT_KINDS = ("vote", "digital", "linear", "none")


def check_shapes(layer_shapes) -> list[tuple[int, int]]:
    """[(fan_in, fan_out), ...] as int pairs, each >= 1, or a ValueError naming the entry."""
    shapes = [tuple(s) for s in layer_shapes]
    if not shapes:
        raise ValueError("layer_shapes is empty; give [(fan_in, fan_out), ...] for at least one layer")
    for i, s in enumerate(shapes):
        if len(s) != 2:
            raise ValueError(f"layer_shapes[{i}]={s!r} must be (fan_in, fan_out)")
        check_int(f"layer_shapes[{i}].fan_in", s[0], 1)
        check_int(f"layer_shapes[{i}].fan_out", s[1], 1)
    return [(int(a), int(b)) for a, b in shapes]


def ops_per_inference(definition: str, layer_shapes: Sequence[tuple[int, int]], input_bits: int = 5,
                      weight_bits: int = 1) -> float:
    """Ops per inference of the network's on-array layers.

    "mac2": 2 ops per multiply-accumulate, 2 * sum(fan_in * fan_out).
    "1b": 1-bit-normalised, each layer's 2*MACs times its input bits times weight bits (first layer:
        `input_bits`, later layers: 1).

    >>> ops_per_inference("mac2", [(81, 128)])           # 2 ops per MAC
    20736.0
    >>> ops_per_inference("1b", [(81, 128)], input_bits=5)    # x 5 input bits x 1 weight bit
    103680.0
    """
    check_choice("op definition", definition, OP_DEFINITIONS)
    shapes = check_shapes(layer_shapes)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    weight_bits = check_int("weight_bits", weight_bits, 1, 16)
    ops = 0.0
    for i, (fi, fo) in enumerate(shapes):
        k = 1 if definition == "mac2" else (input_bits if i == 0 else 1) * weight_bits
        ops += 2.0 * fi * fo * k
    return ops


def array_ops_per_cycle(definition: str, rows: int, cols: int, input_bits: int, weight_bits: int = 1) -> float:
    """Peak ops of one classify cycle with every cell of the rows x cols array in use (all rows at input_bits)."""
    check_choice("op definition", definition, OP_DEFINITIONS)
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    k = 1 if definition == "mac2" else check_int("input_bits", input_bits, 1, 16) * check_int(
        "weight_bits", weight_bits, 1, 16)
    return 2.0 * rows * cols * k


def readout_ops(definition: str, kind: str, n_in: int, n_classes: int) -> float:
    """Ops of the digital readout per inference: a digital last layer has n_in * n_classes 1-b x 1-b MACs
    (2 ops each in both definitions); a vote or no readout counts none (counting is not a MAC)."""
    check_choice("op definition", definition, OP_DEFINITIONS)
    check_choice("readout kind", kind, READOUT_KINDS)
    return 2.0 * n_in * n_classes if kind in ("digital", "linear") else 0.0


def tops_per_w(ops: float, energy_J: float) -> float:
    """Energy efficiency in TOPS/W (= 1e12 ops per joule) of `ops` operations costing `energy_J` joules."""
    return check_nonneg("ops", ops) / check_positive("energy_J", energy_J) / 1e12


def throughput_ops_per_s(ops_per_cycle: float, f_clock: float) -> float:
    """Ops per second at one array evaluation per clock cycle."""
    return check_nonneg("ops_per_cycle", ops_per_cycle) * check_positive("f_clock", f_clock)


def tops_per_mm2(ops_per_s: float, area_m2: float) -> float:
    """Compute density in TOPS/mm2 of `ops_per_s` on `area_m2` square metres."""
    return check_nonneg("ops_per_s", ops_per_s) / 1e12 / (check_positive("area_m2", area_m2) * 1e6)


def energy_ratio(digital_J: float, imc_J: float) -> float:
    """How many times less energy the in-memory chip needs than the digital baseline: digital / imc."""
    return check_positive("digital_J", digital_J) / check_positive("imc_J", imc_J)
