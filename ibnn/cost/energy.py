"""Energy of the in-memory classifier, per classify cycle and per inference, from the one parameter set.

Circuit constants (supply, bit-line capacitance, discharge time, cycle timing, word-line capacitances) come from
the circuit section (circuit.toml) and the word-line physics of ibnn.circuit.wordline; the energy-only constants
(comparator energy, WLDAC bias, control) from energy.toml. All energies in joules, capacitances in farads,
voltages in volts, currents in amperes, times in seconds. Every static current is charged over its real on-time.

Per classify cycle (one on-array layer = one cycle, weights stationary), the components (IMC_COMPONENTS):

- ``bitline``: every bit-line that discharged by dV in the window is recharged from VDD: E = C_BL * VDD * dV,
  summed over all read bit-lines. The drops are the chip model's own (`ibnn.cost.activity`).
- ``precharge_fight``: while its word line rises (the WLDACs switch on with the input register, the precharge
  holds both bit-lines at VDD until the window opens) every cell of an active row conducts from VDD through the
  precharge device: E = VDD * sum over active rows of I_row(code) * t_fight(code), I_row the start-of-pulse current
  of the row's cells in the read columns (the chip's own, with its mismatch), t_fight the equivalent full-current
  time of the rising waveform (`DriveTables`).
- ``wl_tail``: the same cells while the word line is pulled to 0 after the window: VDD * I_row * t_tail.
- ``wldac``: every active WLDAC draws (I_DAC(code) + I_bias) from VDD for its on-time t_on = t_lead + t_eval;
  this charge also charges the word line (C_WL V_WL VDD is a part of it, `wordline_charge_energy`, not added).
- ``precharge_gates``: the gates of both precharge PMOS of every read column, switched once per cycle; the
  devices are sized to hold the worst-case line within precharge_sag_max of VDD (ibnn.circuit.precharge).
- ``comparator``: one decision per read column, e_comparator each (independent of the input common mode).
- ``control``: precharge/equalise/clock gates per precharged column (c_ctrl_per_col * VDD^2) + e_control_cycle.
- ``input_register``: the row inputs latched into the WLDACs (bits * e_reg_bit).
The digital readout (vote counters or a digital last layer) is added once per inference (`ibnn.cost.digital`).

Unused columns: the chip model evaluates all 128 columns, and an ungated array precharges, discharges and reads
every column whose cells sit on an active row. The default counts all 128 columns (no gating); with
``gate_unused_columns=True`` only the columns a layer uses are precharged and read (the others float at 0 V).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from .. import params as _params
from ..circuit.bitcell import BitCell
from ..circuit.precharge import precharge_device
from ..circuit.wordline import DriveTables, drive_tables
from ..validate import check_bool, check_choice, check_int, check_nonneg, check_positive, check_real
from .digital import readout_energy, register_energy, sum_breakdowns

__all__ = ["IMC_COMPONENTS", "SCOPES", "DriveTables", "drive_tables", "cycle_energy", "imc_inference_energy",
           "scope_energy", "total"]

_ARRAY = ("bitline", "precharge_fight", "wl_tail", "wldac", "precharge_gates")
_MACRO = _ARRAY + ("comparator", "control", "input_register")

IMC_COMPONENTS = _MACRO


#: Energy scopes, each defined once as the list of components it sums; stated wherever a figure uses one.
#: array: the bit-lines, the cells against the precharge and the word-line drivers; macro: the in-memory macro
#: (+ comparators, control/clocking, input registers); system: everything per inference (+ the digital readout).
SCOPES = {"array": _ARRAY, "macro": _MACRO, "system": _MACRO + ("readout",)}


def scope_energy(breakdown: Mapping[str, float], scope: str) -> float:
    """The energy (J) of `scope` (a key of SCOPES): the sum of its components in `breakdown`."""
    check_choice("scope", scope, tuple(SCOPES))
    return float(sum(check_nonneg(f"energy component {k!r}", breakdown[k]) for k in SCOPES[scope]))


def _array(name: str, x, nonneg: bool = True, upper: float | None = None) -> np.ndarray:
    """x as a float64 array, checked finite (and >= 0, and <= upper)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values; accepted: finite numbers in "
                         f"{'[0, ' if nonneg else '(-inf, '}{'inf' if upper is None else upper}]")
    if nonneg and a.size and a.min() < 0:
        raise ValueError(f"{name} has a negative entry ({a.min()!r}); accepted: finite numbers in "
                         f"[0, {'inf' if upper is None else upper}]")
    if upper is not None and a.size and a.max() > upper * (1 + 1e-6):   # float32 drops from the chip
        raise ValueError(f"{name} has an entry {a.max()!r} above {upper}; accepted: finite numbers in "
                         f"[0, {upper}]")
    return a


def bitline_energy(drops_V, c_bl: float, vdd: float) -> float:
    """Energy (J) to recharge bit-lines that fell by `drops_V` (V, any shape, summed): C_BL * VDD * sum(dV).

    A bit-line cannot fall more than VDD: drops must lie in [0, VDD].
    """
    c_bl = check_positive("c_bl", c_bl)
    vdd = check_positive("vdd", vdd)
    d = _array("drops_V", drops_V, upper=vdd)
    return float(c_bl * vdd * d.sum())


def wordline_energy(v_wl_V, c_wl: float, vdd: float, drive_from_vdd: float = 1.0) -> float:
    """Energy (J) to charge word lines to `v_wl_V` (V, one entry per active row, summed).

    E = C_WL * V_WL * (f * VDD + (1 - f) * V_WL): the charge C_WL*V_WL drawn from VDD (f = 1) or from a supply at
    V_WL (f = 0, C_WL*V_WL^2).
    """
    c_wl = check_positive("c_wl", c_wl)
    vdd = check_positive("vdd", vdd)
    f = check_real("drive_from_vdd", drive_from_vdd, 0.0, 1.0)
    v = _array("v_wl_V", v_wl_V, upper=vdd)
    return float(np.sum(c_wl * v * (f * vdd + (1 - f) * v)))


def wldac_energy(i_dac_A, t_on: float, vdd: float, i_bias: float = 0.0) -> float:
    """Static energy (J) of active WLDACs: sum over active rows of (I_DAC + I_bias) * VDD * t_on."""
    t_on = check_positive("t_on", t_on)
    vdd = check_positive("vdd", vdd)
    i_bias = check_nonneg("i_bias", i_bias)
    i = _array("i_dac_A", i_dac_A)
    return float(((i + i_bias) * vdd * t_on).sum())


def comparator_energy(n_decisions, e_comparator: float) -> float:
    """Energy (J) of `n_decisions` comparator decisions at `e_comparator` J each."""
    n = check_nonneg("n_decisions", n_decisions)
    return float(n * check_positive("e_comparator", e_comparator))


def control_energy(n_columns, c_ctrl_per_col: float, vdd: float, e_fixed: float) -> float:
    """Energy (J) of per-column control gates (C * VDD^2 per precharged column) plus a fixed per-cycle energy."""
    n = check_nonneg("n_columns", n_columns)
    c = check_positive("c_ctrl_per_col", c_ctrl_per_col)
    vdd = check_positive("vdd", vdd)
    return float(n * c * vdd ** 2 + check_nonneg("e_control_cycle", e_fixed))



def cell_static_energy(row_current_A, codes, t_equiv, vdd: float) -> float:
    """Energy (J) summed over a batch of cells drawn from VDD at their start-of-pulse current for an equivalent
    full-current time: VDD * sum_b sum_i I_row[i, c_bi] * t_equiv[c_bi]. row_current_A (rows, codes) A,
    codes (B, rows) ints, t_equiv (codes,) s."""
    rc = _array("row_current_A", row_current_A)
    t = _array("t_equiv", t_equiv)
    c = np.asarray(codes)
    if rc.ndim != 2 or rc.shape[0] != c.shape[1] or rc.shape[1] != len(t):
        raise ValueError(f"row_current_A must have shape (rows={c.shape[1]}, codes={len(t)}); got {rc.shape}")
    per_row = rc[np.arange(c.shape[1])[None, :], c]                                       # (B, rows) A
    return float(check_positive("vdd", vdd) * (per_row * t[c]).sum())


def wordline_charge_energy(tables: DriveTables, codes, vdd: float) -> float:
    """Mean energy (J) per cycle of charging the word lines, C_WL V_final VDD per active row: a part of the
    WLDAC's charge (reported beside it, not added)."""
    c = np.asarray(codes)
    return float(tables.c_node * vdd * tables.v_final[c].sum() / max(c.shape[0], 1))


def cycle_energy(P, *, bl_drops_V, codes, input_bits: int, tables: DriveTables | None = None,
                 row_current_A=None, columns: Sequence[int] | None = None, gate_unused_columns: bool = False,
                 register_bits: int | None = None) -> dict[str, float]:
    """Mean energy (J) per classify cycle of the array, by component (IMC_COMPONENTS), over a batch.

    Args:
        bl_drops_V: (B, n_columns, 2) drops of BL and BLB (V) for every column the chip model evaluated (or
            (B, n_columns) with the two drops already summed per column). Recharge energy C_BL * VDD * sum(dV).
        codes: (B, rows) integer word-line codes of this cycle (0 = row off).
        input_bits: bits per row input latched in this cycle (5 for the first layer, 1 for +-1 activations).
        tables: the word line's DriveTables (default `drive_tables(P)`: I_DAC, t_fight, t_tail, t_on per code).
        row_current_A: (rows, codes) start-of-pulse current (A) of each row's cells in the read columns (the
            chip's `row_currents`); default: nominal cells, n_read x I_cell(V_final, VDD).
        columns: the columns this layer uses (default: all). With gate_unused_columns only these are precharged
            and read; otherwise every evaluated column is (default, the chip as built).
        register_bits: flip-flop bits latched for this cycle's row inputs (default: input_bits per active row;
            the mapped network passes fan_in * input_bits: the input register is clocked whole).
    """
    P = _params.require(P)
    gate = check_bool("gate_unused_columns", gate_unused_columns)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    tables = drive_tables(P) if tables is None else tables
    vdd, c_bl = P["vdd"], P["c_bl"]
    drops = _check_drops(bl_drops_V, vdd)
    B, n_cols = drops.shape[:2]
    if gate:
        drops = drops[:, _check_columns(columns, n_cols)]
    n_read = drops.shape[1]
    c = _check_codes(codes, B, len(tables.i_dac))
    if row_current_A is None:
        row_current_A = np.broadcast_to(n_read * _nominal_cell_current(P, tables), (c.shape[1], len(tables.i_dac)))
    active = c > 0
    return {
        "bitline": c_bl * vdd * float(drops.sum()) / B,          # checked: finite, >= 0, <= VDD per line
        "precharge_fight": cell_static_energy(row_current_A, c, tables.t_fight, vdd) / B,
        "wl_tail": cell_static_energy(row_current_A, c, tables.t_tail, vdd) / B,
        "wldac": wldac_energy(tables.i_dac[c][active], tables.t_on, vdd, P.wldac_bias_current) / B,
        "precharge_gates": 2 * n_read * precharge_device(P).gate_energy,
        "comparator": comparator_energy(n_read, P.e_comparator),
        "control": control_energy(n_read, P.c_ctrl_per_col, vdd, P.e_control_cycle),
        "input_register": (register_energy(active.sum() * input_bits, P.e_reg_bit) / B if register_bits is None
                           else register_energy(check_int("register_bits", register_bits, 0), P.e_reg_bit)),
    }


def _nominal_cell_current(P, tables: DriveTables) -> np.ndarray:
    """(codes,) A: a nominal cell at the nominal row's final word-line voltage, drain at VDD (0 at code 0)."""
    i = BitCell(P).current(torch.as_tensor(tables.v_final), P["vdd"]).numpy()
    return np.where(tables.i_dac > 0, i, 0.0)


def _check_drops(bl_drops_V, vdd: float) -> np.ndarray:
    """(B, n_columns, 1 or 2) drops, each line within [0, VDD] (a summed pair within [0, 2 VDD])."""
    drops = _array("bl_drops_V", bl_drops_V, upper=2 * vdd)
    if drops.ndim == 2:          # BL + BLB already summed per column: each line <= VDD, the pair <= 2 VDD
        drops = drops[..., None]
    elif drops.ndim == 3:
        _array("bl_drops_V", drops, upper=vdd)
    if drops.ndim != 3 or drops.shape[-1] not in (1, 2):
        raise ValueError(f"bl_drops_V must have shape (B, n_columns, 2) or (B, n_columns); got {drops.shape}")
    return drops


def _check_columns(columns, n_cols: int) -> np.ndarray:
    if columns is None:
        return np.arange(n_cols)
    cols = np.asarray(list(columns), dtype=np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
        raise ValueError(f"columns must lie in [0, {n_cols - 1}]; got [{cols.min()}, {cols.max()}]")
    return cols


def _check_codes(codes, B: int, n_codes: int) -> np.ndarray:
    c = np.asarray(codes.detach().cpu().numpy() if hasattr(codes, "detach") else codes)
    if c.ndim != 2 or c.shape[0] != B:
        raise ValueError(f"codes must have shape (B={B}, rows); got {c.shape}")
    if c.size and (c.min() < 0 or c.max() >= n_codes):
        raise ValueError(f"codes must lie in [0, {n_codes - 1}]; got codes in [{c.min()}, {c.max()}]")
    return c.astype(np.int64)


def total(breakdown: Mapping[str, float]) -> float:
    """Sum (J) of a breakdown; every component must be finite and >= 0."""
    return float(sum(check_nonneg(f"energy component {k!r}", v) for k, v in breakdown.items()))


def imc_inference_energy(P, activity: Sequence, readout: Mapping | None = None,
                         gate_unused_columns: bool = False, tables: DriveTables | None = None) -> dict:
    """Energy (J) per inference on the in-memory chip: one classify cycle per layer plus the digital readout.

    Args:
        activity: one `ibnn.cost.activity.CycleActivity` per classify cycle (its drops and the chip's row
            currents); readout: kwargs of `digital.readout_energy`; tables: DriveTables (default from P).
    Returns:
        {"per_layer": [breakdown per cycle], "breakdown": summed breakdown incl. "readout", "total_J",
        "macro_J", "array_J" (the energies of SCOPES "system", "macro", "array"), "n_cycles",
        "wordline_charge_J" (the part of the WLDAC energy that charges the word lines)}."""
    P = _params.require(P)
    tables = drive_tables(P) if tables is None else tables
    gate = check_bool("gate_unused_columns", gate_unused_columns)
    per_layer = [cycle_energy(P, bl_drops_V=a.drops, codes=a.codes, tables=tables, input_bits=a.input_bits,
                              row_current_A=a.row_current(gate), columns=a.columns, gate_unused_columns=gate,
                              register_bits=a.register_bits)
                 for a in activity]
    bd = sum_breakdowns(per_layer)
    bd.update(readout_energy(P, **(readout or {"kind": "none"}), weights_in_sram=P.imc_readout_weights_in_sram))
    return {"per_layer": per_layer, "breakdown": bd, "total_J": scope_energy(bd, "system"),
            "macro_J": scope_energy(bd, "macro"), "array_J": scope_energy(bd, "array"), "n_cycles": len(per_layer),
            "wordline_charge_J": sum(wordline_charge_energy(tables, a.codes, P["vdd"]) for a in activity)}


def picojoules(breakdown: Mapping[str, float], digits: int = 2) -> dict[str, float]:
    """A breakdown (J) in pJ, rounded, for printing."""
    return {k: round(float(v) * 1e12, digits) for k, v in breakdown.items()}
