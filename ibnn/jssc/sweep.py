"""Which nonideality sets the chip's column errors, and how much it would have to change for the published outcome.

Both studies use the first sweep_chips chips of the main study's held-out batch (one seed: a Nonidealities scale
multiplies each chip's fixed standard-normal draws, so the chips are the same at every setting) and the first
sweep_test of its test images; the setting "everything at 1" is the main study itself (its rows for those chips).

`alone_study`: the software-trained classifier (a) with one random mechanism at a time at its parameter-set
magnitude (the drain-law compression, the bit-line's deterministic physics, stays on; it is also shown alone):
which mechanism makes the column errors.

`mismatch_sweep`: (a), and optionally chip-in-the-loop boosting (b), with the cell mismatch scaled (the other
nonidealities at 1). A power law drop = c sigma^p through each arm's points (`ibnn.analysis.inverse.
fit_power_law`, refitted in every two-level bootstrap replicate, every point on the same resamples) gives the
cell sigma(Vt) at which the drop reaches a target, with its interval: for (a) the mismatch below which software
training alone would have been digital-equivalent (the paper's training algorithm unnecessary), for (b) where
chip-in-the-loop boosting is.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import torch

from ..analysis.bootstrap import drop_ci, resolution
from ..analysis.inverse import fit_power_law
from ..circuit import NONIDEALITIES, Chip, Nonidealities, physical_magnitude
from ..validate import check_real
from .boost import BoostConfig, Boosted
from .columns import Layout
from .inloop import chip_decisions, prefix_correct, train_in_loop
from .onchip import ChipRun
from .study import Data, Sizes


def _check(run: ChipRun, sizes: Sizes):
    n_chips, n_images = run.ok_a.shape[1:]
    if sizes.sweep_chips > n_chips or sizes.sweep_test > n_images:
        raise ValueError(f"sweep_chips={sizes.sweep_chips}, sweep_test={sizes.sweep_test} exceed the main study's "
                         f"{n_chips} chips x {n_images} test images")
    if run.nonideal != asdict(Nonidealities()):
        raise ValueError(f"the main study must have every nonideality at 1 (got {run.nonideal})")


def _images(D: Data, sizes: Sizes):
    test = D.test_idx[:sizes.sweep_test]
    return D.x_test[test], D.y_test[test]


def _drop_entry(ok: torch.Tensor, s: torch.Tensor, n_boot: int, seed: int) -> dict:
    ci = drop_ci(ok, s, n_boot, seed)
    return {"drop": ci.as_dict(), "resolution": resolution(ci).as_dict()}


def _on_chips(P, D, sizes, config, classifier: Boosted, nonideal: Nonidealities):
    """Correctness (sweep_chips, sweep_test) and column decisions of one classifier on the sweep's chips."""
    xt, yt = _images(D, sizes)
    chip = Chip(P, n_chips=sizes.sweep_chips, seed=sizes.chip_seed, nonideal=nonideal)
    h = chip_decisions(chip, classifier, xt, Layout.of(config, P), noise_seed=sizes.seed + 11)
    return prefix_correct(classifier, h, yt)[-1], h, chip


def alone_study(P, D: Data, sizes: Sizes, config: BoostConfig, run: ChipRun) -> dict:
    """Drop of the software-trained classifier, and the fraction of its column decisions that differ from the
    ideal column, with each random mechanism alone at scale 1 (+ compression), compression alone, and all."""
    _check(run, sizes)
    sw, (xt, yt) = run.software, _images(D, sizes)
    ideal = sw.ideal_decisions(xt)
    s = run.ok_sw[-1, :sizes.sweep_test]
    out = {}
    for name in NONIDEALITIES:
        kw = {n: 0.0 for n in NONIDEALITIES}
        kw.update({name: 1.0, "compression": 1.0})
        ok, h, _ = _on_chips(P, D, sizes, config, sw, Nonidealities(**kw))
        mag = physical_magnitude(name, 1.0, P)
        out[name] = {**_drop_entry(ok, s, sizes.n_boot, sizes.seed), "column_flip_rate":
                     float((h != ideal).double().mean()), "magnitude": mag[0], "magnitude_unit": mag[1]}
    ok_all = run.ok_a[-1, :sizes.sweep_chips, :sizes.sweep_test]
    out["all"] = _drop_entry(ok_all, s, sizes.n_boot, sizes.seed)
    return {"n_chips": sizes.sweep_chips, "n_images": int(len(yt)), "compression_always_on": True,
            "mechanisms": out}


def _first_chips(b: Boosted, n: int) -> Boosted:
    """The classifiers of the first n chips of a per-chip Boosted."""
    return replace(b, w=b.w[:n], T=b.T[:n], alpha=b.alpha[:n], train_error=b.train_error[:n])


def _in_loop_point(P, D, sizes, config, scale):
    """(b) correctness (sweep_chips, sweep_test) with chip-in-the-loop training at one cell-mismatch scale."""
    xt, yt = _images(D, sizes)
    layout = Layout.of(config, P)
    chip = Chip(P, n_chips=sizes.sweep_chips, seed=sizes.chip_seed, nonideal=Nonidealities(cell_mismatch=scale))
    il = train_in_loop(chip, D.x_train[D.loop_idx], D.y_train[D.loop_idx], config, D.S_inv, layout,
                       noise_seed=sizes.seed + 101)
    return prefix_correct(il, chip_decisions(chip, il, xt, layout, sizes.seed + 11), yt)[-1]


def mismatch_sweep(P, D: Data, sizes: Sizes, config: BoostConfig, run: ChipRun, target: float = 0.005,
                   in_loop: bool = False) -> dict:
    """Drops at cell-mismatch scales sizes.sweep_scales + (1,) (scale 1: the main study's chips) of (a) and, with
    `in_loop`, of (b) trained per chip at every scale; per arm the power-law fit against cell sigma(Vt) and the
    sigma at which the drop equals `target` (a fraction: 0.005 = half a point), with its interval; `factor` =
    that sigma over the parameter set's (what the cell mismatch would have to be multiplied by)."""
    target = check_real("target", target, 0.0, lo_open=True)
    _check(run, sizes)
    scales, n, m = [*sizes.sweep_scales, 1.0], sizes.sweep_chips, sizes.sweep_test
    s = run.ok_sw[-1, :m]
    mats = {"software_trained": [_on_chips(P, D, sizes, config, run.software, Nonidealities(cell_mismatch=sc))[0]
                                 for sc in scales[:-1]] + [run.ok_a[-1, :n, :m]]}
    if in_loop:
        mats["chip_in_the_loop"] = [_in_loop_point(P, D, sizes, config, sc) for sc in scales[:-1]] + \
                                   [run.ok_b[-1, :n, :m]]
    sigma = [physical_magnitude("cell_mismatch", sc, P)[0] for sc in scales]
    out = {"scales": scales, "sigma_vt_mV": sigma, "n_chips": n, "n_images": m, "target_drop": target, "arms": {}}
    for arm, mm in mats.items():
        points = [_drop_entry(c, s, sizes.n_boot, sizes.seed) for c in mm]
        out["arms"][arm] = {"points": points, "fit": _fit(sigma, mm, s, target, sizes, points)}
    return out


def _fit(sigma, mats, s, target, sizes, points) -> dict:
    """The power-law fit of one arm as a dict, with `factor` (sigma at the target over the parameter set's); a
    fit needs two points with a positive drop, else {"fitted": False, "reason": ...}."""
    if sum(p["drop"]["mean_drop"] > 0 for p in points) < 2:
        return {"fitted": False, "reason": "fewer than two sweep points with a positive drop"}
    fit = fit_power_law(sigma, mats, [s] * len(mats), target, sizes.n_boot, sizes.seed)
    f = {"fitted": True, **fit.as_dict()}
    f["factor"] = None if fit.x_at_target is None else fit.x_at_target / sigma[-1]
    f["factor_ci95"] = None if fit.x_ci95 is None else [v / sigma[-1] for v in fit.x_ci95]
    return f
