"""The bit-line precharge devices while the word lines rise: sized to hold the worst-case line near VDD.

With the word lines settling under the precharge (ibnn.circuit.wordline) every active cell draws its current
from VDD through its line's precharge PMOS for most of the cycle. The PMOS (in triode, gate at 0 V, L = l_access)
must hold a line carrying the array's worst case, every row at full code on that line, within precharge_sag_max
of VDD: R_on = sag / I_worst, W = L / (mu_eff_p C_ox (VDD - vt0_p) R_on). Its gate (C_ox W L plus two overlaps
of c_ov_per_width) is switched every cycle: `PrechargeDevice.gate_energy` per line. The sag itself is to first
order a uniform gain on every swing, R_on C_BL / t_eval (the line current flows through R_on before the window
and through C_BL in it), which the chip model leaves out (stated and bounded here)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import params as _params
from .bitcell import BitCell
from .wldac import nominal_dac


@dataclass(frozen=True)
class PrechargeDevice:
    """The sized precharge PMOS of one bit-line: worst-case current (A), on-resistance (Ohm), width (m), gate
    capacitance (F), switched energy per cycle (J) and the gain error R_on C_BL / t_eval it leaves out."""
    i_worst: float
    r_on: float
    width: float
    c_gate: float
    gate_energy: float
    gain_error: float


@_params.cached_per_set(32)
def precharge_device(P: _params.ParamSet) -> PrechargeDevice:
    """The precharge PMOS of P (see the module docstring), cached per parameter values within the process."""
    return _size(P)


def _size(P) -> PrechargeDevice:
    cell = BitCell(P)
    dac = nominal_dac(P)
    i_full = float(cell.current(dac.code_to_vwl(torch.tensor(dac.max_code)), P["vdd"]))
    i_worst = P.int("array_rows") * i_full
    r_on = P["precharge_sag_max"] / i_worst
    width = P["l_access"] / (P["mu_eff_p"] * P["cox"] * (P["vdd"] - P["vt0_p"]) * r_on)
    c_gate = width * (P["cox"] * P["l_access"] + 2 * P["c_ov_per_width"])
    return PrechargeDevice(i_worst=i_worst, r_on=r_on, width=width, c_gate=c_gate,
                           gate_energy=c_gate * P["vdd"] ** 2, gain_error=r_on * P["c_bl"] / P["t_eval"])
