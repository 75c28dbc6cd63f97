"""Training on chips (error-adaptive boosting, chip in the loop) and running boosted classifiers on chips.

Chip in the loop (`train_in_loop`), per chip, as the prototype's training does it (J. Zhang, Z. Wang, N. Verma,
IEEE JSSC 52(4), 2017; error-adaptive classifier boosting, Z. Wang, R. Schapire, N. Verma, IEEE TCAS-I 62(4),
2015): round t trains the ten new weak classifiers in software on sample weights that come from THAT chip's
comparator outputs of the columns before it, writes them into columns t * 10 + k, reads their decisions on the
TRAINING images (`columns.column_decisions`: only those columns), and takes the vote weight from that chip's
actual error. Only comparator outputs are observed, as on silicon. Every chip of the batch trains at once
(`boost` with one problem set per chip).

Running (`chip_decisions`): the classifiers' array image is programmed on every chip and one classify cycle per
test image is evaluated by `Chip.evaluate` (all nonidealities, temporal noise from `noise_seed`).
"""
from __future__ import annotations

import torch

from ..validate import check_int, check_real
from .boost import BoostConfig, Boosted, boost, prefix_votes, quantise_alpha
from .columns import Layout, column_decisions


def train_in_loop(chip, x, labels, config: BoostConfig, S_inv, layout: Layout, noise_seed: int = 0) -> Boosted:
    """Error-adaptive boosting on every instance of `chip`, on training codes x (N, n_features), labels (N,).

    Returns a Boosted with one classifier per chip (G = chip.n_chips). noise_seed: temporal noise of the training
    cycles (round t reads with noise seed noise_seed + t). The chip is left programmed with the trained images."""
    noise_seed = check_int("noise_seed", noise_seed, 0)
    x = torch.as_tensor(x).to(torch.int64)
    codes = layout.codes(x)
    G, K = chip.n_chips, config.n_classes
    image = layout.filler()[None].expand(G, -1, -1).clone()

    def respond(t, L):
        cols = t * K + torch.arange(K)
        image[:, :, cols] = layout.column_cells(L.w.reshape(G, K, -1), L.T.reshape(G, K), cols)
        chip.program(image)
        return column_decisions(chip, codes, cols, noise_seed + t).transpose(1, 2)          # (G, K, N)

    return boost(x, labels, config, S_inv, respond=respond, n_problems=G)


def chip_decisions(chip, boosted: Boosted, x, layout: Layout, noise_seed: int = 1) -> torch.Tensor:
    """(n_chips, N, n_columns) int8: the classifier(s) programmed on every chip (one per chip, or one for all)
    and evaluated on codes x (N, n_features) by `Chip.evaluate` (comparator reference 0)."""
    G = boosted.w.shape[0]
    if G not in (1, chip.n_chips):
        raise ValueError(f"boosted has {G} classifiers; the chip batch has {chip.n_chips} chips (give 1 or "
                         f"{chip.n_chips})")
    W = layout.weights(boosted.w, boosted.T)
    chip.program(W[0] if G == 1 else W)
    cols = torch.arange(boosted.config.n_columns)
    return column_decisions(chip, layout.codes(x), cols, check_int("noise_seed", noise_seed, 0))


def prefix_correct(boosted: Boosted, h: torch.Tensor, labels) -> torch.Tensor:
    """(n_per_class, G, N) bool: correct with the first r = 1..n_per_class weak classifiers per class, the vote
    weights quantised once for the whole classifier (as the vote logic stores them; the last entry is exactly
    `boosted.predict(h)`)."""
    y = torch.as_tensor(labels).to(torch.int64)
    a = quantise_alpha(boosted.alpha, boosted.config.alpha_bits)
    return prefix_votes(h, a, boosted.config.n_classes) == y[None, None]


def rounds_needed(curve, target: float, tolerance: float = 0.0):
    """Smallest r (1-based index into `curve`, accuracy per number of weak classifiers per class) with
    curve[r-1] >= target - tolerance; None if never."""
    tolerance = check_real("tolerance", tolerance, 0.0)
    for r, a in enumerate(curve, 1):
        if a >= target - tolerance:
            return r
    return None
