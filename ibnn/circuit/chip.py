"""Simulated 128 x 128 in-memory-classifier chips .

One `Chip` holds n_chips instances. Each instance k draws all of its static mismatch once, from its own generator
seeded by (seed, k) (numpy SeedSequence), in a fixed order: cell dVt (rows x cols), cell dbeta (rows x cols), WLDAC
bit errors (rows x bits), comparator offsets (cols). So one seed gives one chip, chip k of a batch equals a single
chip made with the same seed and first_chip=k, and the draws do not depend on the Nonidealities scales (a scale
multiplies fixed standard-normal draws).

Evaluation (per chip, vectorised over inputs and chips, chunked over inputs to bound memory), in LSB units
(1 LSB = the nominal current of one cell at code 1, i.e. the least-squares slope of the nominal code -> cell
current transfer at V_BL = VDD; `volts_per_lsb` = that current x T / C_BL):

1. Row i at code c has word-line voltage V_WL[i, c] from its WLDAC (ibnn.circuit.wldac, with the row's bit errors).
2. Cell (i, j) carries I_ij = (1 + dbeta_ij) G(V_WL[i, c_i], dVt_ij) at the start of the pulse, with
   G(V, d) = (1 - s) I_cell(V, V_D = V; d) + s I_cell(V, V_D = VDD; d) (s = compression: 0 makes every cell an exact
   copy of the replica, 1 puts its drain at the precharged bit-line). G is tabulated once per parameter set
   (CellModel; for s = 1 it depends on V - d only, a 1-D table) and interpolated.
   Because the cell current depends nonlinearly on both the row's V_WL and the cell's dVt, a naive per-input gather
   of 128 x 128 currents would be slow. Instead each row's table of cell currents (codes x columns) is factored
   into K separable terms (`ibnn.circuit.factored`; K = 5 for the default parameters, per-cell error ~3e-4 LSB),
   so the line sums are one matrix product per chip.
3. Bit-lines: V = column.discharge(S x volts_per_lsb, drain law) (closed form, compression and 0-V floor).
4. Comparator: +1 iff V_BL - V_BLB + offset_j + noise >= theta_j x volts_per_lsb (ties +1).

With every nonideality off the chip takes an exact path: dot = codes @ weights in float64 (exact for integers),
decision = +1 iff dot >= theta, dV = dot x volts_per_lsb, so decisions equal sign(codes @ W - theta) exactly.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .. import params as _params
from ..repro.device import default_device, elementwise_threads, torch_threads
from ..validate import check_codes, check_int, check_nonneg, check_positive
from .cellmodel import cell_model
from .column import REFERENCE_CODE, DrainLaw, decide, discharge
from .factored import chip_generator, draw_standard, factor_tables, line_matrix, line_sums
from .nonideal import Nonidealities

CHUNK = 2048              # inputs per chunk (fixed, so noise streams do not depend on the chip grouping)
GROUP_BYTES = 64 << 20    # memory budget of one group of chips in one chunk

_POSITIVE = ("vdd", "c_bl", "t_eval", "cell_lsb_current", "replica_ratio", "dac_unit_current", "kp_n",
             "thermal_voltage", "slope_factor", "w_access", "l_access", "w_pulldown", "array_rows", "array_cols",
             "input_bits")
_NONNEG = ("sigma_vt_cell", "sigma_beta_cell", "sigma_dac_unit", "comp_offset_sigma", "comp_noise_sigma", "dibl",
           "clm")


def check_params(P: _params.ParamSet) -> None:
    """Every circuit constant the chip uses: finite, and positive (or >= 0 for sigmas and slopes)."""
    if not isinstance(P, _params.ParamSet):
        raise ValueError(f"params={P!r} must be an ibnn.params.ParamSet (ibnn.params.load())")
    for name in _POSITIVE:
        check_positive(name, P[name])
    for name in _NONNEG:
        check_nonneg(name, P[name])


@dataclass
class ChipOutput:
    """What one evaluation returns. decisions: int8 (n_chips, B, cols), +1 iff V_BL - V_BLB (+ offset + noise) >=
    the reference; dv: V_BL - V_BLB (V), (n_chips, B, cols), when asked for (float64 on the ideal path, float32
    otherwise); drops: how far BL ([..., 0]) and BLB ([..., 1]) fell (V), (n_chips, B, cols, 2), when asked for
    (what the energy model needs)."""
    decisions: torch.Tensor
    dv: torch.Tensor | None = None
    drops: torch.Tensor | None = None


class Chip:
    """n_chips simulated chips of the parameter set P (array_rows x array_cols). See the module docstring.

    Args:
        params: the ParamSet (required: the caller owns the one parameter set).
        n_chips: instances in this batch. seed: their seed. first_chip: index of the first instance (chip k of a
            batch == Chip(P, n_chips=1, seed=seed, first_chip=k)).
        nonideal: Nonidealities scales (default: all at the parameter set's magnitude).
        device: torch device (default `ibnn.repro.device.default_device()`).
    """

    def __init__(self, params: _params.ParamSet, n_chips: int = 1, seed: int = 0,
                 nonideal: Nonidealities | None = None, device=None, *, first_chip: int = 0):
        check_params(params)
        self.n_chips = check_int("n_chips", n_chips, 1)
        self.seed = check_int("seed", seed, 0)
        self.first_chip = check_int("first_chip", first_chip, 0)
        nonideal = Nonidealities() if nonideal is None else nonideal
        if not isinstance(nonideal, Nonidealities):
            raise ValueError(f"nonideal={nonideal!r} must be a Nonidealities (or None for all defaults)")
        self.nonideal, self.params = nonideal, params
        self.device = torch.device(device) if device is not None else default_device()
        P = params
        self.rows, self.cols = P.int("array_rows"), P.int("array_cols")
        self.bits = P.int("input_bits")
        self.max_code = 2 ** self.bits - 1
        self.c_bl, self.t_eval, self.vdd = P["c_bl"], P["t_eval"], P["vdd"]
        self.model = cell_model(P, nonideal.compression, P["sigma_vt_cell"] * nonideal.cell_mismatch)
        self.i_lsb = self.model.i_lsb
        self.volts_per_lsb = self.i_lsb * self.t_eval / self.c_bl
        law = DrainLaw.fit(lambda v: self.model.cell.current(
            self.model.dac.code_to_vwl(torch.tensor(REFERENCE_CODE)), v), self.vdd)
        self.drain_law = law.scaled(nonideal.compression)
        self.noise_sigma = P["comp_noise_sigma"] * nonideal.noise
        with torch_threads(elementwise_threads()):
            self._draw()
        self.weights = None

    # --- static mismatch ---------------------------------------------------------------------------------------
    def _draw(self) -> None:
        """Every static mismatch of every instance, the word-line voltages and the factored cell tables."""
        P, ni = self.params, self.nonideal
        z = draw_standard(self.seed, self.first_chip, self.n_chips, self.rows, self.cols, self.bits)
        bscale = torch.tensor([2.0 ** -b for b in range(self.bits)], dtype=torch.float64).sqrt()
        self.dvt = P["sigma_vt_cell"] * ni.cell_mismatch * z.dvt                          # (n, R, C) V
        self.dbeta = P["sigma_beta_cell"] * ni.cell_mismatch * z.dbeta                    # (n, R, C)
        self.dac_bit_error = P["sigma_dac_unit"] * ni.dac_mismatch * bscale * z.dac       # (n, R, bits)
        self.offset = P["comp_offset_sigma"] * ni.comparator_offset * z.offset            # (n, C) V
        codes = torch.arange(self.max_code + 1)
        i_dac = self.model.dac.dac_current(codes[None, None, :], self.dac_bit_error[:, :, None, :])
        self.v_wl = self.model.dac.word_line_voltage(i_dac)                               # (n, R, codes)
        f = factor_tables(self._exact_table(k) for k in range(self.n_chips))
        self.rank = f.rank
        #: bound (LSB) on the error of any single cell current of the separable form (Frobenius residual)
        self.approx_residual_lsb = f.residual_lsb
        self._a, self._b = f.a, f.b                                                       # (n,R,codes,K), (n,R,K,C)
        self._u = self._a.to(torch.float32).to(self.device)

    def _exact_table(self, k: int) -> torch.Tensor:
        """(rows, codes, cols) cell currents of instance k in LSB: (1 + dbeta_ij) G(V_WL[i, c], dVt_ij) / I_LSB."""
        t = self.model.interp(self.v_wl[k][:, :, None], self.dvt[k][:, None, :])
        return t * (1 + self.dbeta[k])[:, None, :] / self.i_lsb

    def cell_current(self, chip: int, rows, cols, codes, exact: bool = True) -> torch.Tensor:
        """Start-of-pulse current (A) of cells (rows, cols) of instance `chip` at `codes` (broadcast):
        exact (1 + dbeta) G(V_WL, dVt), or the separable approximation the chip evaluates (exact=False)."""
        chip = check_int("chip", chip, 0, self.n_chips - 1)
        rows, cols, codes = torch.broadcast_tensors(*(torch.as_tensor(x).long() for x in (rows, cols, codes)))
        if exact:
            v = self.v_wl[chip][rows, codes]
            return (1 + self.dbeta[chip][rows, cols]) * self.model.g(v, self.dvt[chip][rows, cols])
        return (self._a[chip][rows, codes] * self._b[chip][rows, :, cols]).sum(-1) * self.i_lsb

    # --- weights -----------------------------------------------------------------------------------------------
    def program(self, weights) -> "Chip":
        """Store +-1 weights, (rows, cols) for every instance or (n_chips, rows, cols). Returns the chip."""
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
        k = self.rank
        self._m = line_matrix(self._b, w).to(torch.float32).to(self.device)
        # leakage of each row at code 0, per line and column (LSB): (n, R, 2C)
        self._leak0 = torch.einsum("nrk,nrkc->nrc", self._u[:, :, 0, :],
                                   self._m.view(self.n_chips, self.rows, k, 2 * self.cols))
        return self

    # --- evaluation --------------------------------------------------------------------------------------------
    def check_codes(self, codes) -> torch.Tensor:
        """codes as a tensor, or a ValueError naming the wrong dtype, shape or value."""
        c = check_codes("codes", codes, self.max_code)
        if c.dim() not in (2, 3) or c.shape[-1] != self.rows or (c.dim() == 3 and c.shape[0] != self.n_chips):
            raise ValueError(f"codes shape={tuple(c.shape)} does not fit the array; accepted: (B, {self.rows}) "
                             f"or ({self.n_chips}, B, {self.rows})")
        return c

    def check_theta(self, theta) -> torch.Tensor:
        """Comparator references (n_chips, cols) float64 in LSB (default 0), or a ValueError."""
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

    def evaluate(self, codes, theta=None, noise_seed: int | None = None, *, dv: bool = False,
                 drops: bool = False) -> ChipOutput:
        """One classify cycle of every instance for every input.

        Args:
            codes: int (B, rows) or (n_chips, B, rows) in 0..2**bits-1 (0 = word line off).
            theta: comparator references in LSB, (cols,) or (n_chips, cols) (default 0).
            noise_seed: int >= 0 for reproducible temporal noise (None: drawn from torch's global RNG).
            dv, drops: also return V_BL - V_BLB and the drops of both lines (see `ChipOutput`).
        Returns:
            ChipOutput; decisions +1 iff V_BL - V_BLB (+ offset + noise) >= theta x volts_per_lsb (ties +1).
        """
        codes, theta = self.check_codes(codes), self.check_theta(theta)
        if noise_seed is not None:
            noise_seed = check_int("noise_seed", noise_seed, 0)
        if self.weights is None:
            raise ValueError("weights=None: call program(weights) before evaluate")
        if noise_seed is None:
            noise_seed = int(torch.randint(0, 2 ** 62, (1,)).item())
        codes, theta = codes.to(self.device), theta.to(self.device)
        if self.nonideal.is_ideal:
            return self._evaluate_ideal(codes, theta, bool(dv), bool(drops))
        outer_threads = torch.get_num_threads()
        with torch_threads(elementwise_threads() if self.device.type == "cpu" else None):
            return self._evaluate_physical(codes, theta, bool(dv), bool(drops), noise_seed, outer_threads)

    def _evaluate_physical(self, codes, theta, want_dv, want_drops, noise_seed, outer_threads) -> ChipOutput:
        """The physical path, chunked over inputs and grouped over chips to bound memory."""
        dev, n, C = self.device, self.n_chips, self.cols
        shared, B = codes.dim() == 2, codes.shape[-2]
        out = ChipOutput(torch.empty(n, B, C, dtype=torch.int8, device=dev),
                         torch.empty(n, B, C, dtype=torch.float32, device=dev) if want_dv else None,
                         torch.empty(n, B, C, 2, dtype=torch.float32, device=dev) if want_drops else None)
        per_chip = CHUNK * (self.rows * self.rank + 6 * C) * 4
        group = max(1, min(n, GROUP_BYTES // per_chip))
        gens = [chip_generator(noise_seed, self.first_chip + c, 1) for c in range(n)]
        ref = (theta * self.volts_per_lsb).to(torch.float32)                               # (n, C) V
        off = self.offset.to(torch.float32).to(dev)
        for c0 in range(0, n, group):
            c1 = min(n, c0 + group)
            u = self._u[c0:c1].reshape(c1 - c0, self.rows * (self.max_code + 1), self.rank)
            m = self._m[c0:c1].view(c1 - c0, self.rows, self.rank, 2 * C)
            for b0 in range(0, B, CHUNK):
                b1 = min(B, b0 + CHUNK)
                x = codes[b0:b1] if shared else codes[c0:c1, b0:b1]
                swing = line_sums(u, m, self._leak0[c0:c1], x, shared, outer_threads) * self.volts_per_lsb
                dv, drop = self._discharge(swing)
                x_in = dv + off[c0:c1, None, :]
                if self.noise_sigma > 0:
                    nz = torch.stack([torch.randn(b1 - b0, C, generator=gens[c], dtype=torch.float32)
                                      for c in range(c0, c1)]).to(dev)
                    x_in = x_in + self.noise_sigma * nz
                out.decisions[c0:c1, b0:b1] = decide(x_in, ref[c0:c1, None, :])
                if want_dv:
                    out.dv[c0:c1, b0:b1] = dv
                if want_drops:
                    out.drops[c0:c1, b0:b1] = drop
        return out

    def _discharge(self, swing: torch.Tensor):
        """(V_BL - V_BLB, drops (..., cols, 2) of [BL, BLB]) from the linear swings (..., 2 cols) of the lines:
        the first cols are the BLBs (pulled by the +1 cells), the last cols the BLs (`factored.line_matrix`)."""
        C, law = self.cols, self.drain_law
        if law.ideal:
            dv = swing[..., :C] - swing[..., C:]                                       # BLB drop - BL drop
            drop = torch.clamp(swing, 0.0, self.vdd)
        else:
            v = discharge(torch.clamp(swing, min=0.0), law)
            dv = v[..., C:] - v[..., :C]                                               # V_BL - V_BLB
            drop = torch.clamp(self.vdd - v, 0.0, self.vdd)
        return dv, torch.stack([drop[..., C:], drop[..., :C]], -1)          # [BL, BLB]

    def _evaluate_ideal(self, codes, theta, want_dv, want_drops) -> ChipOutput:
        """Exact integer arithmetic: dot = codes @ W in float64, decisions = +1 iff dot >= theta."""
        w = self.weights.to(torch.float64)                                                # (n, R, C)
        x = codes.to(torch.float64)
        mm = (lambda a: torch.matmul(x, a)) if codes.dim() == 3 else (lambda a: torch.einsum("br,nrc->nbc", x, a))
        dot = mm(w)
        out = ChipOutput(decide(dot, theta[:, None, :]), dot * self.volts_per_lsb if want_dv else None)
        if want_drops:             # linear lines without floor, clipped: a physical line cannot fall below 0 V
            pos = (w > 0).to(torch.float64)
            out.drops = torch.stack([mm(1 - pos), mm(pos)], -1).mul(self.volts_per_lsb).clamp(0.0, self.vdd)
        return out

    def retimed(self, params: _params.ParamSet) -> "Chip":
        """This chip (its mismatch draws, tables and weights) under another discharge time or bit-line capacitance.

        t_eval and C_BL enter the model only through volts_per_lsb = I_LSB t_eval / C_BL (the cell tables, the
        drain law and the draws do not depend on them), so a sweep of them needs no new cell model. Any other
        circuit parameter differing is a ValueError: build a new Chip."""
        allowed = {"t_eval", "c_bl_per_cell", "c_bl", "volts_per_lsb_nominal"}
        old, new = self.params.values(), _params.require(params).values()
        diff = sorted(k for k in old if k in new and k not in allowed and params.entry(k).section == "circuit"
                      and old[k] != new[k])
        if diff:
            raise ValueError(f"Chip.retimed: parameters {diff} differ from the chip's; only t_eval and c_bl_per_cell "
                             f"may change (build a new Chip for the others)")
        out = copy.copy(self)
        out.params, out.t_eval, out.c_bl = params, params["t_eval"], params["c_bl"]
        out.volts_per_lsb = self.i_lsb * out.t_eval / out.c_bl
        return out

    def __repr__(self) -> str:
        return (f"Chip(n_chips={self.n_chips}, seed={self.seed}, first_chip={self.first_chip}, "
                f"nonideal={self.nonideal}, device={self.device}, volts_per_lsb={self.volts_per_lsb:.4g})")
