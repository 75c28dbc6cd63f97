"""Energy of the in-memory classifier and of a digital implementation of the same network, and ops accounting.

Everything is computed from the one parameter set (`ibnn.params.load()`): circuit constants (supply, bit-line
capacitance, discharge time, ...) come from the circuit section (circuit.toml, see `circuit_value`), the
energy-only constants (word-line capacitance, comparator energy, control, digital primitives) from energy.toml.
All energies are in joules, capacitances in farads, voltages in volts, currents in amperes, times in seconds.

In-memory array, per classify cycle (one on-array layer = one cycle, weights stationary):

- ``bitline``:   every bit-line that discharged by dV is recharged from VDD: E = C_BL * VDD * dV, summed over
                 all bit-lines (BL and BLB of every column). The drops are an input: the notebook takes them
                 from the chip model on real inputs (`ibnn.chip.Chip.evaluate(..., return_dv=True)`).
- ``wordline``:  every active row (code > 0) charges its word line to V_WL(code):
                 E = C_WL * V_WL * (f * VDD + (1 - f) * V_WL), f = wl_drive_from_vdd (1: charge drawn from VDD).
- ``wldac``:     static current of every active WLDAC, (I_DAC(code) + I_bias) * VDD * (t_wl_settle + t_eval).
- ``comparator``: one decision per read column, e_comparator each.
- ``control``:   precharge/equalise/clock gates per precharged column (c_ctrl_per_col * VDD^2) + e_control_cycle.
- ``input_register``: the row inputs latched into the WLDACs (bits * e_reg_bit).
The digital readout (vote counters or a digital last layer) is added once per inference (`readout_energy`).

Unused columns: the chip model evaluates all 128 columns, and an ungated array discharges (and so recharges) the
bit-lines of every column whose cells sit on an active row. The default counts all 128 columns (no gating); with
``gate_unused_columns=True`` only the columns a layer uses are precharged and read.

Digital baseline (`digital_inference_energy`): the same network on a fixed-function 130-nm datapath: every weight
bit read from SRAM, XNOR + adder-tree popcount for binary layers, conditional negation + adder tree for the
5-bit first layer, one threshold comparison and threshold read per neuron, input/output registers, a control
overhead fraction, and the same readout as the in-memory chip. Primitive energies are Horowitz's 45-nm figures
scaled to 130 nm by E * (node/45)^k * (VDD/0.9)^2 (`scale_45_to_130` in energy.toml).

Ops: one multiply-accumulate = 2 ops ("mac2"); the 1-bit-normalised count ("1b") multiplies by input bits x
weight bits (Shanbhag & Roy, CICC 2022 benchmarking). Any other definition raises ValueError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from . import params as _params
from .validate import check_bool, check_choice, check_int, check_nonneg, check_positive, check_real

OP_DEFINITIONS = ("mac2", "1b")
IMC_COMPONENTS = ("bitline", "wordline", "wldac", "comparator", "control", "input_register")
DIGITAL_COMPONENTS = ("weight_read", "multiply", "accumulate", "threshold", "register", "control")

# Names of the circuit constants this module needs, and the names they may carry in circuit.toml.
CIRCUIT_NAMES: dict[str, tuple[str, ...]] = {
    "vdd": ("vdd",),
    "c_bl": ("c_bl", "c_bitline"),
    "t_eval": ("t_eval", "t_discharge", "t_wl"),
}


def circuit_value(P, key: str) -> float:
    """The circuit constant `key` ("vdd", "c_bl", "t_eval") from the circuit section of the parameter set."""
    for name in CIRCUIT_NAMES[key]:
        if name in P:
            return P[name]
    raise KeyError(f"circuit constant {key!r} not in the parameter set (looked for {list(CIRCUIT_NAMES[key])} "
                   f"in circuit.toml)")


def _params_or_default(P):
    return _params.load() if P is None else P


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
    if upper is not None and a.size and a.max() > upper * (1 + 1e-9):
        raise ValueError(f"{name} has an entry {a.max()!r} above {upper}; accepted: finite numbers in "
                         f"[0, {upper}]")
    return a


# ---------------------------------------------------------------------------------------------------------------
# Component energies (pure physics, SI units)
# ---------------------------------------------------------------------------------------------------------------
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


def register_energy(n_bits, e_reg_bit: float) -> float:
    """Energy (J) to write `n_bits` flip-flop bits."""
    return float(check_nonneg("n_bits", n_bits) * check_positive("e_reg_bit", e_reg_bit))


# ---------------------------------------------------------------------------------------------------------------
# In-memory array: one classify cycle, one inference
# ---------------------------------------------------------------------------------------------------------------
def cycle_energy(P=None, *, bl_drops_V, codes, v_wl_lut_V, i_dac_lut_A, input_bits: int,
                 columns: Sequence[int] | None = None, gate_unused_columns: bool = False,
                 register_bits: int | None = None) -> dict[str, float]:
    """Mean energy (J) per classify cycle of the array, by component (IMC_COMPONENTS), over a batch.

    bl_drops_V: (B, n_columns, 2) drops of BL and BLB (V) for every column the chip model evaluated (or
        (B, n_columns) with the two drops already summed per column). Recharge energy C_BL * VDD * sum(dV).
    codes: (B, rows) integer word-line codes of this cycle (0 = row off).
    v_wl_lut_V, i_dac_lut_A: word-line voltage (V) and WLDAC output current (A) for each code 0..2**bits-1.
    input_bits: bits per row input latched in this cycle (5 for the first layer, 1 for +-1 activations).
    columns: the columns this layer uses (default: all). With gate_unused_columns only these are precharged and
        read; otherwise every evaluated column is (default, the chip as built).
    register_bits: flip-flop bits latched for this cycle's row inputs (default: input_bits per active row; the
        mapped network passes fan_in * input_bits: the input register is clocked whole).
    """
    P = _params_or_default(P)
    gate = check_bool("gate_unused_columns", gate_unused_columns)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    vdd, c_bl, t_eval = circuit_value(P, "vdd"), circuit_value(P, "c_bl"), circuit_value(P, "t_eval")
    drops = _array("bl_drops_V", bl_drops_V, upper=2 * vdd)
    if drops.ndim == 2:          # BL + BLB already summed per column: each line <= VDD, the pair <= 2 VDD
        drops = drops[..., None]
    elif drops.ndim == 3:
        _array("bl_drops_V", drops, upper=vdd)
    if drops.ndim != 3 or drops.shape[-1] not in (1, 2):
        raise ValueError(f"bl_drops_V must have shape (B, n_columns, 2) or (B, n_columns); got {drops.shape}")
    B, n_cols = drops.shape[:2]
    if columns is not None:
        cols = np.asarray(list(columns), dtype=np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
            raise ValueError(f"columns must lie in [0, {n_cols - 1}]; got [{cols.min()}, {cols.max()}]")
    else:
        cols = np.arange(n_cols)
    if gate:
        drops = drops[:, cols]
    n_read = drops.shape[1]
    c = np.asarray(codes.detach().cpu().numpy() if hasattr(codes, "detach") else codes)
    if c.ndim != 2 or c.shape[0] != B:
        raise ValueError(f"codes must have shape (B={B}, rows); got {c.shape}")
    v_lut = _array("v_wl_lut_V", v_wl_lut_V, upper=vdd)
    i_lut = _array("i_dac_lut_A", i_dac_lut_A)
    if c.min() < 0 or c.max() >= len(v_lut) or len(i_lut) != len(v_lut):
        raise ValueError(f"codes must lie in [0, {len(v_lut) - 1}] and both look-up tables have one entry per "
                         f"code; got codes in [{c.min()}, {c.max()}], tables {len(v_lut)}, {len(i_lut)}")
    active = c > 0
    v_active = v_lut[c][active]
    i_active = i_lut[c][active]
    t_on = P.t_wl_settle + t_eval
    # Per-cycle means: the batch sums divided by B.
    out = {
        "bitline": c_bl * vdd * float(drops.sum()) / B,          # checked above: finite, >= 0, <= VDD per line
        "wordline": wordline_energy(v_active, _c_wl(P, n_cols), vdd, P.wl_drive_from_vdd) / B,
        "wldac": wldac_energy(i_active, t_on, vdd, P.wldac_bias_current) / B,
        "comparator": comparator_energy(n_read, P.e_comparator),
        "control": control_energy(n_read, P.c_ctrl_per_col, vdd, P.e_control_cycle),
        "input_register": (register_energy(active.sum() * input_bits, P.e_reg_bit) / B if register_bits is None
                           else register_energy(check_int("register_bits", register_bits, 0), P.e_reg_bit)),
    }
    return out


def _c_wl(P, cols: int = 128) -> float:
    """Word-line capacitance (F) of one row of `cols` cells (a word line spans the whole array, gated or not)."""
    return P.c_wl_per_cell * cols


def sum_breakdowns(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Component-wise sum of energy breakdowns (dicts of J)."""
    out: dict[str, float] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0.0) + check_nonneg(f"energy component {k!r}", v)
    return out


def total(breakdown: Mapping[str, float]) -> float:
    """Sum (J) of a breakdown; every component must be finite and >= 0."""
    return float(sum(check_nonneg(f"energy component {k!r}", v) for k, v in breakdown.items()))


# ---------------------------------------------------------------------------------------------------------------
# Digital primitives, readout and the digital baseline
# ---------------------------------------------------------------------------------------------------------------
def acc_bits(fan_in: int, input_bits: int) -> int:
    """Bits of a signed accumulator for `fan_in` products of an unsigned `input_bits` input and a +-1 weight."""
    fan_in = check_int("fan_in", fan_in, 1)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    return int(math.ceil(math.log2(fan_in * (2 ** input_bits - 1) + 1))) + 1


def digital_layer_energy(P, fan_in: int, fan_out: int, input_bits: int) -> dict[str, float]:
    """Energy (J) of one fully connected binary-weight layer on the digital baseline, by DIGITAL_COMPONENTS.

    weight_read: fan_in*fan_out weight bits read from SRAM; thresholds (acc_bits each) read from SRAM too.
    multiply: XNOR per MAC for 1-bit inputs; conditional negation (input_bits XNOR/XOR) per MAC otherwise.
    accumulate: ripple-carry adder tree: about (input_bits + 1) full-adder bits per MAC.
    threshold: one acc_bits-wide comparison (subtraction) per neuron.
    register: inputs latched (fan_in*input_bits bits) and outputs (fan_out bits).
    control: digital_control_overhead times the sum of the above.
    """
    P = _params_or_default(P)
    fan_in = check_int("fan_in", fan_in, 1)
    fan_out = check_int("fan_out", fan_out, 1)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    macs = fan_in * fan_out
    nb = acc_bits(fan_in, input_bits)
    e_rd, e_x, e_fa = P.e_sram_read_bit, P.e_xnor, P.e_fa_bit
    out = {
        "weight_read": macs * e_rd + fan_out * nb * e_rd,
        "multiply": macs * input_bits * e_x,
        "accumulate": macs * (input_bits + 1) * e_fa,
        "threshold": fan_out * nb * e_fa,
        "register": register_energy(fan_in * input_bits + fan_out, P.e_reg_bit),
    }
    out["control"] = check_nonneg("digital_control_overhead", P.digital_control_overhead) * sum(out.values())
    return out


READOUT_KINDS = ("vote", "digital", "linear", "none")


def readout_energy(P=None, kind: str = "vote", n_in: int = 1, n_classes: int = 10) -> dict[str, float]:
    """Energy (J) of the digital readout of one inference, the same on both sides.

    kind "vote": the n_in binary column outputs are counted per class (about n_in full-adder bits) and the ten
        counts compared (n_classes - 1 comparisons of log2(n_in/n_classes + 1) bits).
    kind "digital" (alias "linear"): a small digital last layer with +-1 weights: n_in * n_classes XNOR + adder
        tree + a bias add per class, then the argmax; its weights are read from SRAM in the fraction
        readout_weights_from_sram (0: held in latches beside the logic).
    kind "none": no digital readout.
    """
    P = _params_or_default(P)
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
        e = (macs * P.e_sram_read_bit * check_real("readout_weights_from_sram", P.readout_weights_from_sram, 0, 1)
             + macs * P.e_xnor + macs * 2 * P.e_fa_bit           # XNOR + adder-tree popcount (1-b inputs)
             + (2 * n_classes - 1) * nb * P.e_fa_bit             # bias adds and the argmax comparisons
             + (n_in + n_classes * nb) * P.e_reg_bit)            # input and score registers
    return {"readout": float(e * (1 + P.digital_control_overhead))}


def readout_ops(definition: str, kind: str, n_in: int, n_classes: int) -> float:
    """Ops of the digital readout per inference: a digital last layer has n_in * n_classes 1-b x 1-b MACs
    (2 ops each in both definitions); a vote or no readout counts none (counting is not a MAC)."""
    check_choice("op definition", definition, OP_DEFINITIONS)
    check_choice("readout kind", kind, READOUT_KINDS)
    return 2.0 * n_in * n_classes if kind in ("digital", "linear") else 0.0


def digital_inference_energy(P=None, layer_shapes: Sequence[tuple[int, int]] = (), input_bits: int = 5,
                             readout: Mapping | None = None) -> dict[str, float]:
    """Energy (J) per inference of the digital baseline, by component (DIGITAL_COMPONENTS + readout).

    layer_shapes: [(fan_in, fan_out), ...] of the on-array layers, first layer fed by `input_bits`-bit codes,
        later layers by +-1 activations (1 bit). readout: kwargs of `readout_energy` (kind, n_in, n_classes).
    """
    P = _params_or_default(P)
    shapes = _check_shapes(layer_shapes)
    parts = [digital_layer_energy(P, fi, fo, input_bits if i == 0 else 1) for i, (fi, fo) in enumerate(shapes)]
    out = sum_breakdowns(parts)
    out.update(readout_energy(P, **(readout or {"kind": "none"})))
    return out


def _check_shapes(layer_shapes) -> list[tuple[int, int]]:
    shapes = [tuple(s) for s in layer_shapes]
    if not shapes:
        raise ValueError("layer_shapes is empty; give [(fan_in, fan_out), ...] for at least one layer")
    for i, s in enumerate(shapes):
        if len(s) != 2:
            raise ValueError(f"layer_shapes[{i}]={s!r} must be (fan_in, fan_out)")
        check_int(f"layer_shapes[{i}].fan_in", s[0], 1)
        check_int(f"layer_shapes[{i}].fan_out", s[1], 1)
    return [(int(a), int(b)) for a, b in shapes]


# ---------------------------------------------------------------------------------------------------------------
# Ops accounting and efficiency figures
# ---------------------------------------------------------------------------------------------------------------
def ops_per_inference(definition: str, layer_shapes: Sequence[tuple[int, int]], input_bits: int = 5,
                      weight_bits: int = 1) -> float:
    """Ops per inference of the network's on-array layers.

    "mac2": 2 ops per multiply-accumulate, 2 * sum(fan_in * fan_out).
    "1b": 1-bit-normalised, each layer's 2*MACs times its input bits times weight bits (first layer:
        `input_bits`, later layers: 1).
    """
    check_choice("op definition", definition, OP_DEFINITIONS)
    shapes = _check_shapes(layer_shapes)
    input_bits = check_int("input_bits", input_bits, 1, 16)
    weight_bits = check_int("weight_bits", weight_bits, 1, 16)
    ops = 0.0
    for i, (fi, fo) in enumerate(shapes):
        k = 1 if definition == "mac2" else (input_bits if i == 0 else 1) * weight_bits
        ops += 2.0 * fi * fo * k
    return ops


def array_ops_per_cycle(definition: str, rows: int = 128, cols: int = 128, input_bits: int = 5,
                        weight_bits: int = 1) -> float:
    """Peak ops of one classify cycle with every cell of the rows x cols array in use (all rows at input_bits)."""
    check_choice("op definition", definition, OP_DEFINITIONS)
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    k = 1 if definition == "mac2" else check_int("input_bits", input_bits, 1, 16) * check_int(
        "weight_bits", weight_bits, 1, 16)
    return 2.0 * rows * cols * k


def tops_per_w(ops: float, energy_J: float) -> float:
    """Energy efficiency in TOPS/W (= 1e12 ops per joule) of `ops` operations costing `energy_J` joules."""
    return check_nonneg("ops", ops) / check_positive("energy_J", energy_J) / 1e12


def throughput_ops_per_s(ops_per_cycle: float, f_clock: float) -> float:
    """Ops per second at one array evaluation per clock cycle."""
    return check_nonneg("ops_per_cycle", ops_per_cycle) * check_positive("f_clock", f_clock)


def tops_per_mm2(ops_per_s: float, area_m2: float) -> float:
    """Compute density in TOPS/mm2 of `ops_per_s` on `area_m2` square metres."""
    return check_nonneg("ops_per_s", ops_per_s) / 1e12 / (check_positive("area_m2", area_m2) * 1e6)


# ---------------------------------------------------------------------------------------------------------------
# Sensitivity (tornado) and the inverse analysis
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TornadoBar:
    name: str
    low: float
    high: float
    value_low: float     # figure with the parameter at its low end
    value_high: float    # figure with the parameter at its high end
    base: float

    @property
    def span(self) -> float:
        return abs(self.value_high - self.value_low)


def tornado(P, names: Iterable[str], figure: Callable[[object], float]) -> list[TornadoBar]:
    """Evaluate `figure(P')` at each ranged parameter's low and high end (one at a time); widest first."""
    base = float(figure(P))
    bars = []
    for n in names:
        e = P.entry(n)
        if e.low is None:
            raise ValueError(f"parameter {n} has no cited low/high range")
        bars.append(TornadoBar(n, e.low, e.high, float(figure(P.replace(**{n: e.low}))),
                               float(figure(P.replace(**{n: e.high}))), base))
    return sorted(bars, key=lambda b: -b.span)


def solve_parameter(P, name: str, figure: Callable[[object], float], target: float, lo: float, hi: float,
                    log: bool = True, rtol: float = 1e-6, max_iter: int = 200) -> float | None:
    """The value of parameter `name` in [lo, hi] at which figure(P.replace(name=value)) == target (bisection).

    Returns None when the figure does not cross the target inside [lo, hi] (no root bracketed). Bisection on a
    log scale when `log` (lo, hi > 0).
    """
    target = check_real("target", target)
    lo = check_real("lo", lo)
    hi = check_real("hi", hi)
    if not lo < hi:
        raise ValueError(f"bracket lo={lo} must be below hi={hi}")
    if log and lo <= 0:
        raise ValueError(f"lo={lo} must be > 0 for a log-scale bisection")
    f = lambda v: float(figure(P.replace(**{name: v}))) - target  # noqa: E731
    a, b = lo, hi
    fa, fb = f(a), f(b)
    if fa == 0:
        return a
    if fb == 0:
        return b
    if fa * fb > 0:
        return None
    for _ in range(max_iter):
        m = math.sqrt(a * b) if log else 0.5 * (a + b)
        fm = f(m)
        if fm == 0 or abs(b - a) <= rtol * abs(m):
            return m
        if fa * fm < 0:
            b, fb = m, fm
        else:
            a, fa = m, fm
    return math.sqrt(a * b) if log else 0.5 * (a + b)


def energy_ratio(digital_J: float, imc_J: float) -> float:
    """How many times less energy the in-memory chip needs than the digital baseline: digital / imc."""
    return check_positive("digital_J", digital_J) / check_positive("imc_J", imc_J)


def wldac_luts(P=None) -> tuple[np.ndarray, np.ndarray]:
    """Nominal word-line voltage (V) and WLDAC output current (A) for every code 0..2**bits-1 (ibnn.wldac)."""
    import torch

    from .wldac import WLDAC

    P = _params_or_default(P)
    dac = WLDAC(P)
    codes = torch.arange(dac.max_code + 1)
    return dac.code_to_vwl(codes).numpy(), dac.dac_current(codes).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Bit-line swings from the chip model, per classify cycle of the mapped network
# ---------------------------------------------------------------------------------------------------------------
def cell_current_table(chip, k: int = 0):
    """(rows, codes, cols) float64: start-of-pulse current (A) of every cell of chip instance k at every code,
    as the chip evaluates it (`Chip.cell_current(..., exact=False)`; code 0 gives the cell's leakage)."""
    import torch

    R, C, n = chip.rows, chip.cols, chip.max_code + 1
    r = torch.arange(R)[:, None, None]
    code = torch.arange(n)[None, :, None]
    c = torch.arange(C)[None, None, :]
    return chip.cell_current(k, r, c, code, exact=False).to(torch.float64).cpu()


def bitline_drops(chip, codes, chunk: int = 256):
    """Drops (V) of BL and BLB of every column, (n_chips, B, cols, 2) float64 ([..., 0] = BL, [..., 1] = BLB).

    The line swings `ibnn.chip.Chip.evaluate` computes, kept per line instead of as their difference (energy needs
    how far each line fell, the comparator only V_BL - V_BLB): each line's linear swing
    S = t_eval / C_BL * sum of the start-of-pulse currents of the cells that pull it (`Chip.cell_current`, the
    chip's own cell model with its mismatch; rows at code 0 leak), then the closed-form discharge with
    compression and the 0-V floor (`ibnn.column.discharge` with `chip.drain_law`). Consistency with
    `Chip.evaluate(..., return_dv=True)` (dBLB - dBL == dV) is checked in tests/test_energy.py.
    In the ideal mode (every nonideality off: a linear bit-line without floor) the drops are the linear swings
    codes @ [cells on the line] * volts_per_lsb, clipped to [0, VDD] because a physical line cannot fall below 0 V.
    """
    import torch

    from .column import discharge

    if getattr(chip, "weights", None) is None:
        raise ValueError("chip has no weights: call program(weights) (or mapping.program(chip)) first")
    chunk = check_int("chunk", chunk, 1)
    codes = chip.check_codes(codes).cpu()
    shared = codes.dim() == 2
    n, B, R, C = chip.n_chips, codes.shape[-2], chip.rows, chip.cols
    vdd = float(chip.vdd)
    out = torch.empty(n, B, C, 2, dtype=torch.float64)
    w = chip.weights.cpu()
    for k in range(n):
        pos = (w[k] > 0).to(torch.float64)
        x_all = codes if shared else codes[k]
        if chip.nonideal.is_ideal:
            x = x_all.to(torch.float64)
            vpl = float(chip.volts_per_lsb)
            out[k, ..., 1] = (x @ pos * vpl).clamp(0.0, vdd)          # +1 cells pull BLB
            out[k, ..., 0] = (x @ (1 - pos) * vpl).clamp(0.0, vdd)    # -1 cells pull BL
            continue
        table = cell_current_table(chip, k)                            # (R, codes, C)
        scale = float(chip.t_eval) / float(chip.c_bl)
        rows = torch.arange(R)[None, :]
        for b0 in range(0, B, chunk):
            b1 = min(B, b0 + chunk)
            cur = table[rows, x_all[b0:b1].long()]                     # (Bc, R, C)
            s_blb = torch.einsum("brc,rc->bc", cur, pos) * scale
            s_bl = torch.einsum("brc,rc->bc", cur, 1 - pos) * scale
            v = discharge(torch.clamp(torch.stack([s_bl, s_blb], -1), min=0.0), chip.drain_law)
            out[k, b0:b1] = torch.clamp(vdd - v.to(torch.float64), 0.0, vdd)
    return out


@dataclass
class CycleActivity:
    """One classify cycle of a mapped layer over a batch: what the energy model needs.

    codes (B, rows) int64 word-line codes; drops (B, cols, 2) float64 BL/BLB drops (V) of every column;
    input_bits: bits latched per active row; columns: the layer's own columns."""
    layer: int
    codes: np.ndarray
    drops: np.ndarray
    input_bits: int
    columns: list[int]
    register_bits: int | None = None

    def swing_stats(self) -> dict:
        d = self.drops
        own = d[:, self.columns]
        return {"layer": self.layer, "mean_drop_per_line_V": float(d.mean()),
                "mean_drop_per_line_own_columns_V": float(own.mean()),
                "mean_abs_dv_own_columns_V": float(np.abs(own[..., 1] - own[..., 0]).mean()),
                "max_drop_V": float(d.max()), "mean_active_rows": float((self.codes > 0).sum(1).mean()),
                "mean_code_active_rows": float(self.codes[self.codes > 0].mean()) if (self.codes > 0).any()
                else 0.0}


def network_activity(mapping, chip, codes, noise_seed: int = 0, chip_index: int = 0):
    """Run the mapped network on `chip` (one instance: chip_index) and record every layer's classify cycle.

    The chip's own decisions feed the next layer (as on silicon). Returns (labels (B,), [CycleActivity per
    layer]). The labels come from `mapping.run`; the word-line codes of each cycle from `mapping.layer_codes`;
    the drops from `bitline_drops`."""
    import torch

    chip_index = check_int("chip_index", chip_index, 0, chip.n_chips - 1)
    labels, acts = mapping.run(chip, codes, return_layers=True, noise_seed=noise_seed)
    out = []
    inputs = torch.as_tensor(codes).to(torch.int64)
    bits = int(mapping.bits)
    for L in mapping.layers:
        wl = mapping.layer_codes(L.index, inputs)
        drops = bitline_drops(chip, wl)[chip_index]
        out.append(CycleActivity(layer=L.index, codes=wl.cpu().numpy(), drops=drops.numpy(),
                                 input_bits=bits if L.input_kind == "codes" else 1,
                                 columns=[int(c) for c in L.cols],
                                 register_bits=L.fan_in * (bits if L.input_kind == "codes" else 1)))
        inputs = acts[L.index][chip_index].to(torch.int64)
    return labels[chip_index], out


def imc_inference_energy(P, activity: Sequence[CycleActivity], readout: Mapping | None = None,
                         gate_unused_columns: bool = False, luts=None) -> dict:
    """Energy (J) per inference on the in-memory chip: one classify cycle per layer plus the digital readout.

    Returns {"per_layer": [breakdown per cycle], "breakdown": summed breakdown incl. "readout",
    "total_J" (system: everything per inference), "macro_J" (the in-memory macro: everything but the digital
    readout), "array_J" (bit-lines + word lines + WLDACs: the array alone), "n_cycles"}."""
    P = _params_or_default(P)
    v_lut, i_lut = wldac_luts(P) if luts is None else luts
    per_layer = [cycle_energy(P, bl_drops_V=a.drops, codes=a.codes, v_wl_lut_V=v_lut, i_dac_lut_A=i_lut,
                              input_bits=a.input_bits, columns=a.columns,
                              gate_unused_columns=gate_unused_columns, register_bits=a.register_bits)
                 for a in activity]
    bd = sum_breakdowns(per_layer)
    bd.update(readout_energy(P, **(readout or {"kind": "none"})))
    array_J = bd["bitline"] + bd["wordline"] + bd["wldac"]
    tot = total(bd)
    return {"per_layer": per_layer, "breakdown": bd, "total_J": tot, "macro_J": tot - bd["readout"],
            "array_J": array_J, "n_cycles": len(per_layer)}


ARRAY_SCOPE = ("bitline", "wordline", "wldac")


def retimed_chip(chip, P_new):
    """A view of `chip` evaluated with another discharge time and/or bit-line capacitance.

    t_eval and C_BL enter the chip model only through volts_per_lsb = I_LSB * t_eval / C_BL (the cell model, the
    drain law and the mismatch draws do not depend on them), so sweeping them needs no new cell model
    (building one takes seconds). Any other parameter difference raises ValueError: build a new Chip."""
    import copy

    allowed = {"t_eval", "c_bl_per_cell", "c_bl", "volts_per_lsb_nominal"}
    old, new = chip.params.values(), P_new.values()
    diff = sorted(k for k in set(old) | set(new)
                  if k not in allowed and k in chip.params and k in P_new
                  and P_new.entry(k).section == "circuit" and old.get(k) != new.get(k))
    if diff:
        raise ValueError(f"retimed_chip: parameters {diff} differ from the chip's; only t_eval and c_bl_per_cell "
                         f"may change (build a new Chip for the others)")
    out = copy.copy(chip)
    out.params = P_new
    out.t_eval, out.c_bl = P_new["t_eval"], P_new["c_bl"]
    out.volts_per_lsb = chip.i_lsb * out.t_eval / out.c_bl
    return out
