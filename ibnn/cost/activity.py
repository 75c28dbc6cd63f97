"""What the energy model needs from a run of the mapped network on a chip: every cycle's word-line codes, how far
each bit-line fell (the chip's own line sums, `Chip.evaluate(drops=True)`), and the start-of-pulse current of each
row's cells (`Chip.row_currents`: what they draw against the precharge while the word lines rise)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..validate import check_int


@dataclass
class CycleActivity:
    """One classify cycle of a mapped layer over a batch: what the energy model needs.

    codes (B, rows) int64 word-line codes; drops (B, cols, 2) float64 BL/BLB drops (V) of every column;
    input_bits: bits latched per active row; columns: the layer's own columns; row_current_all / row_current_own
    (rows, codes) float64: each row's start-of-pulse cell current (A) summed over all columns / over the layer's
    own columns (None: nominal cells)."""
    layer: int
    codes: np.ndarray
    drops: np.ndarray
    input_bits: int
    columns: list[int]
    register_bits: int | None = None
    row_current_all: np.ndarray | None = None
    row_current_own: np.ndarray | None = None

    def row_current(self, gated: bool):
        """The row currents of the read columns: the layer's own if unused columns are gated, else all."""
        return self.row_current_own if gated else self.row_current_all

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


@dataclass
class NetworkRun:
    """A run of the mapped network on a chip: labels of every instance (n_chips, B) and the activity (one
    CycleActivity per on-array layer) of instance `chip_index`."""
    labels: torch.Tensor
    activity: list
    chip_index: int


def network_run(mapping, chip, codes, noise_seed: int = 0, chip_index: int = 0) -> NetworkRun:
    """Run the mapped network on `chip` and record every layer's classify cycle of instance `chip_index`.

    The chip's own decisions feed the next layer (as on silicon). The drops of every line are the ones the chip
    computed for its decisions (`RunResult.drops`: one set of line sums, nothing recomputed); the word-line codes
    of each cycle come from `mapping.layer_codes` of that layer's inputs, the row currents from the chip's own
    tables (`Chip.row_currents`)."""
    chip_index = check_int("chip_index", chip_index, 0, chip.n_chips - 1)
    res = mapping.run(chip, codes, layers=True, drops=True, noise_seed=noise_seed)
    out, inputs, bits = [], torch.as_tensor(codes).to(torch.int64), int(mapping.bits)
    for L in mapping.layers:
        wl = mapping.layer_codes(L.index, inputs)
        in_bits = bits if L.input_kind == "codes" else 1
        out.append(CycleActivity(layer=L.index, codes=wl.cpu().numpy().astype(np.int64),
                                 drops=res.drops[L.index][chip_index].to(torch.float64).numpy(),
                                 input_bits=in_bits, columns=[int(c) for c in L.cols],
                                 register_bits=L.fan_in * in_bits,
                                 row_current_all=chip.row_currents(chip_index).numpy(),
                                 row_current_own=chip.row_currents(chip_index, L.cols).numpy()))
        inputs = res.activations[L.index][chip_index].to(torch.int64)
    return NetworkRun(res.labels, out, chip_index)


def network_activity(mapping, chip, codes, noise_seed: int = 0, chip_index: int = 0):
    """(labels of instance chip_index (B,), [CycleActivity per layer]) of `network_run`."""
    run = network_run(mapping, chip, codes, noise_seed, chip_index)
    return run.labels[run.chip_index], run.activity
