"""Simulated 128 x 128 in-memory-classifier chips.

One `Chip` holds n_chips instances. Each instance k draws all of its static mismatch once, from its own generator
seeded by (seed, k) (numpy SeedSequence), in a fixed order: cell dVt (rows x cols), cell dbeta (rows x cols), WLDAC
bit errors (rows x bits), comparator offsets (cols), then, appended after those so that every earlier draw of a
seed is unchanged, the replica (dVt, dbeta) of each row (rows x 2) and the PMOS pair's offset of each comparator
(cols). So one seed gives one chip, chip k of a batch equals a single chip made with the same seed and
first_chip=k, and the draws do not depend on the Nonidealities scales (a scale multiplies fixed standard-normal
draws).

Evaluation (per chip, vectorised over inputs and chips, chunked over inputs to bound memory), in LSB units
(1 LSB = the nominal current of one cell at code 1, i.e. the least-squares slope of the nominal code -> cell
current transfer at V_BL = VDD; `volts_per_lsb` = that current x T / C_BL):

1. Row i at code c has word-line voltage V_WL[i, c] from its WLDAC (ibnn.circuit.wldac, with the row's bit errors)
   through its own replica (replica_mismatch: (dVt, dbeta) at the replica's area, ibnn.circuit.replica, solved
   exactly, shared by every cell of the row).
2. Cell (i, j) carries I_ij = (1 + dbeta_ij) G(V_WL[i, c_i], dVt_ij) at the start of the pulse, with
   G(V, d) = (1 - s) I_cell(V, V_D = V; d) + s I_cell(V, V_D = VDD; d) (s = compression: 0 makes every cell an exact
   copy of the replica, 1 puts its drain at the precharged bit-line). G is tabulated once per parameter set
   (CellModel; for s = 1 it depends on V - d only, a 1-D table) and interpolated. Each row's table of cell
   currents (codes x columns) is factored into K separable terms (`ibnn.circuit.factored`; per-cell error ~3e-4
   LSB); multiplied out into a table per row, code and line, the line sums are one look-up sum per row.
3. The window: the charge a cell delivers is its start-of-pulse current x t_eval x q(c) (window_charge: the real
   word-line waveform, ibnn.circuit.wordline; 1 for a settled code), minus the word-line kick of the falling
   bit-lines (wl_coupling): the charge of code c falls by a(c) x (mean drop of all 2 x cols lines), taken from a
   first pass without the kick. Both are per-code factors on the factored A, so they cost one more look-up sum.
4. Bit-lines: V = column.discharge(S x volts_per_lsb, drain law) (closed form, compression and 0-V floor).
5. Comparator: +1 iff V_BL - V_BLB + offset_j(V_CM) + noise >= theta_j x volts_per_lsb (ties +1). The offset is
   the column's static draw, plus (comparator_cm) the rail-to-rail comparator's common-mode dependent part
   (1 - a(V_CM)) (os_p - os_n) at this decision's V_CM = VDD - (drop_BL + drop_BLB) / 2 (ibnn.circuit.comparator);
   the temporal noise is the comparator's own plus (physical_noise) kT/C of both lines and the shot-noise bound
   q (drop_BL + drop_BLB) / C_BL (ibnn.circuit.noise), one standard normal per decision.

With every nonideality off the chip takes an exact path: dot = codes @ weights in float64 (exact for integers),
decision = +1 iff dot >= theta, dV = dot x volts_per_lsb, so decisions equal sign(codes @ W - theta) exactly.
"""
from __future__ import annotations

import copy

import torch

from .. import params as _params
from ..repro.device import default_device, elementwise_threads, torch_threads
from ..validate import check_codes, check_int, check_nonneg, check_positive
from .bitcell import BitCell
from .cellmodel import cell_model
from .column import REFERENCE_CODE, DrainLaw
from .comparator import CommonModeOffset
from .factored import draw_standard, factor_tables, line_matrix
from .nonideal import Nonidealities
from .physical import ChipOutput, evaluate_ideal, evaluate_physical
from .replica import replica_sigmas
from .replica import word_line_voltage as replica_word_line_voltage
from .wldac import nominal_dac
from .wordline import drive_tables

__all__ = ["Chip", "ChipOutput", "check_params"]

_POSITIVE = ("vdd", "c_bl", "t_eval", "cell_lsb_current", "replica_ratio", "dac_unit_current", "kp_n",
             "thermal_voltage", "slope_factor", "w_access", "l_access", "w_pulldown", "array_rows", "array_cols",
             "input_bits", "f_classify", "c_wl_per_cell")
_NONNEG = ("sigma_vt_cell", "sigma_beta_cell", "sigma_dac_unit", "comp_offset_sigma", "comp_noise_sigma", "dibl",
           "clm", "c_ov_per_width")


def check_params(P: _params.ParamSet) -> None:
    """Every circuit constant the chip uses: finite, and positive (or >= 0 for sigmas and slopes)."""
    if not isinstance(P, _params.ParamSet):
        raise ValueError(f"params={P!r} must be an ibnn.params.ParamSet (ibnn.params.load())")
    for name in _POSITIVE:
        check_positive(name, P[name])
    for name in _NONNEG:
        check_nonneg(name, P[name])


@_params.cached_per_set(16)
def _drain_law(P: _params.ParamSet) -> DrainLaw:
    """The drain law of P's cell at the reference code, fitted once per parameter set."""
    cell = BitCell(P)
    v_wl = nominal_dac(P).code_to_vwl(torch.tensor(REFERENCE_CODE))
    return DrainLaw.fit(lambda v: cell.current(v_wl, v), P["vdd"])


@_params.cached_per_set(16)
def _cm_offset(P: _params.ParamSet) -> CommonModeOffset:
    """The comparator's common-mode offset table of P, once per parameter set."""
    return CommonModeOffset.from_params(P)


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
        self.vdd = P["vdd"]
        self.model = cell_model(P, nonideal.compression, P["sigma_vt_cell"] * nonideal.cell_mismatch)
        self.i_lsb = self.model.i_lsb
        self.drain_law = _drain_law(P).scaled(nonideal.compression)
        self.cm_offset = _cm_offset(P) if nonideal.comparator_cm > 0 else None
        self._set_timing(P)
        self._draw_threads = torch.get_num_threads()        # the chips' tables are factored on this many threads
        with torch_threads(elementwise_threads()):
            self._draw()
        self.weights = None

    def _set_timing(self, P: _params.ParamSet) -> None:
        """Everything that depends on t_eval and C_BL: volts_per_lsb, the temporal noise constants, and the
        window-charge and coupling factors per code (from the word-line waveform of P's cycle plan)."""
        ni = self.nonideal
        self.c_bl, self.t_eval = P["c_bl"], P["t_eval"]
        self.volts_per_lsb = self.i_lsb * self.t_eval / self.c_bl
        self.noise_sigma = P["comp_noise_sigma"] * ni.noise
        # physical temporal noise: per decision variance ktc_var + shot_per_volt * (drop_BL + drop_BLB)
        kt = P["q_electron"] * P["thermal_voltage"]
        self.ktc_var = 2 * kt / self.c_bl * ni.physical_noise ** 2
        self.shot_per_volt = P["q_electron"] / self.c_bl * ni.physical_noise ** 2
        ones = torch.ones(self.max_code + 1, dtype=torch.float64)
        tables = drive_tables(P) if (ni.window_charge > 0 or ni.wl_coupling > 0) else None
        #: per code: the window charge factor q (1: the ideal window) and the coupling slope a (1/V)
        self.window_charge = ones if ni.window_charge == 0 else \
            1.0 + ni.window_charge * (torch.as_tensor(tables.q, dtype=torch.float64) - 1.0)
        self.coupling = 0 * ones if ni.wl_coupling == 0 else \
            ni.wl_coupling * torch.as_tensor(tables.a, dtype=torch.float64)

    # --- static mismatch ---------------------------------------------------------------------------------------
    def _draw(self) -> None:
        """Every static mismatch of every instance, the word-line voltages and the factored cell tables."""
        P, ni = self.params, self.nonideal
        z = draw_standard(self.seed, self.first_chip, self.n_chips, self.rows, self.cols, self.bits,
                          self._draw_threads)
        bscale = torch.tensor([2.0 ** -b for b in range(self.bits)], dtype=torch.float64).sqrt()
        self.dvt = P["sigma_vt_cell"] * ni.cell_mismatch * z.dvt                          # (n, R, C) V
        self.dbeta = P["sigma_beta_cell"] * ni.cell_mismatch * z.dbeta                    # (n, R, C)
        self.dac_bit_error = P["sigma_dac_unit"] * ni.dac_mismatch * bscale * z.dac       # (n, R, bits)
        self.offset = P["comp_offset_sigma"] * ni.comparator_offset * z.offset            # (n, C) V
        s_vt, s_b = replica_sigmas(P)
        self.replica_dvt = s_vt * ni.replica_mismatch * z.replica[..., 0]                 # (n, R) V
        self.replica_dbeta = s_b * ni.replica_mismatch * z.replica[..., 1]                # (n, R)
        #: the comparator's NMOS- and PMOS-pair offsets at full sigma (comparator_cm mixes them by common mode)
        ratio = self.cm_offset.p_over_n if self.cm_offset is not None else 1.0
        self.offset_n = P["comp_offset_sigma"] * z.offset                                 # (n, C) V
        self.offset_p = P["comp_offset_sigma"] * ratio * z.offset_p                       # (n, C) V
        codes = torch.arange(self.max_code + 1)
        i_dac = self.model.dac.dac_current(codes[None, None, :], self.dac_bit_error[:, :, None, :])
        with torch_threads(self._draw_threads):       # elementwise over (n, R, codes): large enough for threads
            self.v_wl = replica_word_line_voltage(self.model.dac, i_dac, self.replica_dvt[..., None],
                                                  self.replica_dbeta[..., None])          # (n, R, codes)
        f = factor_tables(self._exact_table, self.n_chips, self._draw_threads)   # chips shared among the threads
        self.rank = f.rank
        #: bound (LSB) on the error of any single cell current of the separable form (Frobenius residual)
        self.approx_residual_lsb = f.residual_lsb
        self._a, self._b = f.a, f.b                                                       # (n,R,codes,K), (n,R,K,C)
        self._factors()

    def _factors(self) -> None:
        """The float32 factors the evaluation multiplies: A x q(c) (window charge; the coupling's sums weight the same
        table by a(c), `factored.table_sums`)."""
        q = self.window_charge[None, None, :, None]
        self._u = (self._a * q).to(torch.float32).to(self.device)

    def _exact_table(self, k: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, codes, cols) cell currents of instance k in LSB: (1 + dbeta_ij) G(V_WL[i, c], dVt_ij) / I_LSB
        (written into `out` when given)."""
        return self.model.cell_table(self.v_wl[k], self.dvt[k], (1 + self.dbeta[k]) / self.i_lsb, out=out)

    def cell_current(self, chip: int, rows, cols, codes, exact: bool = True) -> torch.Tensor:
        """Start-of-pulse current (A) of cells (rows, cols) of instance `chip` at `codes` (broadcast):
        exact (1 + dbeta) G(V_WL, dVt), or the separable approximation the chip evaluates (exact=False); the
        window's factors (window_charge, coupling) are not included."""
        chip = check_int("chip", chip, 0, self.n_chips - 1)
        rows, cols, codes = torch.broadcast_tensors(*(torch.as_tensor(x).long() for x in (rows, cols, codes)))
        if exact:
            v = self.v_wl[chip][rows, codes]
            return (1 + self.dbeta[chip][rows, cols]) * self.model.g(v, self.dvt[chip][rows, cols])
        return (self._a[chip][rows, codes] * self._b[chip][rows, :, cols]).sum(-1) * self.i_lsb

    def row_currents(self, chip: int, columns=None) -> torch.Tensor:
        """(rows, codes) float64: the start-of-pulse current (A) summed over the cells of each row in `columns`
        (default all) at each code, from the factored tables (what the cells draw against the precharge)."""
        chip = check_int("chip", chip, 0, self.n_chips - 1)
        cols = torch.arange(self.cols) if columns is None else self._check_cols(columns)
        b = self._b[chip][:, :, cols.cpu()].sum(-1)                                      # (R, K)
        return torch.einsum("rck,rk->rc", self._a[chip], b) * self.i_lsb

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
        self._m = line_matrix(self._b.to(torch.float32), w).to(self.device)     # = the float64 M, rounded
        return self

    # --- evaluation --------------------------------------------------------------------------------------------
    def check_codes(self, codes) -> torch.Tensor:
        """codes as a tensor, or a ValueError naming the wrong dtype, shape or value."""
        c = check_codes("codes", codes, self.max_code)
        if c.dim() not in (2, 3) or c.shape[-1] != self.rows or (c.dim() == 3 and c.shape[0] != self.n_chips):
            raise ValueError(f"codes shape={tuple(c.shape)} does not fit the array; accepted: (B, {self.rows}) "
                             f"or ({self.n_chips}, B, {self.rows})")
        return c

    def _check_cols(self, cols) -> torch.Tensor:
        """A column subset as a 1-D int64 tensor of distinct indices in 0..cols-1, or a ValueError."""
        c = torch.as_tensor(cols)
        if c.dtype.is_floating_point or c.dtype == torch.bool or c.dim() != 1 or not len(c):
            raise ValueError(f"cols={cols!r} must be a non-empty 1-D sequence of integer column indices")
        c = c.to(torch.int64)
        if int(c.min()) < 0 or int(c.max()) >= self.cols or len(torch.unique(c)) != len(c):
            raise ValueError(f"cols={c.tolist()} is out of range; accepted: distinct integers in [0, {self.cols - 1}]")
        return c

    def check_theta(self, theta, n_cols: int | None = None) -> torch.Tensor:
        """Comparator references (n_chips, n_cols) float64 in LSB (default 0; n_cols default all columns)."""
        n_cols = self.cols if n_cols is None else n_cols
        if theta is None:
            return torch.zeros(self.n_chips, n_cols, dtype=torch.float64)
        t = torch.as_tensor(theta)
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"theta must be a real tensor; got dtype {t.dtype}")
        t = t.to(torch.float64)
        if tuple(t.shape) not in ((n_cols,), (self.n_chips, n_cols)):
            raise ValueError(f"theta shape={tuple(t.shape)} is not accepted; accepted: ({n_cols},) or "
                             f"({self.n_chips}, {n_cols})")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"theta contains {t[~torch.isfinite(t)][0].item()}; accepted: finite numbers (LSB)")
        return t.expand(self.n_chips, n_cols).clone()

    def evaluate(self, codes, theta=None, noise_seed: int | None = None, *, dv: bool = False,
                 drops: bool = False, cols=None) -> ChipOutput:
        """One classify cycle of every instance for every input.

        Args:
            codes: int (B, rows) or (n_chips, B, rows) in 0..2**bits-1 (0 = word line off).
            theta: comparator references in LSB, (n,) or (n_chips, n) for the n evaluated columns (default 0).
            noise_seed: int >= 0 for reproducible temporal noise (None: drawn from torch's global RNG).
            dv, drops: also return V_BL - V_BLB and the drops of both lines (see `ChipOutput`).
            cols: evaluate and return only these columns (default all), with all the physics: every line still
                falls (the word-line kick sees all of them) and each decision gets the same noise draw as in a
                full evaluation, so the result equals the full one restricted to `cols`.
        Returns:
            ChipOutput; decisions +1 iff V_BL - V_BLB (+ offset + noise) >= theta x volts_per_lsb (ties +1).
        """
        sel = None if cols is None else self._check_cols(cols)
        codes = self.check_codes(codes)
        theta = self.check_theta(theta, None if sel is None else len(sel))
        if noise_seed is not None:
            noise_seed = check_int("noise_seed", noise_seed, 0)
        if self.weights is None:
            raise ValueError("weights=None: call program(weights) before evaluate")
        if noise_seed is None:
            noise_seed = int(torch.randint(0, 2 ** 62, (1,)).item())
        codes, theta = codes.to(self.device), theta.to(self.device)
        sel = None if sel is None else sel.to(self.device)
        if self.nonideal.is_ideal:
            return evaluate_ideal(self, codes, theta, sel, bool(dv), bool(drops))
        outer_threads = torch.get_num_threads()
        with torch_threads(elementwise_threads() if self.device.type == "cpu" else None):
            return evaluate_physical(self, codes, theta, sel, bool(dv), bool(drops), noise_seed, outer_threads)

    def retimed(self, params: _params.ParamSet) -> "Chip":
        """This chip (its mismatch draws, tables and weights) under another discharge time or bit-line capacitance.

        t_eval and C_BL do not change the cell tables, the drain law or the draws; they set volts_per_lsb, the
        temporal noise, and (through the cycle plan) the window-charge and coupling factors per code, which scale
        the factored tables exactly. Any other circuit parameter differing is a ValueError: build a new Chip."""
        allowed = {"t_eval", "c_bl_per_cell", "c_bl", "volts_per_lsb_nominal"}
        old, new = self.params.values(), _params.require(params).values()
        diff = sorted(k for k in old if k in new and k not in allowed and params.entry(k).section == "circuit"
                      and old[k] != new[k])
        if diff:
            raise ValueError(f"Chip.retimed: parameters {diff} differ from the chip's; only t_eval and c_bl_per_cell "
                             f"may change (build a new Chip for the others)")
        out = copy.copy(self)
        out.params = params
        with torch_threads(elementwise_threads()):
            out._set_timing(params)
            out._factors()
        return out

    def __repr__(self) -> str:
        return (f"Chip(n_chips={self.n_chips}, seed={self.seed}, first_chip={self.first_chip}, "
                f"nonideal={self.nonideal}, device={self.device}, volts_per_lsb={self.volts_per_lsb:.4g})")
