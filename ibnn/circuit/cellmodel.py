"""The start-of-pulse cell current of a parameter set, tabulated for fast interpolation (`CellModel`).

G(V_WL, dVt) = (1 - s) I_cell(V, V_D = V; d) + s I_cell(V, V_D = VDD; d), s = compression: 0 makes every cell an
exact copy of the replica, 1 puts its drain at the precharged bit-line. For s = 1 it depends on V - d only (a 1-D
table), otherwise a 2-D (V, d) table; bilinear interpolation, relative error ~2e-4.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import params as _params
from .bitcell import BitCell
from .wldac import nominal_dac

D_SIGMAS = 6.0            # dVt grid half-width in sigma


D_STEP = 1.5e-3           # V, dVt grid step


V_STEP = 1.25e-3          # V, word-line grid step


X_STEP = 0.25e-3          # V, gate-overdrive grid step (compression = 1)


_BLOCK_ROWS = 32          # rows per block of `CellModel.cell_table` (its buffers stay within a core's cache)


def _grid_index(grid_start: float, step: float, n: int, x: torch.Tensor):
    t = ((x - grid_start) / step).clamp(0, n - 1)
    i = t.floor().long().clamp(0, max(n - 2, 0))
    return i, (t - i)


class CellModel:
    """Start-of-pulse cell current G(V_WL, dVt) (A) of a parameter set and compression scale s:
    G = (1 - s) I_cell(V, V_D = V; d) + s I_cell(V, V_D = VDD; d), tabulated on a fine (V, d) grid and bilinearly
    interpolated (relative interpolation error ~2e-4: grid steps 1.25 mV x 1.5 mV against the 36-mV e-fold of the
    weak-inversion current); for s = 1 a 1-D table in V - d (see __init__)."""

    def __init__(self, params: _params.ParamSet, compression: float, sigma_vt: float):
        self.cell = BitCell(params)
        self.dac = nominal_dac(params)
        self.s = float(compression)
        self.vdd = params["vdd"]
        vmax = min(self.vdd, float(self.dac.word_line_voltage(torch.tensor(
            self.dac.unit_current * (2 ** self.dac.bits - 1) * 1.5))) + 0.05)
        nv = int(math.ceil(vmax / V_STEP)) + 1
        self.v_grid = torch.linspace(0.0, (nv - 1) * V_STEP, nv, dtype=torch.float64)
        self.sigma_vt = float(sigma_vt)
        if self.sigma_vt > 0:
            half = int(math.ceil(D_SIGMAS * sigma_vt / D_STEP))
            self.d_grid = torch.arange(-half, half + 1, dtype=torch.float64) * D_STEP
        else:
            self.d_grid = torch.zeros(1, dtype=torch.float64)
        # s = 1 (the default): G(V, d) = I_cell(V, VDD; d) depends on V - d only (gate drive over the access
        # device's threshold), so a 1-D table in x = V - d on a 0.25-mV grid is exact to ~1e-5 and cheap.
        # Otherwise the drain (V_D = V) breaks that symmetry and the 2-D (V, d) table is used.
        if self.s == 1:
            x0 = float(self.v_grid[0] - self.d_grid[-1])
            nx = int(math.ceil((float(self.v_grid[-1] - self.d_grid[0]) - x0) / X_STEP)) + 2
            self.x_grid = x0 + torch.arange(nx, dtype=torch.float64) * X_STEP
            self.h_table = self.cell.current(self.x_grid, self.vdd)                       # I(V - d, VDD; 0)
            self.table = None
            self._lerp = _lerp_tables(self.h_table)                                      # see cell_table
        else:
            self.x_grid = self.h_table = self._lerp = None
            self.table = self.g(self.v_grid[:, None], self.d_grid[None, :])              # (V, d) A
        codes = torch.arange(2 ** self.dac.bits)
        self.nominal = self.g(self.dac.code_to_vwl(codes), 0.0)                           # (codes,) A
        c = codes.to(torch.float64)
        if self.s == 0:
            self.i_lsb = self.dac.unit_current / self.dac.ratio
        else:
            self.i_lsb = float((c * self.nominal).sum() / (c * c).sum())

    def g(self, v_wl, dvt) -> torch.Tensor:
        """Exact G(V, d) in A (series-stack solve)."""
        v_wl = torch.as_tensor(v_wl, dtype=torch.float64)
        out = 0.0
        if self.s != 1:
            out = out + (1 - self.s) * self.cell.current(v_wl, v_wl, dvt)
        if self.s != 0:
            out = out + self.s * self.cell.current(v_wl, self.vdd, dvt)
        return torch.as_tensor(out, dtype=torch.float64)

    def cell_table(self, v_wl: torch.Tensor, dvt: torch.Tensor, gain: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, codes, cols) float64: gain[i, j] G(v_wl[i, c], dvt[i, j]) for v_wl (rows, codes), dvt and gain
        (rows, cols): `interp` on every (row, code, column) times a per-cell factor, equal to it up to rounding
        (h[k] + (h[k+1] - h[k]) t instead of h[k] (1 - t) + h[k+1] t), in blocks of rows through reused buffers
        so that each pass stays in cache; written into `out` (float64, that shape) when given."""
        v_wl, dvt, gain = (torch.as_tensor(x, dtype=torch.float64) for x in (v_wl, dvt, gain))
        rows, codes, cols = v_wl.shape[0], v_wl.shape[1], dvt.shape[1]
        if out is None:
            out = torch.empty(rows, codes, cols, dtype=torch.float64)
        if self.h_table is None:
            return torch.mul(self.interp(v_wl[:, :, None], dvt[:, None, :]), gain[:, None, :], out=out)
        h0, dh = self._lerp
        n = len(self.x_grid)
        u = (v_wl - float(self.x_grid[0])) / X_STEP                  # grid coordinate of V - d = u - e
        e = dvt / X_STEP
        if _lerp_cells is not None and out.is_contiguous():           # one compiled pass (numba), no buffers
            _lerp_cells(u.contiguous().numpy(), e.contiguous().numpy(), gain.contiguous().numpy(), h0.numpy(),
                        dh.numpy(), out.numpy())
            return out
        blk = min(rows, _BLOCK_ROWS)
        t, k, g0, g1 = (torch.empty(blk, codes, cols, dtype=dt) for dt in (torch.float64, torch.int32,
                                                                            torch.float64, torch.float64))
        fl = torch.empty_like(t)
        for r0 in range(0, rows, blk):
            m = min(blk, rows - r0)
            tt, kk, f, a, b = t[:m], k[:m], fl[:m], g0[:m], g1[:m]
            torch.sub(u[r0:r0 + m, :, None], e[r0:r0 + m, None, :], out=tt).clamp_(0, n - 1)
            torch.floor(tt, out=f)
            tt.sub_(f)                                                 # fraction in the cell of the grid
            kk.copy_(f)
            torch.index_select(h0, 0, kk.view(-1), out=a.view(-1))
            torch.index_select(dh, 0, kk.view(-1), out=b.view(-1))
            torch.addcmul(a, b, tt, out=out[r0:r0 + m]).mul_(gain[r0:r0 + m, None, :])
        return out

    def interp(self, v_wl, dvt) -> torch.Tensor:
        """G(V, d) by bilinear interpolation of the table (broadcast)."""
        v_wl, dvt = torch.broadcast_tensors(torch.as_tensor(v_wl, dtype=torch.float64),
                                            torch.as_tensor(dvt, dtype=torch.float64))
        if self.h_table is not None:
            ix, tx = _grid_index(float(self.x_grid[0]), X_STEP, len(self.x_grid), v_wl - dvt)
            return self.h_table[ix] * (1 - tx) + self.h_table[ix + 1] * tx
        iv, tv = _grid_index(0.0, V_STEP, len(self.v_grid), v_wl)
        if len(self.d_grid) == 1:
            t = self.table[:, 0]
            return t[iv] * (1 - tv) + t[iv + 1] * tv
        id_, td = _grid_index(float(self.d_grid[0]), D_STEP, len(self.d_grid), dvt)
        t = self.table
        return ((t[iv, id_] * (1 - td) + t[iv, id_ + 1] * td) * (1 - tv)
                + (t[iv + 1, id_] * (1 - td) + t[iv + 1, id_ + 1] * td) * tv)


def _lerp_kernel(u, e, gain, h0, dh, out):
    """`CellModel.cell_table`'s blocked torch passes as one loop (the same float64 expressions, in order):
    t = clamp(u[i, c] - e[i, j], 0, n - 1), k = floor(t), out = (h0[k] + dh[k] (t - k)) gain[i, j]."""
    rows, codes, cols = out.shape
    top = np.float64(h0.shape[0] - 1)
    for i in range(rows):
        for c in range(codes):
            for j in range(cols):
                t = min(max(u[i, c] - e[i, j], 0.0), top)
                f = np.floor(t)
                k = int(f)
                out[i, c, j] = (h0[k] + dh[k] * (t - f)) * gain[i, j]


try:
    import numba as _numba
    _lerp_cells = _numba.njit(cache=True, nogil=True, boundscheck=False)(_lerp_kernel)
except ImportError:       # pragma: no cover (numba is pinned in requirements.txt)
    _lerp_cells = None


def _lerp_tables(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h[k], h[k + 1] - h[k]) for k < n, with 0 as the last step: linear interpolation is then one gather of each
    and a multiply-add, and the grid's last point (t = n - 1, fraction 0) needs no clamp of the index."""
    return table.contiguous(), torch.cat([table[1:] - table[:-1], torch.zeros(1, dtype=table.dtype)])


def cell_model(params: _params.ParamSet, compression: float, sigma_vt: float) -> CellModel:
    """CellModel, cached per (parameter values, compression, sigma_vt) within the process."""
    return _cell_model(params, float(compression), float(sigma_vt))


@_params.cached_per_set(8)
def _cell_model(params: _params.ParamSet, compression: float, sigma_vt: float) -> CellModel:
    return CellModel(params, compression, sigma_vt)
