"""One classify cycle of a `Chip` (ibnn.circuit.chip): the exact integer path and the physical path.

The physical path, per group of chips and chunk of inputs: line sums of the factored tables (window charge
included; multiplied out once per group into a table per row, code and line, `factored.code_tables`, and summed
by look-up), the word-line kick (the same table's entries weighted by the coupling factor a(c) of each input's
code, scaled by each input's mean first-pass line drop over all 2 x cols lines), the closed-form discharge, the
comparator offset at each decision's common mode, the temporal noise (comparator + kT/C + shot noise of both
discharges), the decision. On the CPU all of it runs as one compiled loop per chunk (`ibnn.circuit.kernel`, numba);
elsewhere (CUDA, IBNN_KERNEL=0, a drain law the loop does not write out) as the look-ups
(`factored.table_sums`) and the elementwise tail (`ibnn.circuit.fused.tail`).
A column subset (`sel`) is evaluated as part of the full array: the mean drop and the noise draws are those of
the full evaluation, so its decisions equal the full evaluation's in those columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..repro.device import in_shares, torch_threads
from . import fused, kernel
from .column import decide
from .factored import active_rows, chip_generator, code_tables, idle_sums, table_sums

CHUNK = 2048              # inputs per chunk (fixed, so noise streams do not depend on the chip grouping)
GROUP_BYTES = 64 << 20    # memory budget of one group of chips in one chunk


@dataclass
class ChipOutput:
    """What one evaluation returns. decisions: int8 (n_chips, B, cols), +1 iff V_BL - V_BLB (+ offset + noise) >=
    the reference; dv: V_BL - V_BLB (V), (n_chips, B, cols), when asked for (float64 on the ideal path, float32
    otherwise); drops: how far BL ([..., 0]) and BLB ([..., 1]) fell (V), (n_chips, B, cols, 2), when asked for
    (what the energy model needs). With Chip.evaluate(cols=...) the last column axis holds only those columns."""
    decisions: torch.Tensor
    dv: torch.Tensor | None = None
    drops: torch.Tensor | None = None


def _noise(chip, gens, c0, c1, b, threads):
    """One standard normal per decision of the full array (G, b, C) from each chip's noise stream (None without
    temporal noise), so a column subset sees the same draws; the chips' streams drawn on `threads` threads."""
    if not (chip.noise_sigma > 0 or chip.ktc_var > 0):
        return None
    nz = torch.empty(c1 - c0, b, chip.cols, dtype=torch.float32)

    def draw(lo, hi):
        for c in range(lo, hi):
            torch.randn(b, chip.cols, generator=gens[c0 + c], dtype=torch.float32, out=nz[c])

    in_shares(draw, c1 - c0, threads)
    return nz.to(chip.device)


def _group_tables(chip, c0: int, c1: int) -> torch.Tensor:
    """The look-up tables of chips c0..c1-1: line currents per row and code with the window charge, (G, rows, codes,
    2 cols) float32 (the kick's sums weight the same entries by a(c), `factored.table_sums`), built for each
    evaluation from the chip's current factors and weights."""
    return code_tables(chip._u[c0:c1], chip._m[c0:c1].view(c1 - c0, chip.rows, chip.rank, 2 * chip.cols))


def _chunk(chip, tab, cpl, x, shared, nz, ref, off, diff, grid_w, k, kw, use_kernel, want, threads):
    """(decisions, dv, drop_BL, drop_BLB) of one chunk for one group: the compiled loop (`kernel.cycle`) or the
    look-ups (`factored.table_sums`) and the torch tail (`fused.tail`)."""
    if use_kernel:
        active = active_rows(x, chip.rows)
        const_full, const_kick = idle_sums(tab, active, cpl)
        return kernel.cycle(tab, cpl, x, active, const_full, const_kick, nz, ref, off, diff, grid_w, k,
                            ideal=kw["ideal"], want_dv=want[0], want_drops=want[1], threads=threads)
    full, kick = table_sums(tab, cpl, x, shared)                                           # (G, Bc, 2C) LSB
    return fused.tail(full, kick, nz, ref, off, diff, grid_w, k, **kw)


def _bytes_per_chip(chip, use_kernel: bool, want_lines: bool) -> int:
    """Memory one chip of a group takes in one chunk: its float32 look-up table (rows x codes x 2 cols) and, on the
    compiled loop, its noise draws and decisions (and dv and both drops when asked for); on the torch path, the
    tail's temporaries (about 12 float32 values per line and input, `fused.tail`). The chips' results do not depend
    on the grouping (each chip draws its noise from its own stream, chunk by chunk), only the memory and the number
    of calls do."""
    R, C = chip.rows, chip.cols
    table = 4 * R * (chip.max_code + 1) * 2 * C
    if use_kernel:
        return table + CHUNK * C * (4 + 1 + (20 if want_lines else 0))     # (+ dv, both drops and their stack)
    return table + 4 * 12 * CHUNK * 2 * C


def evaluate_physical(chip, codes, theta, sel, want_dv, want_drops, noise_seed, outer_threads):
    """The physical path, chunked over inputs and grouped over chips to bound memory; returns a ChipOutput. Every
    column is evaluated (the word-line kick and the noise draws are those of the full array) and `sel` picks the
    returned ones."""
    dev, n, C = chip.device, chip.n_chips, chip.cols
    shared, B = codes.dim() == 2, codes.shape[-2]
    n_out = C if sel is None else len(sel)
    out = ChipOutput(torch.empty(n, B, n_out, dtype=torch.int8, device=dev),
                     torch.empty(n, B, n_out, dtype=torch.float32, device=dev) if want_dv else None,
                     torch.empty(n, B, n_out, 2, dtype=torch.float32, device=dev) if want_drops else None)
    law = None if (chip.drain_law.ideal or fused.two_piece(chip.drain_law)) else chip.drain_law
    use_kernel = kernel.available(dev, law)
    group = max(1, min(n, GROUP_BYTES // _bytes_per_chip(chip, use_kernel, want_dv or want_drops)))
    gens = [chip_generator(noise_seed, chip.first_chip + c, 1) for c in range(n)]
    ref = torch.zeros(n, C, dtype=torch.float32, device=dev)
    ref[:, slice(None) if sel is None else sel] = (theta * chip.volts_per_lsb).to(torch.float32)      # (n, C) V
    grid, grid_w = fused.cm_table(chip)
    grid_w = grid_w.to(dev)
    k = fused.consts(chip, grid).to(dev)
    kw = dict(ideal=chip.drain_law.ideal, law=law)
    cpl = chip.coupling.to(torch.float32).to(dev) if bool((chip.coupling != 0).any()) else None
    off = chip.offset.to(torch.float32).to(dev)[:, None, :]
    diff = (chip.offset_p - chip.offset_n).to(torch.float32).to(dev)[:, None, :]
    pick = (lambda t: t) if sel is None else (lambda t: t[..., sel])
    for c0 in range(0, n, group):
        c1 = min(n, c0 + group)
        with torch_threads(outer_threads):
            tab = _group_tables(chip, c0, c1)
        for b0 in range(0, B, CHUNK):
            b1 = min(B, b0 + CHUNK)
            x = codes[b0:b1] if shared else codes[c0:c1, b0:b1]
            nz = _noise(chip, gens, c0, c1, b1 - b0, outer_threads)
            dec, dv, d_bl, d_blb = _chunk(chip, tab, cpl, x, shared, nz,
                                          ref[c0:c1, None], off[c0:c1], diff[c0:c1], grid_w, k, kw, use_kernel,
                                          (want_dv, want_drops), outer_threads)
            out.decisions[c0:c1, b0:b1] = pick(dec)
            if want_dv:
                out.dv[c0:c1, b0:b1] = pick(dv)
            if want_drops:
                out.drops[c0:c1, b0:b1] = torch.stack([pick(d_bl), pick(d_blb)], -1)
    return out


def evaluate_ideal(chip, codes, theta, sel, want_dv, want_drops):
    """Exact integer arithmetic: dot = codes @ W in float64, decisions = +1 iff dot >= theta."""
    w = chip.weights.to(torch.float64)                                                    # (n, R, C)
    if sel is not None:
        w = w[..., sel]
    x = codes.to(torch.float64)
    mm = (lambda a: torch.matmul(x, a)) if codes.dim() == 3 else (lambda a: torch.einsum("br,nrc->nbc", x, a))
    dot = mm(w)
    out = ChipOutput(decide(dot, theta[:, None, :]), dot * chip.volts_per_lsb if want_dv else None)
    if want_drops:             # linear lines without floor, clipped: a physical line cannot fall below 0 V
        pos = (w > 0).to(torch.float64)
        out.drops = torch.stack([mm(1 - pos), mm(pos)], -1).mul(chip.volts_per_lsb).clamp(0.0, chip.vdd)
    return out
