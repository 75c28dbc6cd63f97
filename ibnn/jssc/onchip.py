"""The classifier on simulated chips: (a) boosting trained in software and run on chip, against (b) error-adaptive
boosting trained per chip in the loop, both on the same held-out chips, training images and test images, and the
software classifier trained on those same images as the paired reference.

Statistics (`summarise`) come from `ibnn.analysis.bootstrap`: accuracies with the two-level bootstrap over chips
x test images (it covers the chips made, the test images drawn and the temporal noise of every decision), drops
paired per image against the software classifier, the (b) - (a) difference paired on the same chips and images,
and each experiment's resolution. Every interval of one run uses the same resamples (same seed and shape).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from ..analysis.bootstrap import accuracy_ci, paired_difference, resolution
from ..circuit import Chip, Nonidealities
from ..validate import check_int
from .boost import BoostConfig, Boosted, boost
from .columns import Layout
from .inloop import chip_decisions, prefix_correct, rounds_needed, train_in_loop
from .study import Data, Sizes, curve


class Clock:
    """Laps of wall and process CPU seconds (all threads), for the notebook's timing table."""

    def __init__(self):
        self.laps, self._w, self._c = {}, time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        """Record the time since the previous lap under `name`."""
        w, c = time.perf_counter(), time.process_time()
        self.laps[name] = {"wall_s": w - self._w, "cpu_s": c - self._c}
        self._w, self._c = w, c


@dataclass
class ChipRun:
    """Prefix correctness (weak classifiers per class r = 1..R) of the software reference ok_sw (R, N), of the
    software-trained classifier on chip ok_a (R, n_chips, N) and of chip-in-the-loop ok_b (R, n_chips, N)."""

    ok_sw: torch.Tensor
    ok_a: torch.Tensor
    ok_b: torch.Tensor
    n_train: int
    nonideal: dict
    column_flip_rate: float
    train_error_first_round: dict
    software: Boosted = field(repr=False, default=None)
    in_loop: Boosted = field(repr=False, default=None)
    chip: Chip = field(repr=False, default=None)
    seconds: dict = field(default_factory=dict)


def chip_study(P, D: Data, sizes: Sizes, config: BoostConfig, nonideal: Nonidealities | None = None,
               n_chips: int | None = None, n_test: int | None = None, software: Boosted | None = None) -> ChipRun:
    """(a) and (b) on n_chips (default sizes.n_chips) held-out chips of seed sizes.chip_seed, trained on the
    n_loop training images, tested on the first n_test (default sizes.n_test) of the test subset.
    software: the software classifier on the same training images, if already trained (it needs no chip)."""
    n_chips = sizes.n_chips if n_chips is None else check_int("n_chips", n_chips, 1)
    test = D.test_idx[:sizes.n_test if n_test is None else check_int("n_test", n_test, 1)]
    clock, layout = Clock(), Layout.of(config, P)
    x, y = D.x_train[D.loop_idx], D.y_train[D.loop_idx]
    xt, yt = D.x_test[test], D.y_test[test]
    sw = boost(x, y, config, D.S_inv) if software is None else software
    clock.lap("software training")
    chip = Chip(P, n_chips=n_chips, seed=sizes.chip_seed, nonideal=nonideal)
    clock.lap("making the chips")
    h_a = chip_decisions(chip, sw, xt, layout, noise_seed=sizes.seed + 11)
    clock.lap("(a) on chip")
    il = train_in_loop(chip, x, y, config, D.S_inv, layout, noise_seed=sizes.seed + 101)
    clock.lap("(b) chip-in-the-loop training")
    h_b = chip_decisions(chip, il, xt, layout, noise_seed=sizes.seed + 11)
    clock.lap("(b) on chip")
    ideal = sw.ideal_decisions(xt)
    errors = {"software": float(sw.train_error[:, :config.n_classes].mean()),
              "chip_in_the_loop": float(il.train_error[:, :config.n_classes].mean())}
    return ChipRun(prefix_correct(sw, ideal, yt)[:, 0], prefix_correct(sw, h_a, yt), prefix_correct(il, h_b, yt),
                   len(y), asdict(chip.nonideal), float((h_a != ideal).double().mean()), errors, sw, il, chip,
                   clock.laps)


def _accuracy(ok: torch.Tensor, ok_sw: torch.Tensor, n_boot: int, seed: int) -> dict:
    """An arm's chip accuracy (two-level interval), its paired drop against the software reference and the
    drop's resolution."""
    ci = accuracy_ci(ok, ok_sw, n_boot, seed)
    return {"mean": ci.accuracy, "ci95": ci.ci95, "se": ci.se, "n_chips": ci.n_chips, "n_images": ci.n_images,
            "ci_method": ci.ci_method, "software_accuracy_same_images": ci.software_accuracy,
            "drop": ci.drop.as_dict(), "resolution": resolution(ci.drop).as_dict()}


def _spread(ok: torch.Tensor) -> dict:
    per_chip = ok.double().mean(1)
    return {"per_chip": per_chip.tolist(), "sd": float(per_chip.std()) if len(per_chip) > 1 else 0.0,
            "min": float(per_chip.min()), "max": float(per_chip.max())}


def summarise(run: ChipRun, n_boot: int = 2000, seed: int = 0) -> dict:
    """The statistics of a chip run (JSON-ready): the software reference, (a) and (b) with intervals, drops and
    resolutions, the paired (b) - (a) gain, accuracy curves by weak classifiers per class, the weak classifiers
    each needs to come within the (b) drop's resolution of the software accuracy, and the spread over chips."""
    s, a, b = run.ok_sw[-1], run.ok_a[-1], run.ok_b[-1]
    out = {"software_trained": _accuracy(a, s, n_boot, seed), "chip_in_the_loop": _accuracy(b, s, n_boot, seed)}
    gain = paired_difference(b, s, a, of="accuracy", n_boot=n_boot, seed=seed)
    out["gain_in_loop_over_software_trained"] = {**gain.as_dict(), "resolution": resolution(gain).as_dict()}
    out["software_same_training"] = {"mean": float(s.double().mean()), "n_train": run.n_train,
                                     "n_images": int(s.numel())}
    curves = {"software": curve(run.ok_sw), "software_trained": curve(run.ok_a), "chip_in_the_loop": curve(run.ok_b)}
    tol = out["chip_in_the_loop"]["resolution"]["halfwidth"]
    out["curves"] = curves
    out["rounds_to_software_within_resolution"] = {k: rounds_needed(v, curves["software"][-1], tol)
                                                   for k, v in curves.items()}
    out["tolerance_for_rounds"] = tol
    out["spread_over_chips"] = {"software_trained": _spread(a), "chip_in_the_loop": _spread(b)}
    out["column_flip_rate_software_trained"] = run.column_flip_rate
    out["train_error_first_round"] = run.train_error_first_round
    out["n_train"], out["nonideal"] = run.n_train, run.nonideal
    return out
