"""One classify cycle of a group of chips on the CPU as one compiled loop (numba): look-ups, kick, discharge, decision.

The table formulation (ibnn.circuit.factored) makes a chip's line sums rows x 2 cols gathered additions per input,
and the rest of the cycle (ibnn.circuit.fused) is elementwise. Written as torch operations the two are separate
passes over memory: the look-ups read a 4-MB table per chip from the last-level cache for every input, and the
tail's dozens of elementwise steps stream the (inputs x 2 cols) sums through memory again. `cycle` does both in one
pass per block of BLOCK inputs, with the block's sums held in the core's cache:

- for each active row, in order, and each input of the block: add the row's table entry at the input's code to the
  window-charge sum and, times the code's coupling factor a(c), to the word-line-kick sum (the kick table is the
  window table scaled by a(c): one table read serves both sums);
- then, per input, the three stages of `fused.tail`: the mean first-pass drop over all 2 cols lines, the final
  lines, and the decisions (offset at each decision's common mode, temporal noise, reference; ties +1).

It computes the expressions of `fused.tail` in float32, in the same order, except the mean drop, summed
sequentially in float64 (torch sums pairwise in float32); `exp` is numba's (LLVM's) rather than torch's vectorised
one. So its values differ from the torch path only in float32 rounding, and a decision can change only where it lies
within that rounding of its reference (tests/test_speed_paths.py bounds both). Compiled on first use and cached on
disk (numba `cache=True`): seconds once per installation, then a fraction of a second per process.

`available()` says where it applies: the CPU, numba importable, and a drain law that `fused` writes out (ideal or
two exponential pieces); elsewhere the torch path runs (IBNN_KERNEL=0 forces it).
"""
from __future__ import annotations

import os

import numpy as np
import torch

try:                      # numba compiles the loops below; without it the chip runs its torch path
    import numba
    from numba import prange
    _jit = numba.njit(cache=True, boundscheck=False, nogil=True)
    _parallel_jit = numba.njit(parallel=True, cache=True, boundscheck=False, nogil=True)
except ImportError:       # pragma: no cover (numba is pinned in requirements.txt)
    numba, prange = None, range
    _jit = _parallel_jit = lambda f: f

BLOCK = 64                # inputs per block: 2 x 64 x 256 float32 sums (128 KB) stay in the core's L2 cache


def available(device, law) -> bool:
    """Whether `cycle` can run this evaluation: on the CPU, IBNN_KERNEL not 0, numba importable, and `law` None
    (ideal or two-piece: what `fused` writes out)."""
    env = os.environ.get("IBNN_KERNEL", "1")
    if env not in ("0", "1"):
        raise ValueError(f"IBNN_KERNEL={env!r} is not accepted; accepted: '1' (the default: the chip's cycle runs "
                         f"as one compiled loop on the CPU where numba is installed) or '0' (the torch path)")
    return env == "1" and torch.device(device).type == "cpu" and law is None and numba is not None


def _np(t: torch.Tensor) -> np.ndarray:
    """A contiguous numpy view of a CPU tensor (a copy only where it is not contiguous)."""
    return t.detach().contiguous().numpy()


def cycle(tab, cpl, x, active, const_full, const_kick, nz, ref, off, diff, grid_w, k, *, ideal: bool,
          want_dv: bool, want_drops: bool, threads: int):
    """Decisions (G, Bc, C) int8 and, when asked for, dv, drop_BL, drop_BLB (G, Bc, C) float32 (else None) of one
    chunk for a group of G chips.

    Args:
        tab: the window-charge tables (G, rows, codes, 2 C) float32 (`factored.code_tables`); cpl: a(c) per code
            (codes,) float32, None without the word-line kick; x: codes (Bc, rows) shared by the chips or
            (G, Bc, rows); active: the rows whose code is not 0 for some input of the chunk (int64, ascending);
            const_full, const_kick: the other rows' sums (G, 2 C) float32, added once as `factored.table_sums`
            does (`factored.idle_sums`; const_kick None without the kick);
        nz: standard normals (G, Bc, C) or None; ref, off, diff: (G, 1, C) as in `fused.tail`; grid_w, k: the
            comparator's grid weights and `fused.consts`; threads: numba threads for the chunk."""
    G, _, _, L = tab.shape
    C = L // 2
    xs = x if x.dim() == 3 else x.unsqueeze(0)
    bc = xs.shape[1]
    dec = np.empty((G, bc, C), dtype=np.int8)
    shape = (G, bc, C) if (want_dv or want_drops) else (1, 1, 1)
    dv, d_bl, d_blb = (np.empty(shape, dtype=np.float32) for _ in range(3))
    noise = _np(nz) if nz is not None else np.zeros((1, 1, 1), dtype=np.float32)
    kick = cpl is not None
    if not kick:                          # the loop's arguments keep their types: unused stand-ins
        cpl, const_kick = tab.new_zeros(1), const_full
    flags = np.array([kick, nz is not None, ideal, want_dv, want_drops], dtype=np.bool_)
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        _cycle(_np(tab), _np(cpl), _np(xs.to(torch.int64)), _np(active), _np(const_full), _np(const_kick), noise,
               _np(ref.reshape(G, C)), _np(off.reshape(G, C)), _np(diff.reshape(G, C)), _np(grid_w), _np(k), flags,
               dec, dv, d_bl, d_blb)
    finally:
        numba.set_num_threads(old)
    out = torch.from_numpy(dec)
    if not (want_dv or want_drops):
        return out, None, None, None
    return out, torch.from_numpy(dv), torch.from_numpy(d_bl), torch.from_numpy(d_blb)


@_jit
def _look_kick(tab, cpl, x, active, b0, nb, s_full, s_kick):
    """The look-ups of one block with the kick: rows in order (as embedding_bag), one table read for both sums."""
    L = tab.shape[2]
    for ii in range(active.shape[0]):
        i = active[ii]
        for b in range(nb):
            c = x[b0 + b, i]
            a = cpl[c]
            for j in range(L):
                v = tab[i, c, j]
                s_full[b, j] += v
                s_kick[b, j] += a * v


@_jit
def _look(tab, x, active, b0, nb, s_full):
    """The look-ups of one block without the kick."""
    L = tab.shape[2]
    for ii in range(active.shape[0]):
        i = active[ii]
        for b in range(nb):
            c = x[b0 + b, i]
            for j in range(L):
                s_full[b, j] += tab[i, c, j]


@_parallel_jit
def _cycle(tab, cpl, x, active, const_full, const_kick, nz, ref, off, diff, grid_w, k, flags, dec, dv, d_bl,
           d_blb):  # long: one loop nest the compiler fuses; its steps are fused.tail's, in order
    """The loop `cycle` compiles (see the module docstring)."""
    G, _, _, L = tab.shape
    C = L // 2
    bc = x.shape[1]
    n_blk = (bc + BLOCK - 1) // BLOCK
    has_kick, has_noise, ideal, want_dv, want_drops = flags[0], flags[1], flags[2], flags[3], flags[4]
    zero, two, n_grid = np.float32(0.0), np.float32(2.0), grid_w.shape[0]
    vpl, vdd, s_knee, b1, b2, c1, r1, c2, r2 = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    cm_scale, cm_v0, cm_step, cm_last, var0, shot = k[9], k[10], k[11], k[12], k[13], k[14]
    for task in prange(G * n_blk):
        g, b0 = task // n_blk, (task % n_blk) * BLOCK
        nb = min(bc, b0 + BLOCK) - b0
        gx = g if x.shape[0] > 1 else 0
        s_full = np.zeros((BLOCK, L), dtype=np.float32)
        s_kick = np.zeros((BLOCK, L) if has_kick else (1, 1), dtype=np.float32)
        if has_kick:
            _look_kick(tab[g], cpl, x[gx], active, b0, nb, s_full, s_kick)
        else:
            _look(tab[g], x[gx], active, b0, nb, s_full)
        for b in range(nb):
            drop = zero
            if has_kick:                                        # stage 1: the mean first-pass drop
                acc = 0.0
                for j in range(L):
                    sw = (s_full[b, j] + const_full[g, j]) * vpl
                    if ideal:
                        acc += min(max(sw, zero), vdd)
                    else:
                        s = max(sw, zero)
                        line = c1 * np.exp(-b1 * s) - r1 if s <= s_knee else c2 * np.exp(-b2 * (s - s_knee)) - r2
                        acc += min(max(vdd - max(line, zero), zero), vdd)
                drop = np.float32(acc / L)
            for j in range(L):                                  # stage 2: the final lines (in place)
                sw = (s_full[b, j] + const_full[g, j]) * vpl
                if has_kick:
                    sw = sw - drop * ((s_kick[b, j] + const_kick[g, j]) * vpl)
                if ideal:
                    s_full[b, j] = sw
                else:
                    s = max(sw, zero)
                    line = c1 * np.exp(-b1 * s) - r1 if s <= s_knee else c2 * np.exp(-b2 * (s - s_knee)) - r2
                    s_full[b, j] = max(line, zero)
            for col in range(C):                                # stage 3: the decisions
                blb, bl = s_full[b, col], s_full[b, C + col]
                if ideal:
                    v_dv = blb - bl
                    dd_bl, dd_blb = min(max(bl, zero), vdd), min(max(blb, zero), vdd)
                else:
                    v_dv = bl - blb
                    dd_bl, dd_blb = min(max(vdd - bl, zero), vdd), min(max(vdd - blb, zero), vdd)
                dsum = dd_bl + dd_blb
                t = min(max((vdd - dsum / two - cm_v0) / cm_step, zero), cm_last)
                gi = int(np.floor(t))
                w0, w1 = grid_w[gi], grid_w[min(gi + 1, n_grid - 1)]
                xv = v_dv + (off[g, col] + cm_scale * (w0 + (t - np.float32(gi)) * (w1 - w0)) * diff[g, col])
                if has_noise:
                    xv = xv + np.sqrt(var0 + shot * dsum) * nz[g, b0 + b, col]
                dec[g, b0 + b, col] = 1 if xv >= ref[g, col] else -1
                if want_dv or want_drops:
                    dv[g, b0 + b, col] = v_dv
                    d_bl[g, b0 + b, col] = dd_bl
                    d_blb[g, b0 + b, col] = dd_blb
