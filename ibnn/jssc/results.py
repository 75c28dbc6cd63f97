"""results/08_jssc_prototype.json from the study's stages, and what the chip model says about the published outcome.

The prototype paper's outcome has two parts: (1) with error-adaptive boosting (chip in the loop) the chip is as
accurate as a discrete digital system; (2) its training "overcomes circuit nonidealities", so training in
software alone would not have been enough. `verdict` reads both off the paired drops and their intervals: (1)
holds when the chip-in-the-loop drop is not resolvably above zero, (2) when the software-trained drop is
resolvably above zero. `needed_change` says which nonideality would have to change, and by how much, from the
cell-mismatch fit: for a part the model misses, what would make it hold; for a part it reproduces, how far the
mismatch could move before it no longer would.
"""
from __future__ import annotations

from dataclasses import asdict

from ..published import JSSC2017, JSSC2017_SOURCE
from .boost import BoostConfig
from .study import Sizes


def verdict(chips: dict) -> dict:
    """Both parts of the published outcome against the chip study's summary (`onchip.summarise`)."""
    b, a = chips["chip_in_the_loop"]["drop"], chips["software_trained"]["drop"]
    return {"in_loop_digital_equivalent": bool(b["ci95"][0] <= 0.0),
            "in_loop_drop": b["mean_drop"], "in_loop_drop_ci95": b["ci95"],
            "software_training_insufficient": bool(a["ci95"][0] > 0.0),
            "software_trained_drop": a["mean_drop"], "software_trained_drop_ci95": a["ci95"]}


def needed_change(v: dict, sweep: dict, alone: dict) -> dict:
    """Which nonideality sets the outcome (the largest software-trained drop alone) and the cell-mismatch factor
    from the sweep fit of the arm that decides it (chip in the loop if part (1) fails and it was swept, else the
    software-trained arm: the mismatch below which part (2) would fail)."""
    mech = alone["mechanisms"]
    dominant = max((k for k in mech if k != "all"), key=lambda k: mech[k]["drop"]["mean_drop"])
    arm = "chip_in_the_loop" if not v["in_loop_digital_equivalent"] and "chip_in_the_loop" in sweep["arms"] \
        else "software_trained"
    fit = sweep["arms"][arm]["fit"]
    return {"dominant_nonideality": dominant, "arm": arm, "target_drop": sweep["target_drop"],
            "fitted": fit.get("fitted", False), "sigma_vt_mV": fit.get("x_at_target"),
            "sigma_vt_mV_ci95": fit.get("x_ci95"), "factor": fit.get("factor"), "factor_ci95": fit.get("factor_ci95"),
            "quotable": fit.get("quotable", False), "exponent": fit.get("b"), "exponent_ci95": fit.get("b_ci95"),
            "sigma_vt_model_mV": sweep["sigma_vt_mV"][-1],
            "meaning": ("cell sigma(Vt) at which chip-in-the-loop boosting would lose only the target drop"
                        if arm == "chip_in_the_loop" else
                        "cell sigma(Vt) below which boosting trained in software would lose less than the target "
                        "drop on chip (the paper's training algorithm would then be unnecessary)")}


def resolutions(software: dict, chips: dict, sweep: dict) -> dict:
    """Each experiment's resolution (`ibnn.analysis.bootstrap.Resolution` as dicts): the software accuracy, both
    drops, the paired gain, every sweep point."""
    return {"software_accuracy": software["accuracy"]["resolution"],
            "drop_software_trained": chips["software_trained"]["resolution"],
            "drop_chip_in_the_loop": chips["chip_in_the_loop"]["resolution"],
            "gain_in_loop_over_software_trained": chips["gain_in_loop_over_software_trained"]["resolution"],
            "cell_mismatch_sweep": {arm: [p["resolution"] for p in r["points"]] for arm, r in sweep["arms"].items()}}


def assemble(config: BoostConfig, sizes: Sizes, software, linear: dict, standard: dict, s784: dict, chips: dict,
             alone: dict, sweep: dict, energy: dict) -> dict:
    """The notebook's results: the headline keys first, then everything they come from."""
    v = verdict(chips)
    sw = software.as_dict()
    keep = ("mean", "ci95", "se", "n_chips", "n_images", "ci_method", "drop", "resolution",
            "software_accuracy_same_images")
    return {
        "software_accuracy": {**sw["accuracy"], "n_train": sw["n_train"], "n_features": config.n_features},
        "chip_accuracy_software_trained": {k: chips["software_trained"][k] for k in keep},
        "chip_accuracy_chip_in_the_loop": {k: chips["chip_in_the_loop"][k] for k in keep},
        "n_weak_classifiers": config.n_columns,
        "energy_per_decision_J": energy["energy_per_decision_J"],
        "ratio_vs_discrete_standard": energy["ratio_vs_discrete_standard"],
        "ratio_vs_discrete_same_training": energy["ratio_vs_discrete_same_training"],
        "software_accuracy_784": {**s784["accuracy"], "n_train": s784["n_train"],
                                  "n_weak_classifiers": s784["n_weak_classifiers"]},
        "verdict": v, "needed_change": needed_change(v, sweep, alone),
        "resolution": resolutions(sw, chips, sweep),
        "gain_in_loop_over_software_trained": chips["gain_in_loop_over_software_trained"],
        "weak_classifiers_needed": {**chips["rounds_to_software_within_resolution"],
                                    "standard_boosting_to_software_accuracy": standard["n_weak_classifiers_to_target"],
                                    "software_rounds_to_published_accuracy": sw["rounds_to_published"]},
        "software": sw, "linear_baseline": linear, "standard_boosting": standard, "software_784": s784,
        "chips": chips, "nonideality_alone": alone, "cell_mismatch_sweep": sweep, "energy": energy,
        "config": asdict(config), "sizes": {**asdict(sizes), "sweep_scales": list(sizes.sweep_scales)},
        "published": {**JSSC2017, "source": JSSC2017_SOURCE},
    }
