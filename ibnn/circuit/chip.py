"""Simulated 128 x 128 in-memory-classifier chips (the Chip / Nonidealities contract of docs/architecture.md).

One `Chip` holds n_chips instances. Each instance k draws all of its static mismatch once, from its own generator
seeded by (seed, k) (numpy SeedSequence), in a fixed order: cell dVt (rows x cols), cell dbeta (rows x cols), WLDAC
bit errors (rows x bits), comparator offsets (cols). So one seed gives one chip, chip k of a batch equals a single
chip made with the same seed and first_chip=k, and the draws do not depend on the Nonidealities scales (a scale
multiplies fixed standard-normal draws).

Evaluation (per chip, vectorised over inputs and chips, chunked over inputs to bound memory), in LSB units
(1 LSB = the nominal current of one cell at code 1, i.e. the least-squares slope of the nominal code -> cell
current transfer at V_BL = VDD; `volts_per_lsb` = that current x T / C_BL):

1. Row i at code c has word-line voltage V_WL[i, c] from its WLDAC (ibnn.wldac, with the row's bit errors).
2. Cell (i, j) carries I_ij = (1 + dbeta_ij) G(V_WL[i, c_i], dVt_ij) at the start of the pulse, with
   G(V, d) = (1 - s) I_cell(V, V_D = V; d) + s I_cell(V, V_D = VDD; d) (s = compression: 0 makes every cell an exact
   copy of the replica, 1 puts its drain at the precharged bit-line). G is tabulated once per parameter set
   (CellModel; for s = 1 it depends on V - d only, a 1-D table) and interpolated.
   Because the cell current depends nonlinearly on both the row's V_WL and the cell's dVt, a naive per-input gather
   of 128 x 128 currents would be slow. Instead, for every chip and row the exact table T_i[c, j] = I_ij(code c) /
   I_LSB (32 codes x 128 columns) is factored by a truncated SVD, T_i ~ A_i B_i with K terms (K chosen so the
   Frobenius residual of every row, hence the error of any single cell, is below RANK_TOL = 0.01 LSB; K = 5 for the
   default parameters, measured per-cell error ~3e-4 LSB, tests/test_chip.py and the notebook). The line sums are
   then one matrix product per chip:
   S_line[b, j] = sum_{i, r} A_i[c_bi, r] M_line[(i, r), j],  M_line = B_i[r, j] [w_ij on that line],
   (B x K*rows) @ (K*rows x 2*cols). Rows whose code is 0 for every input of a chunk are taken out of the product and
   added as their (input-independent) leakage.
3. Bit-lines: V = column.discharge(S x volts_per_lsb, drain law) (closed form, compression and 0-V floor).
4. Comparator: +1 iff V_BL - V_BLB + offset_j + noise >= theta_j x volts_per_lsb (ties +1).

With every nonideality off the chip takes an exact path: dot = codes @ weights in float64 (exact for integers),
decision = +1 iff dot >= theta, dV = dot x volts_per_lsb, so decisions equal sign(codes @ W - theta) exactly.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import params as _params
from ..repro.device import default_device, elementwise_threads, torch_threads
from ..validate import check_int, check_nonneg, check_positive
from .cellmodel import cell_model
from .column import REFERENCE_CODE, DrainLaw, decide, discharge
from .nonideal import Nonidealities


RANK_MAX = 6              # most terms of the per-row separable approximation


RANK_TOL = 0.01           # LSB: bound on the Frobenius residual of each row's table (so on any single cell)


CHUNK = 2048              # inputs per chunk (fixed, so noise streams do not depend on the chip grouping)


GROUP_BYTES = 64 << 20    # memory budget of one group of chips in one chunk


_POSITIVE = ("vdd", "c_bl", "t_eval", "cell_lsb_current", "replica_ratio", "dac_unit_current", "kp_n",
             "thermal_voltage", "slope_factor", "w_access", "l_access", "w_pulldown", "array_rows", "array_cols",
             "input_bits")


_NONNEG = ("sigma_vt_cell", "sigma_beta_cell", "sigma_dac_unit", "comp_offset_sigma", "comp_noise_sigma", "dibl",
           "clm")


def check_params(P: _params.ParamSet) -> None:
    """Every circuit constant the chip uses: finite, and positive (or >= 0 for sigmas and slopes)."""
    for name in _POSITIVE:
        check_positive(name, P[name])
    for name in _NONNEG:
        check_nonneg(name, P[name])


def _chip_generator(seed: int, k: int, stream: int = 0) -> torch.Generator:
    state = np.random.SeedSequence([seed, k, stream]).generate_state(2, np.uint32)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


def _eigh_small(g: torch.Tensor):
    """Batched eigh of many small (32 x 32) matrices in one thread: LAPACK's threading only adds overhead at this
    size (10x slower on a loaded 2-core machine)."""
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return torch.linalg.eigh(g)
    finally:
        torch.set_num_threads(n)


class Chip:
    """n_chips simulated 128 x 128 chips. See the module docstring and docs/architecture.md.

    Chip(params=None, n_chips=1, seed=0, nonideal=None, device=None, *, first_chip=0)
    first_chip: index of the first instance (chip k of a batch == Chip(n_chips=1, seed=seed, first_chip=k)).
    """

    def __init__(self, params: _params.ParamSet | None = None, n_chips: int = 1, seed: int = 0,
                 nonideal: Nonidealities | None = None, device=None, *, first_chip: int = 0):
        P = params if params is not None else _params.load()
        if not isinstance(P, _params.ParamSet):
            raise ValueError(f"params={P!r} must be an ibnn.params.ParamSet (or None for the default set)")
        check_params(P)
        self.n_chips = check_int("n_chips", n_chips, 1)
        self.seed = check_int("seed", seed, 0)
        self.first_chip = check_int("first_chip", first_chip, 0)
        if nonideal is None:
            nonideal = Nonidealities()
        if not isinstance(nonideal, Nonidealities):
            raise ValueError(f"nonideal={nonideal!r} must be a Nonidealities (or None for all defaults)")
        self.nonideal = nonideal
        self.device = torch.device(device) if device is not None else default_device()
        self.params = P
        self.rows, self.cols = int(P["array_rows"]), int(P["array_cols"])
        self.bits = int(P["input_bits"])
        self.max_code = 2 ** self.bits - 1
        self.c_bl, self.t_eval, self.vdd = P["c_bl"], P["t_eval"], P["vdd"]
        ni = nonideal
        self.model = cell_model(P, ni.compression, P["sigma_vt_cell"] * ni.cell_mismatch)
        self.i_lsb = self.model.i_lsb
        self.volts_per_lsb = self.i_lsb * self.t_eval / self.c_bl
        law = DrainLaw.fit(lambda v: self.model.cell.current(
            self.model.dac.code_to_vwl(torch.tensor(REFERENCE_CODE)), v), self.vdd)
        self.drain_law = law.scaled(ni.compression)
        self.noise_sigma = P["comp_noise_sigma"] * ni.noise
        with torch_threads(elementwise_threads()):
            self._draw()
        self.weights = None

    # --- static mismatch ---------------------------------------------------------------------------------------
    def _draw(self) -> None:
        P, ni, R, C = self.params, self.nonideal, self.rows, self.cols
        dvt, db, dac, off = [], [], [], []
        for k in range(self.first_chip, self.first_chip + self.n_chips):
            g = _chip_generator(self.seed, k)
            dvt.append(torch.randn(R, C, generator=g, dtype=torch.float64))
            db.append(torch.randn(R, C, generator=g, dtype=torch.float64))
            dac.append(torch.randn(R, self.bits, generator=g, dtype=torch.float64))
            off.append(torch.randn(C, generator=g, dtype=torch.float64))
        bscale = torch.tensor([2.0 ** -b for b in range(self.bits)], dtype=torch.float64).sqrt()
        self.dvt = P["sigma_vt_cell"] * ni.cell_mismatch * torch.stack(dvt)              # (n, R, C) V
        self.dbeta = P["sigma_beta_cell"] * ni.cell_mismatch * torch.stack(db)           # (n, R, C)
        self.dac_bit_error = P["sigma_dac_unit"] * ni.dac_mismatch * bscale * torch.stack(dac)  # (n, R, bits)
        self.offset = P["comp_offset_sigma"] * ni.comparator_offset * torch.stack(off)   # (n, C) V
        # word-line voltages per chip, row, code
        codes = torch.arange(self.max_code + 1)
        i_dac = self.model.dac.dac_current(codes[None, None, :], self.dac_bit_error[:, :, None, :])
        self.v_wl = self.model.dac.word_line_voltage(i_dac)                               # (n, R, codes)
        # per chip and row: the exact table of cell currents (LSB) over codes x columns, T[c, j] =
        # (1 + dbeta_ij) G(V_WL[i, c], dVt_ij), and its truncated SVD T ~ A B (A: codes x K, B: K x cols)
        a_list, b_list, tails = [], [], []
        for k in range(self.n_chips):
            t = self.model.interp(self.v_wl[k][:, :, None], self.dvt[k][:, None, :])      # (R, codes, C)
            t = t * (1 + self.dbeta[k])[:, None, :] / self.i_lsb
            # SVD through the (codes x codes) Gram matrix: T T^T = U S^2 U^T, A = U, B = U^T T
            ev, u = _eigh_small(t @ t.transpose(1, 2))                                     # ascending
            ev, u = torch.flip(ev, [1]).clamp(min=0), torch.flip(u, [2])
            tail = torch.sqrt(torch.flip(torch.cumsum(torch.flip(ev, [1]), 1), [1]))       # tail[:, r] = residual
            tails.append(torch.cat([tail, torch.zeros(self.rows, 1, dtype=tail.dtype)], 1).amax(0))
            a_list.append(u)
            b_list.append(u.transpose(1, 2) @ t)
        tail = torch.stack(tails).amax(0)                # worst chip and row, per kept rank
        ok = torch.nonzero(tail <= RANK_TOL).flatten()
        self.rank = max(1, min(int(ok[0]) if len(ok) else RANK_MAX, RANK_MAX))
        #: bound (LSB) on the error of any single cell current of the separable form (Frobenius residual)
        self.approx_residual_lsb = float(tail[self.rank])
        self._a = torch.stack([a[..., :self.rank] for a in a_list])                      # (n, R, codes, K)
        self._b = torch.stack([b[:, :self.rank, :] for b in b_list])                     # (n, R, K, C)
        self._u = self._a.to(torch.float32).to(self.device)

    def cell_current(self, chip: int, rows, cols, codes, exact: bool = True) -> torch.Tensor:
        """Start-of-pulse current (A) of cells (rows, cols) of instance `chip` at `codes` (broadcast):
        exact (1 + dbeta) G(V_WL, dVt), or the separable approximation the chip evaluates (exact=False)."""
        chip = check_int("chip", chip, 0, self.n_chips - 1)
        rows, cols, codes = torch.broadcast_tensors(*(torch.as_tensor(x).long() for x in (rows, cols, codes)))
        if exact:
            v = self.v_wl[chip][rows, codes]
            d = self.dvt[chip][rows, cols]
            b = self.dbeta[chip][rows, cols]
            return (1 + b) * self.model.g(v, d)
        a = self._a[chip][rows, codes]                                                   # (..., K)
        bb = self._b[chip][rows, :, cols]                                                # (..., K)
        return (a * bb).sum(-1) * self.i_lsb

    # --- weights -----------------------------------------------------------------------------------------------
    def program(self, weights) -> "Chip":
        """Store +-1 weights, (rows, cols) for every instance or (n_chips, rows, cols)."""
        w = torch.as_tensor(weights)
        if w.dtype.is_floating_point or w.dtype == torch.bool or w.is_complex():
            raise ValueError(f"weights must be an integer tensor with values in {{-1, +1}}; got dtype {w.dtype}")
        shape = tuple(w.shape)
        if shape not in ((self.rows, self.cols), (self.n_chips, self.rows, self.cols)):
            raise ValueError(f"weights shape={shape} does not fit the array; accepted: ({self.rows}, {self.cols}) "
                             f"or ({self.n_chips}, {self.rows}, {self.cols})")
        bad = (w != 1) & (w != -1)
        if bool(bad.any()):
            raise ValueError(f"weights contain {int(w[bad][0])}; accepted values: -1 or +1")
        w = w.cpu().to(torch.int8).expand(self.n_chips, self.rows, self.cols).clone()
        self.weights = w.to(self.device)
        pos = (w == 1).to(torch.float64)[:, :, None, :]                                  # (n, R, 1, C)
        k = self.rank
        m = torch.cat([self._b * pos, self._b * (1 - pos)], dim=3)                      # +1 -> BLB, -1 -> BL
        self._m = m.reshape(self.n_chips, self.rows * k, 2 * self.cols).to(torch.float32).to(self.device)
        # leakage of each row at code 0, per line and column (LSB): (n, R, 2C)
        self._leak0 = torch.einsum("nrk,nrkc->nrc", self._u[:, :, 0, :],
                                   self._m.view(self.n_chips, self.rows, k, 2 * self.cols))
        return self

    # --- evaluation --------------------------------------------------------------------------------------------
    def check_codes(self, codes) -> torch.Tensor:
        c = torch.as_tensor(codes)
        if c.dtype.is_floating_point or c.dtype == torch.bool or c.is_complex():
            raise ValueError(f"codes must be an integer tensor with values in [0, {self.max_code}]; "
                             f"got dtype {c.dtype}")
        if c.dim() not in (2, 3) or c.shape[-1] != self.rows or (c.dim() == 3 and c.shape[0] != self.n_chips):
            raise ValueError(f"codes shape={tuple(c.shape)} does not fit the array; accepted: (B, {self.rows}) "
                             f"or ({self.n_chips}, B, {self.rows})")
        if c.numel():
            lo, hi = int(c.min()), int(c.max())
            if lo < 0 or hi > self.max_code:
                raise ValueError(f"codes contain {lo if lo < 0 else hi}, out of range; accepted: integers in "
                                 f"[0, {self.max_code}]")
        return c

    def _check_theta(self, theta) -> torch.Tensor:
        if theta is None:
            return torch.zeros(self.n_chips, self.cols, dtype=torch.float64)
        t = torch.as_tensor(theta)
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"theta must be a real tensor; got dtype {t.dtype}")
        t = t.to(torch.float64)
        if tuple(t.shape) not in ((self.cols,), (self.n_chips, self.cols)):
            raise ValueError(f"theta shape={tuple(t.shape)} is not accepted; accepted: ({self.cols},) or "
                             f"({self.n_chips}, {self.cols})")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"theta contains {t[~torch.isfinite(t)][0].item()}; accepted: finite numbers (LSB)")
        return t.expand(self.n_chips, self.cols).clone()

    def evaluate(self, codes, theta=None, return_dv: bool = False, noise_seed: int | None = None):
        """Decisions int8 (n_chips, B, cols): +1 iff V_BL - V_BLB (+ offset + noise) >= theta x volts_per_lsb.

        codes: int (B, rows) or (n_chips, B, rows) in 0..2**bits-1; theta: LSB units, (cols,) or (n_chips, cols)
        (default 0); noise_seed: int >= 0 for reproducible temporal noise (None: drawn from torch's global RNG).
        With return_dv also returns dV (n_chips, B, cols) in volts (float64 in ideal mode, float32 otherwise)."""
        codes = self.check_codes(codes)
        theta = self._check_theta(theta)
        return_dv = bool(return_dv)
        if noise_seed is not None:
            noise_seed = check_int("noise_seed", noise_seed, 0)
        if self.weights is None:
            raise ValueError("weights=None: call program(weights) before evaluate")
        if noise_seed is None:
            noise_seed = int(torch.randint(0, 2 ** 62, (1,)).item())
        dev = self.device
        codes = codes.to(dev)
        theta = theta.to(dev)
        shared = codes.dim() == 2
        B = codes.shape[-2]
        if self.nonideal.is_ideal:
            return self._evaluate_ideal(codes, theta, return_dv)
        outer_threads = torch.get_num_threads()
        with torch_threads(elementwise_threads() if dev.type == "cpu" else None):
            return self._evaluate_physical(codes, theta, return_dv, noise_seed, outer_threads)

    def _evaluate_physical(self, codes, theta, return_dv, noise_seed, outer_threads):
        dev = self.device
        shared = codes.dim() == 2
        B = codes.shape[-2]
        dec = torch.empty(self.n_chips, B, self.cols, dtype=torch.int8, device=dev)
        dv_out = torch.empty(self.n_chips, B, self.cols, dtype=torch.float32, device=dev) if return_dv else None
        k = self.rank
        per_chip = CHUNK * (self.rows * k + 6 * self.cols) * 4
        group = max(1, min(self.n_chips, GROUP_BYTES // per_chip))
        gens = [_chip_generator(noise_seed, self.first_chip + c, 1) for c in range(self.n_chips)]
        vpl = self.volts_per_lsb
        ref = (theta * vpl).to(torch.float32)                                             # (n, C) V
        off = self.offset.to(torch.float32).to(dev)
        law = self.drain_law
        for c0 in range(0, self.n_chips, group):
            c1 = min(self.n_chips, c0 + group)
            G = c1 - c0
            u = self._u[c0:c1].reshape(G, self.rows * (self.max_code + 1), k)
            m = self._m[c0:c1].view(G, self.rows, k, 2 * self.cols)
            leak_all = self._leak0[c0:c1].sum(1)                                          # (G, 2C)
            for b0 in range(0, B, CHUNK):
                b1 = min(B, b0 + CHUNK)
                x = codes[b0:b1] if shared else codes[c0:c1, b0:b1]                   # (Bc, R) / (G, Bc, R)
                active = (x != 0).reshape(-1, self.rows).any(0)
                idx = torch.nonzero(active).flatten()
                na = len(idx)
                const = leak_all - self._leak0[c0:c1][:, idx].sum(1)                      # (G, 2C)
                if na:
                    xa = x[..., idx].long()
                    if shared:
                        xa = xa.unsqueeze(0).expand(G, -1, -1)
                    flat = (idx * (self.max_code + 1))[None, None, :] + xa                # (G, Bc, na)
                    feat = torch.gather(u, 1, flat.reshape(G, -1, 1).expand(-1, -1, k))   # (G, Bc*na, K)
                    feat = feat.reshape(G, b1 - b0, na * k)
                    mm = m[:, idx].reshape(G, na * k, 2 * self.cols)
                    with torch_threads(outer_threads):
                        s = torch.baddbmm(const[:, None, :], feat, mm)
                else:
                    s = const[:, None, :].expand(G, b1 - b0, 2 * self.cols)
                swing = s * vpl                                                           # (G, Bc, 2C) V
                if law.ideal:
                    dv = swing[..., :self.cols] - swing[..., self.cols:]                  # BLB drop - BL drop
                else:
                    v = discharge(torch.clamp(swing, min=0.0), law)
                    dv = v[..., self.cols:] - v[..., :self.cols]                          # V_BL - V_BLB
                x_in = dv + off[c0:c1, None, :]
                if self.noise_sigma > 0:
                    nz = torch.stack([torch.randn(b1 - b0, self.cols, generator=gens[c], dtype=torch.float32)
                                      for c in range(c0, c1)]).to(dev)
                    x_in = x_in + self.noise_sigma * nz
                dec[c0:c1, b0:b1] = decide(x_in, ref[c0:c1, None, :])
                if return_dv:
                    dv_out[c0:c1, b0:b1] = dv
        return (dec, dv_out) if return_dv else dec

    def _evaluate_ideal(self, codes, theta, return_dv):
        w = self.weights.to(torch.float64)                                                # (n, R, C)
        x = codes.to(torch.float64)
        dot = torch.matmul(x, w) if codes.dim() == 3 else torch.einsum("br,nrc->nbc", x, w)
        dec = decide(dot, theta[:, None, :])
        if return_dv:
            return dec, dot * self.volts_per_lsb
        return dec

    def __repr__(self) -> str:
        return (f"Chip(n_chips={self.n_chips}, seed={self.seed}, first_chip={self.first_chip}, "
                f"nonideal={self.nonideal}, device={self.device}, volts_per_lsb={self.volts_per_lsb:.4g})")
