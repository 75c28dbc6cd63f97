"""The word-line DAC (WLDAC): a 5-bit binary-weighted current DAC driving a scaled-up, diode-connected replica
bit-cell that sets the analog word-line voltage V_WL; each cell on the row mirrors the replica's current.

Model (constants in ibnn/params_data/circuit.toml):

* Bit b of the code switches 2**b unit current sources of I_u each (I_u = replica_ratio x cell_lsb_current). Each
  unit source has a relative error N(0, sigma_u^2) (Pelgrom on the PMOS unit source), so bit b carries
  I_u 2**b (1 + e_b) with e_b ~ N(0, sigma_u^2 / 2**b). Per row of a chip: `bits` static numbers.
* The replica is the read stack of a bit-cell with both devices k = replica_ratio times wider, diode-connected
  (word line tied to its own bit-line node, as in Zhang, Wang, Verma, JSSC 2017: 'the current is pulled down by a
  scaled-up bit-cell, which generates the WL voltage'): k I_cell(V_WL, V_D = V_WL) = I_DAC. This class is the
  nominal replica; its own mismatch (sigma / sqrt(k)) is ibnn.circuit.replica's, which starts its exact solve
  from this class's table of V_WL and of the replica's internal node against current.
* Code 0 switches every source off: V_WL = 0 exactly (the row is off, cells only leak).
* A cell of the row then carries I_cell(V_WL, V_BL; its dVt, dbeta): it copies I_DAC / k only to the extent that
  its drain (V_BL ~ VDD) matches the replica's (V_WL); DIBL and CLM make the copy larger and code-dependent, and the
  cell's own mismatch perturbs it. The code -> cell-current transfer, its INL and DNL come out of this model.

The inverse of the replica law (I_DAC -> V_WL) is tabulated once per parameter set on a fine V grid and
interpolated in log-current; the interpolation error is below 1e-4 relative (checked in tests).
"""
from __future__ import annotations

import torch

from .. import params as _params
from ..validate import check_codes, check_int, check_nonneg
from .bitcell import BitCell, ekv_current

_GRID = 4097


class WLDAC:
    """Word-line DAC of one row type. Codes are integer tensors in 0..2**bits-1."""

    def __init__(self, params: _params.ParamSet, cell: BitCell | None = None):
        P = _params.require(params)
        self.params = P
        self.cell = cell if cell is not None else BitCell(P)
        self.bits = P.int("input_bits")
        self.max_code = 2 ** self.bits - 1
        self.ratio = P["replica_ratio"]
        self.unit_current = P["dac_unit_current"]
        self.sigma_unit = P["sigma_dac_unit"]
        self.vdd = P["vdd"]
        v = torch.linspace(0.0, self.vdd, _GRID, dtype=torch.float64)
        x = self.cell.internal_node(v, v)                 # the replica's internal node (= replica_current(v))
        self.grid_v, self.grid_node = v, x                # on linspace(0, VDD, _GRID): read by ibnn.circuit.wordline
        i = self.ratio * torch.clamp(ekv_current(self.cell.pulldown, self.vdd, x, 0.0), min=0.0)
        # the table starts at the first grid point (V = 0 gives I = 0: log undefined; code 0 is handled exactly)
        self._v, self._x = v[1:], x[1:]
        self._logi = torch.log(i[1:])
        if not bool((self._logi[1:] > self._logi[:-1]).all()):  # pragma: no cover - physics guard
            raise ValueError("replica current is not monotone in V_WL; check the bit-cell parameters")

    # --- DAC -------------------------------------------------------------------------------------------------
    def draw_bit_errors(self, shape, generator: torch.Generator | None = None, scale: float = 1.0):
        """Relative error of each bit's current, (*shape, bits): e_b ~ N(0, sigma_u^2 / 2**b) x scale."""
        scale = check_nonneg("scale", scale)
        z = torch.randn((*shape, self.bits), generator=generator, dtype=torch.float64)
        w = torch.tensor([2.0 ** -b for b in range(self.bits)], dtype=torch.float64).sqrt()
        return scale * self.sigma_unit * w * z

    def dac_current(self, codes, bit_err=None) -> torch.Tensor:
        """I_DAC (A) for the codes; bit_err (..., bits) broadcast against codes[..., None]."""
        codes = check_codes("codes", codes, self.max_code)
        b = torch.arange(self.bits)
        bitsel = ((codes.long()[..., None] >> b) & 1).to(torch.float64)
        weight = 2.0 ** b.to(torch.float64)
        if bit_err is not None:
            weight = weight * (1.0 + torch.as_tensor(bit_err, dtype=torch.float64))
        return self.unit_current * (bitsel * weight).sum(-1)

    # --- replica ---------------------------------------------------------------------------------------------
    def replica_current(self, v_wl) -> torch.Tensor:
        """Current of the diode-connected replica (k cells wide) at word-line voltage v_wl (A)."""
        v = torch.as_tensor(v_wl, dtype=torch.float64)
        return self.ratio * self.cell.current(v, v)

    def word_line_voltage(self, i_dac) -> torch.Tensor:
        """V_WL (V) that makes the replica sink i_dac; 0 for i_dac = 0 (row off)."""
        i = torch.as_tensor(i_dac, dtype=torch.float64)
        if bool((i < 0).any()) or not bool(torch.isfinite(i).all()):
            raise ValueError("i_dac must be finite and >= 0 A")
        v = torch.clamp(self._interp(i, self._v), 0.0, self.vdd)
        return torch.where(i > 0, v, torch.zeros_like(v))

    def nominal_solution(self, i_dac) -> tuple[torch.Tensor, torch.Tensor]:
        """(V_WL, internal node X) in V of the nominal replica sinking i_dac > 0, both interpolated from the table
        (the start of the exact solve in ibnn.circuit.replica)."""
        v, x = self._interp(torch.as_tensor(i_dac, dtype=torch.float64), self._v, self._x)
        return torch.clamp(v, 0.0, self.vdd), x

    def _interp(self, i: torch.Tensor, *ys: torch.Tensor):
        """Each y (tabulated against the replica's current) at currents i, linear in log-current (one search)."""
        li = torch.log(torch.clamp(i, min=1e-300))
        x = self._logi
        idx = torch.searchsorted(x, li.reshape(-1).contiguous()).clamp(1, len(x) - 1).reshape(li.shape)
        x0, x1 = x[idx - 1], x[idx]
        out = tuple(y[idx - 1] + (li - x0) * (y[idx] - y[idx - 1]) / (x1 - x0) for y in ys)
        return out[0] if len(out) == 1 else out

    def code_to_vwl(self, codes, bit_err=None) -> torch.Tensor:
        """V_WL (V) for codes (with per-bit current errors bit_err, broadcast against codes[..., None])."""
        return self.word_line_voltage(self.dac_current(codes, bit_err))

    def cell_current(self, codes, bit_err=None, dvt=0.0, dbeta=0.0, v_bl=None) -> torch.Tensor:
        """Current (A) of a cell on a row driven with `codes`, its bit-line at v_bl (default VDD)."""
        v_bl = self.vdd if v_bl is None else v_bl
        return self.cell.current(self.code_to_vwl(codes, bit_err), v_bl, dvt, dbeta)

    def transfer(self, v_bl=None) -> torch.Tensor:
        """Nominal code -> cell current (A) for codes 0..max_code."""
        return self.cell_current(torch.arange(self.max_code + 1), v_bl=v_bl)


@_params.cached_per_set(16)
def nominal_dac(P: _params.ParamSet) -> WLDAC:
    """The WLDAC of P (its nominal replica), built once per parameter values within the process: the chip's cell
    model, its drain law, the word line and the precharge sizing share its table (a 4097-point series-stack solve).
    Read only."""
    return WLDAC(P)


def inl_dnl(currents) -> tuple[torch.Tensor, torch.Tensor]:
    """INL and DNL (in LSB) of a transfer curve currents[..., code] against its end-point line.

    LSB = (I[last] - I[0]) / (n - 1); INL[c] = (I[c] - I[0]) / LSB - c; DNL[c] = (I[c] - I[c-1]) / LSB - 1
    for c >= 1 (DNL has one entry fewer)."""
    i = torch.as_tensor(currents, dtype=torch.float64)
    n = check_int("number of codes", i.shape[-1], 2)
    lsb = (i[..., -1] - i[..., 0]) / (n - 1)
    c = torch.arange(n, dtype=torch.float64)
    inl = (i - i[..., :1]) / lsb[..., None] - c
    dnl = (i[..., 1:] - i[..., :-1]) / lsb[..., None] - 1.0
    return inl, dnl
