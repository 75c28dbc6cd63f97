"""The boosted classifier on the array: where its cells sit, the word-line codes of a classify cycle, and the
decisions of a subset of columns (what chip-in-the-loop training reads after each round).

Layout (`Layout`), one classify cycle per decision (every column is read in the same cycle):
* pixel i (0..n_features-1) on row i; the bias rows at the top of the array (rows R-1, R-2, ...: the fine rows
  first, then the coarse ones), as in `ibnn.mapping`; every other row is driven with code 0 (word line off).
* column j holds weak classifier j (j = round * n_classes + class); columns after the last one are unused.
* cells that belong to no classifier hold the checkerboard +1/-1 ((row + col) even -> +1) of `ibnn.mapping`.
The comparator reference is 0 on every column (the threshold is in the bias rows).

Column subsets (`column_decisions`) go through the chip's public evaluation, `Chip.evaluate(codes, theta,
noise_seed, cols=...)`: only the asked columns are evaluated and returned, with all the chip's physics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import params as _params
from ..validate import check_int
from .weak import BiasRows


@dataclass(frozen=True)
class Layout:
    """Rows and columns of the boosted classifier on a rows x cols array (`Layout.of(config, P)`)."""

    bias: BiasRows
    n_features: int
    rows: int
    cols: int

    def __post_init__(self):
        check_int("n_features", self.n_features, 1)
        check_int("rows", self.rows, 1)
        check_int("cols", self.cols, 1)
        if self.n_features + self.bias.n_rows > self.rows:
            raise ValueError(f"{self.n_features} data rows + {self.bias.n_rows} bias rows do not fit "
                             f"{self.rows} rows ({self.n_features + self.bias.n_rows - self.rows} over)")

    @classmethod
    def of(cls, config, P) -> "Layout":
        """The layout of a `BoostConfig` on the array of parameter set P (array_rows x array_cols, input_bits);
        ValueError if the classifier does not fit or its input bits are not the chip's."""
        P = _params.require(P)
        rows, cols, bits = P.int("array_rows"), P.int("array_cols"), P.int("input_bits")
        if config.bits != bits:
            raise ValueError(f"BoostConfig.bits={config.bits} must equal the chip's input_bits={bits}")
        config.check_fits(rows, cols)
        return cls(config.bias, config.n_features, rows, cols)

    @property
    def bias_rows(self) -> torch.Tensor:
        """(n_bias,) row of each bias row, in `BiasRows.codes` order (fine first, from the top row down)."""
        return torch.arange(self.rows - 1, self.rows - 1 - self.bias.n_rows, -1, dtype=torch.int64)

    def codes(self, x) -> torch.Tensor:
        """Word-line codes (B, rows) int64 of one classify cycle for pixel codes x (B, n_features)."""
        x = torch.as_tensor(x).to(torch.int64)
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x shape={tuple(x.shape)} must be (B, {self.n_features})")
        out = torch.zeros(x.shape[0], self.rows, dtype=torch.int64)
        out[:, :self.n_features] = x
        out[:, self.bias_rows] = self.bias.codes
        return out

    def filler(self) -> torch.Tensor:
        """(rows, cols) int8 checkerboard."""
        r = torch.arange(self.rows)[:, None]
        c = torch.arange(self.cols)[None, :]
        return torch.where((r + c) % 2 == 0, 1, -1).to(torch.int8)

    def column_cells(self, w: torch.Tensor, T: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(G, rows, m) int8 cells of m columns (indices `cols`): data weights w (G, m, D), bias cells realising
        B = -T (G, m), filler elsewhere."""
        G, m = T.shape
        out = self.filler()[:, cols][None].expand(G, -1, -1).clone()
        out[:, :self.n_features, :] = w.transpose(1, 2).to(torch.int8)
        pat = self.bias.pattern(-T.reshape(-1)).reshape(self.bias.n_rows, G, m)
        out[:, self.bias_rows, :] = pat.permute(1, 0, 2)
        return out

    def weights(self, w: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        """(G, rows, cols) int8 array image of G classifiers (w (G, C, D), T (G, C), columns 0..C-1)."""
        G, C = T.shape
        if C > self.cols:
            raise ValueError(f"{C} weak classifiers do not fit {self.cols} columns")
        out = self.filler()[None].expand(G, -1, -1).clone()
        out[:, :, :C] = self.column_cells(w, T, torch.arange(C))
        return out


def column_decisions(chip, codes, cols, noise_seed: int) -> torch.Tensor:
    """(n_chips, N, m) int8 comparator decisions (reference 0) of the columns `cols` (m,) of every instance of
    `chip` (programmed) for word-line codes (N, rows), temporal noise from `noise_seed`."""
    cols = torch.as_tensor(cols, dtype=torch.int64).reshape(-1)
    noise_seed = check_int("noise_seed", noise_seed, 0)
    return chip.evaluate(codes, None, noise_seed, cols=cols.tolist()).decisions.cpu()
