"""What the energy model needs from a run of the mapped network on a chip: every cycle's word-line codes and how
far each bit-line fell."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..circuit.column import discharge
from ..validate import check_int


def cell_current_table(chip, k: int = 0):
    """(rows, codes, cols) float64: start-of-pulse current (A) of every cell of chip instance k at every code,
    as the chip evaluates it (`Chip.cell_current(..., exact=False)`; code 0 gives the cell's leakage)."""

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
    `Chip.evaluate(..., dv=True)` (dBLB - dBL == dV) is checked in tests/test_energy.py.
    In the ideal mode (every nonideality off: a linear bit-line without floor) the drops are the linear swings
    codes @ [cells on the line] * volts_per_lsb, clipped to [0, VDD] because a physical line cannot fall below 0 V.
    """


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
        """Mean and largest bit-line drops, mean |dV| of the layer's own columns, active rows and their mean code."""
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

    chip_index = check_int("chip_index", chip_index, 0, chip.n_chips - 1)
    res = mapping.run(chip, codes, layers=True, noise_seed=noise_seed)
    labels, acts = res.labels, res.activations
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


def retimed_chip(chip, P_new):
    """A view of `chip` evaluated with another discharge time and/or bit-line capacitance.

    t_eval and C_BL enter the chip model only through volts_per_lsb = I_LSB * t_eval / C_BL (the cell model, the
    drain law and the mismatch draws do not depend on them), so sweeping them needs no new cell model
    (building one takes seconds). Any other parameter difference raises ValueError: build a new Chip."""

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
