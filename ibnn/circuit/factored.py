"""The per-row factored cell-current tables that make a simulated chip fast, and the line sums built from them.

For every chip and row the exact table T_i[c, j] = I_ij(code c) / I_LSB (codes x columns, each cell with its own
mismatch) is factored by a truncated SVD, T_i ~ A_i B_i with K terms: K is the smallest rank whose Frobenius
residual, over every chip and row, is below RANK_TOL = 0.01 LSB (so the error of any single cell current is below
it too). The line sums of a batch of inputs are then one matrix product per chip:
S_line[b, j] = sum_{i, r} A_i[c_bi, r] M_line[(i, r), j], M_line = B_i[r, j] [w_ij on that line]. The chip
multiplies the factors out once per evaluation into a table per row, code and line (A_i M_i: rows x codes x
2 cols, `code_tables`), so the line sums of a batch are one summed look-up per row and input (`table_sums`): rows x
2 cols additions per input instead of K x rows x 2 cols multiply-adds; the word-line kick's sums read the same table,
weighted by the coupling factor of each input's code. Rows whose code is 0 for every input of a chunk are added
once as their (input-independent) leakage.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..repro.device import in_shares, torch_threads

RANK_MAX = 6              # most terms of the per-row separable approximation
RANK_TOL = 0.01           # LSB: bound on the Frobenius residual of each row's table (so on any single cell)


def chip_generator(seed: int, k: int, stream: int = 0) -> torch.Generator:
    """The CPU generator of chip instance k of `seed` (stream 0: static mismatch, 1: temporal noise), from a numpy
    SeedSequence, so chip k is the same whatever batch it is drawn in."""
    state = np.random.SeedSequence([seed, k, stream]).generate_state(2, np.uint32)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


@dataclass
class StandardDraws:
    """Standard-normal draws of every static mismatch of n chips, in the fixed order each chip draws them:
    cell dVt (n, rows, cols), cell dbeta (n, rows, cols), WLDAC bit errors (n, rows, bits), comparator
    offsets (n, cols), then the mechanisms added later, after all of those (so the earlier draws of a seed are
    unchanged): replica (dVt, dbeta) per row (n, rows, 2), the PMOS pair's offset of each comparator (n, cols).
    A Nonidealities scale multiplies them, so the draws do not depend on the scales."""
    dvt: torch.Tensor
    dbeta: torch.Tensor
    dac: torch.Tensor
    offset: torch.Tensor
    replica: torch.Tensor
    offset_p: torch.Tensor


def draw_standard(seed: int, first_chip: int, n_chips: int, rows: int, cols: int, bits: int,
                  threads: int = 1) -> StandardDraws:
    """The standard-normal static draws of chips first_chip .. first_chip + n_chips - 1 of `seed`, on `threads`
    threads (each chip draws from its own generator, so the draws do not depend on them)."""
    n = n_chips
    out = StandardDraws(*(torch.empty(shape, dtype=torch.float64) for shape in (
        (n, rows, cols), (n, rows, cols), (n, rows, bits), (n, cols), (n, rows, 2), (n, cols))))

    def draw(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            g = chip_generator(seed, first_chip + i)
            for draws in (out.dvt, out.dbeta, out.dac, out.offset, out.replica, out.offset_p):   # the order
                torch.randn(draws.shape[1:], generator=g, dtype=torch.float64, out=draws[i])

    in_shares(draw, n, threads)
    return out


@dataclass
class FactoredTables:
    """T ~ A B for every chip and row: a (n, rows, codes, K), b (n, rows, K, cols), in LSB; `residual_lsb` bounds
    the error of any single cell current of the separable form."""
    a: torch.Tensor
    b: torch.Tensor
    rank: int
    residual_lsb: float


def factor_tables(tables, n: int | None = None, threads: int = 1) -> FactoredTables:
    """Truncated SVD of each row's (codes x cols) table, through the (codes x codes) Gram matrix
    T T^T = U S^2 U^T (A = U, B = U^T T).

    `tables` yields one (rows, codes, cols) float64 table per chip (n of them when n is given: the factors are then
    written in place), each consumed before the next is asked for (so a producer may reuse one buffer); or it is a
    function table(k, out) that writes chip k's table into `out` and returns it (n required): the chips are then
    factored by `threads` threads (contiguous shares, a buffer each; the compiled row loop `_factor_rows` runs
    without the GIL), with the same factors as one thread.

    The RANK_MAX leading eigenvectors come from subspace iteration (`_factor_rows`; `leading_eigvecs` where numba
    is missing) instead of a full eigendecomposition: it reaches the rounding floor of the Gram route itself (both
    are off the SVD of T by ~eps ||T||^2 / gap; the tests check it against torch.linalg.svd). The residual of rank r
    is sqrt(||T||_F^2 - sum of the r leading Ritz values), exactly the Frobenius error of the factors returned."""
    if callable(tables):
        return _factor_parallel(tables, n, threads)
    a_all = b_all = None
    a_list, b_list, tails = [], [], []
    for i, t in enumerate(tables):
        if n is not None and a_all is None:
            a_all, b_all = _factor_buffers(n, t.shape)
        if a_all is None:
            u, b, tail = _factor_one(t)
            a_list.append(u)
            b_list.append(b)
        else:
            tail = _factor_one(t, a_all[i], b_all[i])
        tails.append(tail)
    if n is not None and len(tails) != n:
        raise ValueError(f"factor_tables: n={n} but the tables gave {len(tails)}; accepted: n = their number")
    if a_all is None:
        a_all, b_all = torch.stack(a_list), torch.stack(b_list)
    return _truncate(a_all, b_all, tails)


def _factor_buffers(n: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """Empty factors A (n, rows, codes, K) and B (n, rows, K, cols) for n chips' tables of `shape`, K = RANK_MAX."""
    rows, n_codes, cols = shape
    keep = min(RANK_MAX, n_codes)
    return (torch.empty(n, rows, n_codes, keep, dtype=torch.float64),
            torch.empty(n, rows, keep, cols, dtype=torch.float64))


def _factor_one(t: torch.Tensor, a_out: torch.Tensor | None = None, b_out: torch.Tensor | None = None):
    """The leading factors of one chip's tables t (rows, codes, cols) and their Frobenius residual per rank
    0..RANK_MAX, worst row (RANK_MAX + 1,): written into a_out, b_out and the residuals returned, or
    (A, B, residuals) where no buffers are given. Row by row in one compiled function (`_factor_rows`, numba;
    without the GIL, so threads factor chips side by side), or as batched torch operations where numba is
    missing."""
    rows, n_codes, cols = t.shape
    keep = min(RANK_MAX, n_codes)
    own = a_out is None
    if own:
        a_out = torch.empty(rows, n_codes, keep, dtype=torch.float64)
        b_out = torch.empty(rows, keep, cols, dtype=torch.float64)
    if _factor_rows is not None:
        tail = np.zeros(RANK_MAX + 1)
        _factor_rows(t.contiguous().numpy(), _start(n_codes).numpy(), SUBSPACE_STEPS, a_out.numpy(),
                     b_out.numpy(), tail)
        tail = torch.from_numpy(tail)
    else:             # pragma: no cover (numba is pinned in requirements.txt)
        tail = _factor_torch(t, keep, a_out, b_out)
    return (a_out, b_out, tail) if own else tail


def _factor_torch(t: torch.Tensor, keep: int, a_out: torch.Tensor, b_out: torch.Tensor) -> torch.Tensor:
    """`_factor_one` as batched torch operations over the rows (`leading_eigvecs`)."""
    rows, n_codes, _ = t.shape
    gram = bmm(t, t.transpose(1, 2))
    u, theta = leading_eigvecs(gram, keep)                                              # descending
    diag = gram.diagonal(dim1=1, dim2=2)
    u.masked_fill_((diag == 0)[:, :, None], 0.0)      # a code whose table row is 0 (cells off) stays exactly 0
    total = diag.sum(1)                                                                 # ||T||_F^2 per row
    ranks = min(RANK_MAX, n_codes - 1) + 1                       # residual per rank 0..RANK_MAX (0 from n_codes)
    lead = torch.cumsum(theta[:, :ranks - 1], 1)
    tail = torch.zeros(rows, RANK_MAX + 1, dtype=torch.float64)
    tail[:, 0] = torch.sqrt(total)
    tail[:, 1:ranks] = torch.sqrt((total[:, None] - lead).clamp(min=0))
    a_out.copy_(u)
    b_out.copy_(bmm(u.transpose(1, 2).contiguous(), t))
    return tail.amax(0)


try:
    import numba as _numba
except ImportError:   # pragma: no cover
    _numba = None


def _rows_kernel(t, start, steps, a_out, b_out, tail):
    """`_factor_torch` for each row of t (rows, m codes, cols), compiled (numba; LAPACK's eigh and BLAS through
    scipy): the Gram matrix G = T T^T, Q <- orth(G Q) `steps` times from `start` (m, p) (a full eigh where
    m <= p), the Rayleigh-Ritz pairs of Q^T G Q, descending; A = the K leading vectors (rows of codes whose table
    row is 0 set to 0), B = A^T T; the worst row's residual per rank into tail (RANK_MAX + 1,)."""
    rows, m, _ = t.shape
    p, keep = start.shape[1], a_out.shape[2]
    ranks = min(tail.shape[0] - 1, m - 1) + 1
    for i in range(rows):
        ti = t[i]
        g = ti @ ti.T
        if m <= p:
            ev, vec = np.linalg.eigh(g)                                                 # ascending
        else:
            q = g @ start
            _orth_columns(q)
            for _ in range(steps - 1):
                q = g @ q
                _orth_columns(q)
            ev, w = np.linalg.eigh(q.T @ (g @ q))
            vec = q @ w
        n_ev = ev.shape[0]
        total = 0.0
        for c in range(m):
            total += g[c, c]
        u = a_out[i]
        for c in range(m):
            for r in range(keep):
                u[c, r] = 0.0 if g[c, c] == 0 else vec[c, n_ev - 1 - r]
        b_out[i] = np.ascontiguousarray(u.T) @ ti
        tail[0] = max(tail[0], np.sqrt(total))
        lead = 0.0
        for r in range(1, ranks):
            lead += max(ev[n_ev - r], 0.0)
            tail[r] = max(tail[r], np.sqrt(max(total - lead, 0.0)))


def _orth_kernel(q):
    """Orthonormalise the columns of q (m, p) in place: classical Gram-Schmidt with one reorthogonalisation
    ("twice is enough": orthogonal to rounding, Giraud et al., Numer. Math. 101, 2005); a column with nothing left
    after both passes becomes 0 (it then adds a zero Ritz value, never one of the kept)."""
    m, p = q.shape
    for j in range(p):
        for _ in range(2):
            for i in range(j):
                r = 0.0
                for c in range(m):
                    r += q[c, i] * q[c, j]
                for c in range(m):
                    q[c, j] -= r * q[c, i]
        nrm = 0.0
        for c in range(m):
            nrm += q[c, j] * q[c, j]
        nrm = np.sqrt(nrm)
        for c in range(m):
            q[c, j] = q[c, j] / nrm if nrm > 0 else 0.0


if _numba is not None:
    _orth_columns = _numba.njit(cache=True, nogil=True, boundscheck=False)(_orth_kernel)
    _factor_rows = _numba.njit(cache=True, nogil=True)(_rows_kernel)
else:                 # pragma: no cover
    _factor_rows = None


def _factor_parallel(table, n: int | None, threads: int) -> FactoredTables:
    """`factor_tables` of table(k, out) for k < n on `threads` threads, each a contiguous share of the chips."""
    if n is None or n < 1:
        raise ValueError(f"factor_tables: n={n!r} with a table function; accepted: the number of chips, >= 1")
    first = table(0, None)
    a_all, b_all = _factor_buffers(n, first.shape)
    tails = [None] * n
    tails[0] = _factor_one(first, a_all[0], b_all[0])

    def work(lo: int, hi: int) -> None:
        buf = torch.empty_like(first)
        for k in range(1 + lo, 1 + hi):
            tails[k] = _factor_one(table(k, buf), a_all[k], b_all[k])

    in_shares(work, n - 1, threads)
    return _truncate(a_all, b_all, tails)


def _truncate(a_all: torch.Tensor, b_all: torch.Tensor, tails) -> FactoredTables:
    """The factors cut to the smallest rank whose worst residual (every chip and row) is below RANK_TOL."""
    tail = torch.stack(tails).amax(0)                # worst chip and row, per kept rank
    ok = torch.nonzero(tail <= RANK_TOL).flatten()
    rank = max(1, min(int(ok[0]) if len(ok) else RANK_MAX, RANK_MAX))
    return FactoredTables(a=a_all[..., :rank], b=b_all[:, :, :rank, :], rank=rank, residual_lsb=float(tail[rank]))


SUBSPACE = RANK_MAX + 2   # columns of the iterated subspace (two beyond the most that are kept)
SUBSPACE_STEPS = 3        # multiplications by the Gram matrix (2 reach the rounding floor at the default mismatch)


def leading_eigvecs(gram: torch.Tensor, keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(vectors (n, m, k), values (n, p)), descending, of the p = min(SUBSPACE, m) leading eigenpairs of each
    symmetric positive semi-definite (m x m) matrix of `gram` (n, m, m), float64; only the k = keep (default p)
    leading vectors are formed.

    Subspace iteration with Rayleigh-Ritz (e.g. Saad, Numerical Methods for Large Eigenvalue Problems, ch. 5):
    Q <- orth(G Q) SUBSPACE_STEPS times from a fixed Gaussian start, then the eigenpairs of Q^T G Q. The
    error in eigenvector k shrinks by lambda_p / lambda_k per step; the cell tables' spectra fall by 20-50x per
    term, so for the kept terms (k < RANK_MAX) that is < 1e-4 per step. With m <= SUBSPACE a full eigh."""
    n, m, _ = gram.shape
    with torch_threads(1):        # LAPACK's threading only adds overhead for many small matrices
        if m <= SUBSPACE:
            ev, vec = torch.linalg.eigh(gram)
            k = m if keep is None else min(keep, m)
            return vec[:, :, m - k:].flip(2), ev.flip(1).clamp(min=0)
        q = _orth(bmm(gram, _start(m).expand(n, m, SUBSPACE)))
        for _ in range(SUBSPACE_STEPS - 1):
            q = _orth(bmm(gram, q))
        theta, w = torch.linalg.eigh(bmm(q.transpose(1, 2), bmm(gram, q)))                # ascending
    k = SUBSPACE if keep is None else min(keep, SUBSPACE)
    return bmm(q, w[:, :, SUBSPACE - k:].flip(2)), theta.flip(1).clamp(min=0)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for batches of small matrices; on the CPU through numpy's matmul (one BLAS call per matrix), faster than
    torch.bmm for the drawing's shapes (128 rows of 32 x 128 tables; benchmarks/bench_chip.py times the drawing)."""
    if a.device.type != "cpu":
        return torch.matmul(a, b)
    return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))


def _orth(x: torch.Tensor) -> torch.Tensor:
    """Q of the reduced QR of each matrix of x (n, m, k), through numpy's LAPACK on the CPU (as `bmm`)."""
    if x.device.type != "cpu":
        return torch.linalg.qr(x)[0]
    return torch.from_numpy(np.linalg.qr(x.numpy())[0])


@functools.lru_cache(maxsize=4)
def _start(m: int) -> torch.Tensor:
    """The fixed (m, SUBSPACE) Gaussian start of `leading_eigvecs` (seeded: the same for every chip and row; read
    only)."""
    g = torch.Generator(device="cpu").manual_seed(20190101)
    return torch.randn(m, SUBSPACE, generator=g, dtype=torch.float64)


def line_matrix(b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """M (n, rows * K, 2 cols), in b's dtype: B of each cell on the line its weight pulls (+1 -> BLB, the first
    half; -1 -> BL, the second half)."""
    n, rows, k, cols = b.shape
    pos = (weights.cpu() == 1)[:, :, None, :]                                                # (n, R, 1, C)
    zero = torch.zeros((), dtype=b.dtype)
    m = torch.empty(n, rows, k, 2 * cols, dtype=b.dtype)
    torch.where(pos, b, zero, out=m[..., :cols])
    torch.where(pos, zero, b, out=m[..., cols:])
    return m.reshape(n, rows * k, 2 * cols)


def code_tables(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(G, rows, codes, 2 cols) float32: the factored line current of every row at every code, A_i M_i per row
    (u (G, rows, codes, K), m (G, rows, K, 2 cols)); a row's line sum is then a table look-up, not a product."""
    G, rows, n_codes, k = u.shape
    return bmm(u.reshape(G * rows, n_codes, k), m.reshape(G * rows, k, -1)).view(G, rows, n_codes, -1)


def active_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """The rows (ascending, int64) whose code is not 0 for some input of the chunk x (..., rows) of codes >= 0 (as
    Chip.evaluate checks them): those whose largest code is above 0 (one reduction, no boolean copy)."""
    return torch.nonzero(x.reshape(-1, rows).amax(0) > 0).flatten()


def idle_sums(tab: torch.Tensor, active: torch.Tensor, cpl: torch.Tensor | None) -> tuple:
    """The input-independent sums of the rows not in `active` (at code 0: their leakage), (G, 2 cols) each: with the
    window charge, and with the coupling factor a(0) (None when cpl is None)."""
    idle = torch.ones(tab.shape[1], dtype=torch.bool, device=tab.device)
    idle[active] = False
    rest = tab[:, idle, 0, :]
    return rest.sum(1), None if cpl is None else (rest * cpl[0]).sum(1)


def table_sums(tab: torch.Tensor, cpl: torch.Tensor | None, x: torch.Tensor, shared: bool) -> tuple:
    """Start-of-pulse current sums (LSB) of both lines of every column, (G, Bc, 2 cols) each, for a group of G chips:
    with the window charge, S[g, b] = sum_i tab[g, i, x[b, i]], and with the coupling factors a(c) per code,
    K[g, b] = sum_i a(x[b, i]) tab[g, i, x[b, i]] (None when cpl is None: no word-line kick); one summed look-up
    per row (`torch.nn.functional.embedding_bag`, the kick's with per-sample weights).

    tab: tables (G, rows, codes, 2 cols) from `code_tables`; cpl: a(c) (codes,) float32 or None; x the codes of
    the chunk, (Bc, rows) shared by the chips or (G, Bc, rows). Rows at code 0 for every input of the chunk add their
    (input-independent) sums once (`idle_sums`). Float32: each sum has at most `rows` terms, so its rounding error is
    below rows x 2**-24 x the sum of the terms' magnitudes (`rounding_bound_lsb`; for K, times max |a|)."""
    G, rows, n_codes, two_c = tab.shape
    idx = active_rows(x, rows)
    const, const_k = idle_sums(tab, idx, cpl)
    bc = x.shape[-2]
    if not len(idx):
        full = const[:, None, :].expand(G, bc, two_c)
        return full, None if cpl is None else const_k[:, None, :].expand(G, bc, two_c)
    xa = x.long() if len(idx) == rows else x[..., idx].long()                             # every row: no copy
    base = (idx * n_codes)[None, None, :] + (torch.arange(G, device=x.device) * rows * n_codes)[:, None, None]
    flat = (base + (xa.unsqueeze(0) if shared else xa)).reshape(G * bc, len(idx))          # (G Bc, na)
    table = tab.reshape(-1, two_c)
    full = torch.nn.functional.embedding_bag(flat, table, mode="sum").view(G, bc, two_c) + const[:, None, :]
    if cpl is None:
        return full, None
    w = cpl[xa].expand(G, bc, len(idx)).reshape(G * bc, len(idx))
    kick = torch.nn.functional.embedding_bag(flat, table, mode="sum", per_sample_weights=w)
    return full, kick.view(G, bc, two_c) + const_k[:, None, :]


def rounding_bound_lsb(tab: torch.Tensor) -> float:
    """Bound (LSB) on the float32 rounding error of any line sum of `table_sums` over these tables: with n = rows
    terms, |error| <= n u sum |terms| / (1 - n u), u = 2**-24 (Higham, Accuracy and Stability of Numerical
    Algorithms, 2nd ed., eq. 3.5), and sum |terms| <= the sum over rows of each row's largest entry."""
    rows = tab.shape[1]
    u = 2.0 ** -24
    worst = float(tab.abs().amax(dim=(2, 3)).sum(1).max())
    return rows * u * worst / (1 - rows * u)


def precompile() -> None:
    """Compile the drawing's loops (`_factor_rows`; the cell tables' `cellmodel._lerp_cells`) or load them from
    numba's cache, on tiny inputs of the types the chip passes (`python -m ibnn.circuit.precompile`)."""
    if _factor_rows is None:      # pragma: no cover
        return
    from .cellmodel import _lerp_cells
    m = SUBSPACE + 2
    _factor_rows(np.ones((2, m, 4)), np.ones((m, SUBSPACE)), SUBSPACE_STEPS, np.empty((2, m, RANK_MAX)),
                 np.empty((2, RANK_MAX, 4)), np.zeros(RANK_MAX + 1))
    if _lerp_cells is not None:
        _lerp_cells(np.zeros((2, 3)), np.zeros((2, 4)), np.ones((2, 4)), np.ones(5), np.zeros(5), np.empty((2, 3, 4)))
