"""The model against the prototype's silicon (Zhang, Wang, Verma, JSSC 2017) and against the JETCAS 2019 figures.

* The silicon check: the energy per ten-way decision of the mapped network in the prototype's configuration
  (81 5-bit pixel rows + the bias rows it needs, all 128 columns deciding, one decision per 50-MHz cycle, the
  digital readout) beside the published 630 pJ (`silicon_check`).
* The digital baseline under one storage assumption for every weight (`storage_variants`), the energy ratio with
  and without the shared readout (`energy_ratios`), and JSSC's 13x against a discrete SRAM / digital-MAC system
  with the same training (`check_13x`).
* A workload that drives every row (`all_rows_codes`, `all_rows_activity`): the only source of a peak figure.
* The JETCAS operating point: the energy per full-array cycle under each operating-point difference (supply,
  pulse width, DAC gating, binary inputs), alone and combined, beside the 700 TOPS/W the paper claims
  (`jetcas_knobs`).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ..circuit.chip import Chip
from ..circuit.wordline import gated_drive_tables
from ..published import JSSC2017, JSSC2017_SOURCE, PAPER
from ..validate import check_choice, check_int
from . import digital as D
from . import energy as E
from . import ops as O
from .activity import CycleActivity

STORAGE = {"sram": 1.0, "latched": 0.0}


def configuration(mapping, P) -> str:
    """The configuration the silicon check runs, in words (from the mapping and P)."""
    L = mapping.layers[0]
    r = mapping.readout_logic
    return (f"{len(mapping.layers)} on-array layer(s); layer 0: {L.fan_in} {mapping.bits}-bit MNIST pixel rows + "
            f"{int(L.bias_rows.numel())} bias rows, {P.int('array_cols')} columns precharged and deciding, one "
            f"classify cycle per layer at {P['f_classify'] / 1e6:g} MHz; readout {r['kind']} "
            f"({r['n_inputs']} -> {r['n_classes']}): one ten-way decision per inference")


def silicon_check(modelled_J: float, configuration_text: str) -> dict:
    """The record of the silicon check: published and modelled energy per ten-way decision and their ratio."""
    pub = JSSC2017["energy_per_decision_J"]
    return {"published_J": pub, "modelled_J": float(modelled_J), "ratio": float(modelled_J) / pub,
            "configuration": configuration_text, "source": JSSC2017_SOURCE}


def storage_variants(P, layer_shapes, input_bits: int, readout: dict) -> dict:
    """The digital baseline (breakdown, J) under each single storage assumption of STORAGE."""
    return {name: D.digital_inference_energy(P.replace(weights_in_sram=f), layer_shapes, input_bits, readout)
            for name, f in STORAGE.items()}


def energy_ratios(digital: dict, imc: dict) -> dict:
    """Digital / in-memory energy with the readout (system scope on both sides: the same readout logic, each
    side's readout weights stored as that side's assumption says) and without it (the baseline less its readout
    against the in-memory macro)."""
    dig = E.total(digital)
    return {"with_readout": O.energy_ratio(dig, imc["total_J"]),
            "without_readout": O.energy_ratio(dig - digital["readout"], imc["macro_J"])}


def check_13x(digital_sram: dict, imc: dict) -> dict:
    """JSSC 2017's 13x (against a discrete SRAM / digital-MAC system with the same training) beside the model's
    ratio with every baseline weight read from SRAM."""
    pub = JSSC2017["ratio_vs_discrete_same_training"]
    r = energy_ratios(digital_sram, imc)
    return {"published": pub, "modelled": r["with_readout"], "ratio": r["with_readout"] / pub,
            "modelled_without_readout": r["without_readout"], "storage": "sram", "source": JSSC2017_SOURCE}


def all_rows_codes(pool, rows: int, n: int, seed: int = 0) -> torch.Tensor:
    """(n, rows) int64 codes that drive EVERY row, each drawn from the non-zero entries of `pool` (the network's
    MNIST codes: the same code statistics as its active rows, no row off)."""
    flat = torch.as_tensor(pool).flatten().to(torch.int64)
    flat = flat[flat > 0]
    if not len(flat):
        raise ValueError("pool has no non-zero code; give the network's word-line codes")
    g = torch.Generator().manual_seed(check_int("seed", seed, 0))
    return flat[torch.randint(0, len(flat), (check_int("n", n, 1), check_int("rows", rows, 1)), generator=g)]


def random_weights(chip, seed: int = 0) -> torch.Tensor:
    """Balanced random +-1 weights (rows, cols) for a workload that is not the network."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (chip.rows, chip.cols), generator=g) * 2 - 1).to(torch.int8)


def all_rows_activity(chip, codes, input_bits: int, seed: int = 0, noise_seed: int = 0) -> CycleActivity:
    """One classify cycle of instance 0 of a copy of `chip` (the chip itself keeps its weights) programmed with
    random +-1 weights, for `codes` (B, rows): its drops and row currents, every column read."""
    c = copy.copy(chip).program(random_weights(chip, seed))
    out = c.evaluate(torch.as_tensor(codes), noise_seed=noise_seed, drops=True)
    return CycleActivity(layer=0, codes=torch.as_tensor(codes).numpy().astype(np.int64),
                         drops=out.drops[0].to(torch.float64).numpy(), input_bits=input_bits,
                         columns=list(range(chip.cols)), register_bits=chip.rows * input_bits,
                         row_current_all=c.row_currents(0).numpy(), row_current_own=c.row_currents(0).numpy())


def cycle_macro(P, act: CycleActivity, tables=None) -> float:
    """Macro-scope energy (J) of one all-rows cycle."""
    return E.scope_energy(E.cycle_energy(P, bl_drops_V=act.drops, codes=act.codes, input_bits=act.input_bits,
                                         tables=tables, row_current_A=act.row_current_all,
                                         register_bits=act.register_bits), "macro")


def jetcas_knobs(P, chip, codes, bits: int, knobs: dict, seed: int = 0) -> list[dict]:
    """Energy per full-array cycle (macro scope) of the all-rows workload under each operating-point knob.

    knobs: {"vdd": V, "t_eval": s, "replica_factor": drive x k, "binary_code": c} (each optional). Each is applied
    alone, then all together. vdd rebuilds the chip, t_eval retimes it, replica_factor uses a gated drive enabled
    as late as its slowest corner code allows (drops of the base run: the window charge of settled codes is
    unchanged), binary_code replaces the codes by 0 / binary_code at density 1/2 (a binary input layer). Returns
    rows {knob, value, energy_J, tops_per_w_mac2, factor (base / this)}."""
    base = all_rows_activity(chip, codes, bits, seed)
    e0 = cycle_macro(P, base)
    ops = O.array_ops_per_cycle("mac2", P.int("array_rows"), P.int("array_cols"), bits)
    rows = [{"knob": "silicon-anchored model", "value": None, "energy_J": e0}]
    g = torch.Generator().manual_seed(seed + 1)
    binary = (torch.rand(tuple(codes.shape), generator=g) < 0.5).to(torch.int64)
    for name in ("vdd", "t_eval", "replica_factor", "binary_code"):
        if name in knobs:
            rows.append({"knob": name, "value": knobs[name],
                         "energy_J": _apply(P, chip, codes, binary, bits, seed, {name: knobs[name]}, base)})
    if len(knobs) > 1:
        rows.append({"knob": "all of the above", "value": dict(knobs),
                     "energy_J": _apply(P, chip, codes, binary, bits, seed, knobs, base)})
    for r in rows:
        r["tops_per_w_mac2"] = O.tops_per_w(ops, r["energy_J"])
        r["factor"] = e0 / r["energy_J"]
    return rows


def _apply(P, chip, codes, binary, bits, seed, knobs: dict, base: CycleActivity) -> float:
    """Macro energy (J) per all-rows cycle with the given knobs applied together."""
    P2 = P.replace(**{k: float(v) for k, v in knobs.items() if k in ("vdd", "t_eval")})
    chip2 = chip
    if "vdd" in knobs:                                   # a new supply: a new cell model
        chip2 = Chip(P2, n_chips=1, seed=chip.seed, nonideal=chip.nonideal, device=chip.device)
    elif "t_eval" in knobs:
        chip2 = chip.retimed(P2)
    act = base
    if chip2 is not chip or "binary_code" in knobs:
        act = all_rows_activity(chip2, codes if "binary_code" not in knobs else binary * int(knobs["binary_code"]),
                                bits, seed)
    tables = gated_drive_tables(P2, P2["replica_ratio"] * knobs["replica_factor"]) \
        if "replica_factor" in knobs else None
    return cycle_macro(P2, act, tables)


def jetcas_targets(P, bits: int) -> dict:
    """What the JETCAS figures mean per full-array cycle and in area, at the array size and clock of P."""
    rows, cols = P.int("array_rows"), P.int("array_cols")
    ops = {d: O.array_ops_per_cycle(d, rows, cols, bits) for d in O.OP_DEFINITIONS}
    return {"energy_per_full_array_cycle_J": {d: ops[d] / (PAPER["tops_per_w"] * 1e12) for d in ops},
            "area_m2": {d: O.throughput_ops_per_s(ops[d], P["f_classify"]) / (PAPER["tops_per_mm2"] * 1e12) * 1e-6
                        for d in ops}}


def silicon_band(P, name: str, values, ratios) -> dict:
    """Where the silicon-check ratio crosses 0.5 and 2 as parameter `name` moves, by log-log interpolation
    through (value, ratio) points (e.g. the tornado's low / default / high runs); None outside the points."""
    check_choice("name", name, tuple(P.names()))
    v = np.log(np.asarray(values, dtype=np.float64))
    r = np.log(np.asarray(ratios, dtype=np.float64))
    order = np.argsort(r)
    out = {}
    for target in (0.5, 2.0):
        t = np.log(target)
        out[f"at_ratio_{target:g}"] = (float(np.exp(np.interp(t, r[order], v[order])))
                                       if r.min() <= t <= r.max() else None)
    return {"name": name, "unit": P.entry(name).unit, "points": [list(map(float, values)), list(map(float, ratios))],
            **out}

