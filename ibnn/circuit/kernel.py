"""One classify cycle of a group of chips on the CPU as one compiled loop (numba): look-ups, kick, discharge, decision.

The table formulation (ibnn.circuit.factored) makes a chip's line sums rows x 2 cols gathered additions per input,
and the rest of the cycle (ibnn.circuit.fused) is elementwise. Written as torch operations the two are separate
passes over memory: the look-ups read a 4-MB table per chip from the last-level cache for every input, and the
tail's dozens of elementwise steps stream the (inputs x 2 cols) sums through memory again. `cycle` does both in one
pass per block of BLOCK inputs, with the block's sums held in the core's cache:

- for each group of four active rows (`_look_kick`) and each input of the block: add the rows' table entries at
  the input's codes, pairwise ((t1 + t2) + (t3 + t4)), to the window-charge sum and, each times its code's coupling
  factor a(c), to the word-line-kick sum (the kick table is the window table scaled by a(c): one table read serves
  both sums, and each sum is read and written once per four rows);
- then, per input, the three stages of `fused.tail`: the mean first-pass drop over all 2 cols lines, the final
  lines, and the decisions (offset at each decision's common mode, temporal noise, reference; ties +1), each a loop
  over the lines or columns that the compiler vectorises.

It computes the expressions of `fused.tail` in float32, in the same order, except three: the rows' sums are added
four at a time (torch adds them one by one), the mean drop is summed in vector lanes (torch sums in blocks too),
and `exp` is `expf` below (Cephes' polynomial, written out so that it vectorises) rather than torch's. So its
values differ from the torch path only in float32 rounding, and a decision can change only where it lies within
that rounding of its reference (tests/test_speed_paths.py bounds both). Compiled on first use and cached on disk
(numba `cache=True`): seconds once per installation, then a fraction of a second per process.

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
    _lanes_jit = numba.njit(cache=True, boundscheck=False, nogil=True, fastmath={"reassoc"})   # sums in lanes
except ImportError:       # pragma: no cover (numba is pinned in requirements.txt)
    numba, prange = None, range
    _jit = _parallel_jit = _lanes_jit = lambda f: f

BLOCK = 64                # inputs per block: 2 x 64 x 256 float32 sums (128 KB) stay in the core's L2 cache


def available(device, law) -> bool:
    """Whether `cycle` can run this evaluation: on the CPU, IBNN_KERNEL not 0, numba importable, and `law` None
    (ideal or two-piece: what `fused` writes out)."""
    env = os.environ.get("IBNN_KERNEL", "1")
    if env not in ("0", "1"):
        raise ValueError(f"IBNN_KERNEL={env!r} is not accepted; accepted: '1' (the default: the chip's cycle runs "
                         f"as one compiled loop on the CPU where numba is installed) or '0' (the torch path)")
    return env == "1" and torch.device(device).type == "cpu" and law is None and numba is not None


def lookup_operations(x: torch.Tensor, cols: int, kick: bool) -> int:
    """Floating-point operations of the cycle's look-ups for the word-line codes x (..., rows): every driven cell
    (code not 0) adds its table entry to the window-charge sum and, times its code's coupling factor, to the kick
    sum (kick True), on both lines of its column, as a vector unit with one lane per column computes them (the line
    the cell does not pull gets its entry, an exact 0). A row at code 0 adds the same leakage for every input, so it
    can be summed once and is not counted. That makes 2 cols operations (an add; a multiply-add for the kick) per
    driven cell and sum, against the rows x cols multiply-adds of the matrix product of the same shape
    (benchmarks/bench_chip.py and bench_mapping.py print this count as the look-ups' floor).

    >>> lookup_operations(torch.tensor([[0, 3], [31, 1]]), cols=4, kick=True)
    48
    """
    return int(torch.count_nonzero(x)) * 2 * cols * (2 if kick else 1)


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
    """The look-ups of one block with the kick, four rows at a time: one table read for both
    sums, and each sum read and written once per four rows (their partial sums pairwise: (t1 + t2) + (t3 + t4))."""
    L = tab.shape[2]
    na = active.shape[0]
    n4 = na - na % 4
    for ii in range(0, n4, 4):
        i1, i2, i3, i4 = active[ii], active[ii + 1], active[ii + 2], active[ii + 3]
        for b in range(nb):
            xb = x[b0 + b]
            c1, c2, c3, c4 = xb[i1], xb[i2], xb[i3], xb[i4]
            a1, a2, a3, a4 = cpl[c1], cpl[c2], cpl[c3], cpl[c4]
            t1, t2, t3, t4 = tab[i1, c1], tab[i2, c2], tab[i3, c3], tab[i4, c4]
            sf, sk = s_full[b], s_kick[b]
            for j in range(L):
                v1, v2, v3, v4 = t1[j], t2[j], t3[j], t4[j]
                sf[j] += (v1 + v2) + (v3 + v4)
                sk[j] += (a1 * v1 + a2 * v2) + (a3 * v3 + a4 * v4)
    for ii in range(n4, na):                                    # the last active rows, one at a time
        i = active[ii]
        for b in range(nb):
            c = x[b0 + b, i]
            a = cpl[c]
            t = tab[i, c]
            sf, sk = s_full[b], s_kick[b]
            for j in range(L):
                v = t[j]
                sf[j] += v
                sk[j] += a * v


@_jit
def _look(tab, x, active, b0, nb, s_full):
    """The look-ups of one block without the kick (four rows at a time, as `_look_kick`)."""
    L = tab.shape[2]
    na = active.shape[0]
    n4 = na - na % 4
    for ii in range(0, n4, 4):
        i1, i2, i3, i4 = active[ii], active[ii + 1], active[ii + 2], active[ii + 3]
        for b in range(nb):
            xb = x[b0 + b]
            t1, t2, t3, t4 = tab[i1, xb[i1]], tab[i2, xb[i2]], tab[i3, xb[i3]], tab[i4, xb[i4]]
            sf = s_full[b]
            for j in range(L):
                sf[j] += (t1[j] + t2[j]) + (t3[j] + t4[j])
    for ii in range(n4, na):
        i = active[ii]
        for b in range(nb):
            t = tab[i, x[b0 + b, i]]
            sf = s_full[b]
            for j in range(L):
                sf[j] += t[j]


@_parallel_jit
def _cycle(tab, cpl, x, active, const_full, const_kick, nz, ref, off, diff, grid_w, k, flags, dec, dv, d_bl,
           d_blb):
    """The loop `cycle` compiles (see the module docstring): per task, one block of one chip."""
    G, _, _, L = tab.shape
    C = L // 2
    bc = x.shape[1]
    n_blk = (bc + BLOCK - 1) // BLOCK
    has_kick, has_noise, ideal, want_dv, want_drops = flags[0], flags[1], flags[2], flags[3], flags[4]
    for task in prange(G * n_blk):
        g, b0 = task // n_blk, (task % n_blk) * BLOCK
        nb = min(bc, b0 + BLOCK) - b0
        gx = g if x.shape[0] > 1 else 0
        s_full = np.zeros((BLOCK, L), dtype=np.float32)
        s_kick = np.zeros((BLOCK, L) if has_kick else (1, 1), dtype=np.float32)
        t_buf, w_buf = np.empty(C, dtype=np.float32), np.empty(C, dtype=np.float32)
        if has_kick:
            _look_kick(tab[g], cpl, x[gx], active, b0, nb, s_full, s_kick)
        else:
            _look(tab[g], x[gx], active, b0, nb, s_full)
        for b in range(nb):
            sf = s_full[b]
            if has_kick:                                        # stages 1 and 2: the final lines (in place)
                drop = _mean_drop(sf, const_full[g], k, ideal)
                _final_kick(sf, const_full[g], s_kick[b], const_kick[g], drop, k, ideal)
            else:
                _final(sf, const_full[g], k, ideal)
            nzr = nz[g, b0 + b] if has_noise else nz[0, 0]      # stage 3: the decisions
            _decide(sf, nzr, ref[g], off[g], diff[g], grid_w, k, ideal, has_noise, dec[g, b0 + b], t_buf, w_buf)
            if want_dv or want_drops:
                _drops(sf, k, ideal, dv[g, b0 + b], d_bl[g, b0 + b], d_blb[g, b0 + b])


# expf as Cephes' single-precision exp (Moshier, Methods and Programs for Mathematical Functions, 1989; cephes
# expf.c): e^x = 2^n e^r, n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts), e^r by its degree-7 polynomial;
# 2^n built from its exponent bits. Written out so that the compiler vectorises the loops that call it (a call to
# libm's expf is scalar); within 2 ulp of the float64 exp on [-87, 88] (tests/test_speed_paths.py), and arguments
# are clamped to that range (below it, e^x < 2e-38: no line voltage moves by a representable amount).
_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.44269504088896341), np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_LO, _EXP_HI, _HALF, _ONE = np.float32(-87.0), np.float32(88.0), np.float32(0.5), np.float32(1.0)
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)


if numba is not None:
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _f32_bits(typingctx, bits):
        """The float32 whose bit pattern is the int32 `bits`."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return types.float32(types.int32), codegen
else:             # pragma: no cover
    def _f32_bits(bits):
        return np.array([bits], dtype=np.int32).view(np.float32)[0]


@_jit
def expf(x):
    """e^x of a float32 (see above)."""
    x = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(x * _LOG2E + _HALF)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    return (p * (r * r) + r + _ONE) * _f32_bits((np.int32(n) + np.int32(127)) << np.int32(23))


@_jit
def _line(s, s_knee, b1, b2, c1, r1, c2, r2):
    """The final voltage (V) of a line of linear swing s >= 0 (V): the two exponential pieces of `fused._voltages`
    (the constants of `fused.consts`)."""
    low = s <= s_knee
    e = expf(-b1 * s if low else -b2 * (s - s_knee))
    v = c1 * e - r1 if low else c2 * e - r2
    return max(v, np.float32(0.0))


@_lanes_jit
def _mean_drop(sf, cf, k, ideal):
    """Stage 1: an input's mean first-pass drop (V) over its 2 C lines (`reassoc` lets the compiler split the
    float32 sum into vector lanes, as torch sums it in blocks)."""
    L = sf.shape[0]
    zero, vpl, vdd = np.float32(0.0), k[0], k[1]
    s_knee, b1, b2, c1, r1, c2, r2 = k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    acc = zero
    if ideal:
        for j in range(L):
            acc += min(max((sf[j] + cf[j]) * vpl, zero), vdd)
    else:
        for j in range(L):
            acc += min(max(vdd - _line(max((sf[j] + cf[j]) * vpl, zero), s_knee, b1, b2, c1, r1, c2, r2), zero), vdd)
    return np.float32(acc / L)


@_jit
def _final_kick(sf, cf, sk, ck, drop, k, ideal):
    """Stage 2 with the kick, in place: the swings full x V/LSB - drop x kick x V/LSB, and their lines."""
    vpl, zero = k[0], np.float32(0.0)
    s_knee, b1, b2, c1, r1, c2, r2 = k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    if ideal:
        for j in range(sf.shape[0]):
            sf[j] = (sf[j] + cf[j]) * vpl - drop * ((sk[j] + ck[j]) * vpl)
    else:
        for j in range(sf.shape[0]):
            sf[j] = _line(max((sf[j] + cf[j]) * vpl - drop * ((sk[j] + ck[j]) * vpl), zero), s_knee, b1, b2, c1, r1,
                             c2, r2)


@_jit
def _final(sf, cf, k, ideal):
    """Stage 2 without the kick, in place."""
    vpl, zero = k[0], np.float32(0.0)
    s_knee, b1, b2, c1, r1, c2, r2 = k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    if ideal:
        for j in range(sf.shape[0]):
            sf[j] = (sf[j] + cf[j]) * vpl
    else:
        for j in range(sf.shape[0]):
            sf[j] = _line(max((sf[j] + cf[j]) * vpl, zero), s_knee, b1, b2, c1, r1, c2, r2)


@_jit
def _decide(sf, nzr, refg, offg, diffg, grid_w, k, ideal, has_noise, out, t, w):
    """Stage 3 for one input's lines sf (2 C; BLBs first): the offset at each decision's common mode, the noise of
    both discharges, the comparison with the reference (ties +1), into out (C,) int8; t, w (C,) float32 scratch.
    Three loops, so that the first and the last vectorise: the grid position of each common mode, the offset's
    weight interpolated on the grid (a gather), the decisions."""
    C = out.shape[0]
    zero, two, vdd = np.float32(0.0), np.float32(2.0), k[1]
    cm_scale, cm_v0, cm_step, cm_last, var0, shot = k[9], k[10], k[11], k[12], k[13], k[14]
    last = grid_w.shape[0] - 1
    for col in range(C):
        dsum = _dsum(sf[col], sf[C + col], vdd, ideal)
        t[col] = min(max((vdd - dsum / two - cm_v0) / cm_step, zero), cm_last)
    for col in range(C):
        gi = int(t[col])                                        # t >= 0: truncation is the floor
        w0, w1 = grid_w[gi], grid_w[min(gi + 1, last)]
        w[col] = w0 + (t[col] - np.float32(gi)) * (w1 - w0)
    if has_noise:
        for col in range(C):
            blb, bl = sf[col], sf[C + col]
            dsum = _dsum(blb, bl, vdd, ideal)
            xv = ((blb - bl) if ideal else (bl - blb)) + (offg[col] + cm_scale * w[col] * diffg[col])
            xv = xv + np.sqrt(var0 + shot * dsum) * nzr[col]
            out[col] = 1 if xv >= refg[col] else -1
    else:
        for col in range(C):
            blb, bl = sf[col], sf[C + col]
            xv = ((blb - bl) if ideal else (bl - blb)) + (offg[col] + cm_scale * w[col] * diffg[col])
            out[col] = 1 if xv >= refg[col] else -1


@_jit
def _dsum(blb, bl, vdd, ideal):
    """drop_BL + drop_BLB (V) of a column's two lines."""
    zero = np.float32(0.0)
    if ideal:
        return min(max(bl, zero), vdd) + min(max(blb, zero), vdd)
    return min(max(vdd - bl, zero), vdd) + min(max(vdd - blb, zero), vdd)


@_jit
def _drops(sf, k, ideal, dv, d_bl, d_blb):
    """dv and the drops of BL and BLB (V) of one input's lines, into dv, d_bl, d_blb (C,) each."""
    C = dv.shape[0]
    zero, vdd = np.float32(0.0), k[1]
    for col in range(C):
        blb, bl = sf[col], sf[C + col]
        if ideal:
            dv[col], d_bl[col], d_blb[col] = blb - bl, min(max(bl, zero), vdd), min(max(blb, zero), vdd)
        else:
            dv[col], d_bl[col], d_blb[col] = bl - blb, min(max(vdd - bl, zero), vdd), min(max(vdd - blb, zero), vdd)


def precompile() -> None:
    """Compile `cycle`'s loop (or load it from numba's cache) on a tiny input of the types the chip passes, so that
    processes started together afterwards (test workers, notebooks) load it instead of each compiling it
    (`python -m ibnn.circuit.precompile`)."""
    if numba is None:     # pragma: no cover
        return
    G, R, n_codes, C, B = 1, 5, 3, 2, 3
    f32 = np.float32
    tab = np.ones((G, R, n_codes, 2 * C), dtype=f32)
    x = np.zeros((1, B, R), dtype=np.int64)
    x[0, :, :] = 1
    flags = np.array([True, True, False, True, True], dtype=np.bool_)
    dec = np.empty((G, B, C), dtype=np.int8)
    outs = [np.empty((G, B, C), dtype=f32) for _ in range(3)]
    _cycle(tab, np.ones(n_codes, dtype=f32), x, np.arange(R, dtype=np.int64), np.zeros((G, 2 * C), dtype=f32),
           np.zeros((G, 2 * C), dtype=f32), np.zeros((G, B, C), dtype=f32), np.zeros((G, C), dtype=f32),
           np.zeros((G, C), dtype=f32), np.zeros((G, C), dtype=f32), np.zeros(2, dtype=f32),
           np.ones(15, dtype=f32), flags, dec, *outs)
