"""Design choices of the boosted classifier made on validation data, never on the test set or the held-out chips.

`choose_bias_rows`: how many coarse bias rows (code 31) the columns share. Every bias row is driven in every cycle,
so each adds mismatched current to both bit-lines of every column (and word-line and DAC energy): fewer rows give
fewer column errors but a shorter threshold reach. Chip-in-the-loop boosting is trained for each candidate on
development chips (their own seed, below the held-out chips') and scored on validation images of the TRAINING
split that chip-in-the-loop training does not use; `ibnn.analysis.inverse.choose_on_validation` takes the fewest
rows whose accuracy is not resolvably below the best candidate's. `scripts/jssc_choose_bias_rows.py` runs it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..analysis.inverse import choose_on_validation
from ..validate import check_int
from .boost import BoostConfig
from .onchip import chip_study
from .study import Data, Sizes

DEV_CHIP_SEED = 500          # development chips: design choices are made on these (held-out chips: seeds >= 1000)


def validation_data(D: Data, n_val: int, seed: int) -> Data:
    """D with its test images replaced by n_val validation images of the training split outside D.loop_idx."""
    n_val = check_int("n_val", n_val, 10)
    rest = np.setdiff1d(np.arange(len(D.y_train)), D.loop_idx.numpy())
    val = np.sort(np.random.Generator(np.random.PCG64(check_int("seed", seed, 0))).permutation(rest)[:n_val])
    return replace(D, x_test=D.x_train, y_test=D.y_train, test_idx=torch.as_tensor(val))


def choose_bias_rows(P, D: Data, sizes: Sizes, config: BoostConfig, candidates=(1, 2, 4, 6, 8), n_chips: int = 20,
                     n_val: int = 2000) -> dict:
    """The chip-in-the-loop validation accuracy of each candidate number of coarse bias rows on n_chips
    development chips, and the choice (the cheapest in bias rows not resolvably worse than the best). D must hold
    the features of the training images the validation draws from (the profile's n_sw first ones)."""
    n_chips = check_int("n_chips", n_chips, 1)
    Dv = validation_data(D, n_val, sizes.seed + 5)
    dev = replace(sizes, n_chips=n_chips, n_test=len(Dv.test_idx), chip_seed=DEV_CHIP_SEED,
                  sweep_chips=min(sizes.sweep_chips, n_chips), sweep_test=min(sizes.sweep_test, len(Dv.test_idx)))
    mats, accs = [], {}
    for K in candidates:
        run = chip_study(P, Dv, dev, replace(config, n_coarse=check_int("n_coarse", K, 0)))
        mats.append(run.ok_b[-1])
        accs[str(K)] = {"chip_in_the_loop": float(run.ok_b[-1].double().mean()),
                        "software": float(run.ok_sw[-1].double().mean()),
                        "software_trained": float(run.ok_a[-1].double().mean())}
    zeros = [torch.zeros(mats[0].shape[1])] * len(mats)         # drop = -accuracy: the best is the most accurate
    costs = [replace(config, n_coarse=K).bias.n_rows for K in candidates]
    choice = choose_on_validation(list(candidates), costs, mats, zeros, sizes.n_boot, sizes.seed)
    return {"chosen": choice.chosen, "best": choice.best, "rule": choice.rule, "accuracies": accs,
            "resolution": choice.resolution.as_dict(), "n_chips": n_chips, "n_images": int(len(Dv.test_idx)),
            "chip_seed": DEV_CHIP_SEED}
