"""Energy per decision on the array against the digital systems the prototype paper compares with.

On the array (`ibnn.jssc.energy.imc_decision_energy`): the chip-in-the-loop classifiers of the main study on every
held-out chip, one classify cycle per image, the bit-line drops from the chip model, the cycle energy from the
cost room, plus the weighted vote. Digital, on the same parameter set (`ibnn.jssc.energy`):

* same training: the same boosted classifier (n_columns 1-b weak classifiers and the vote) on a discrete SRAM +
  digital-MAC datapath; the published 13x compares with this system;
* standard training: the cheapest digital classifier trained the standard way that reaches the software boosted
  classifier's accuracy: closed-form boosting with as many weak classifiers as it takes (`study.standard_boosting`)
  or a linear classifier with the fewest weight bits (`study.linear_baseline`); the published 113x compares with
  such a system.

What the published ratios imply: 13 x 630 pJ and 113 x 630 pJ for the two discrete systems, so the standard one
costs 113 / 13 times the same-training one; on this digital model that is the boosted structure with the weight
precision, or the number of 1-b weak classifiers, that costs that many times as much (an inference about the
paper's discrete systems, not a fact).
"""
from __future__ import annotations

from ..published import JSSC2017
from ..validate import check_int
from .boost import BoostConfig
from .columns import Layout
from .energy import digital_boosted_energy, digital_linear_energy, imc_decision_energy
from .onchip import ChipRun
from .study import Data, Sizes


def _sum(bd: dict) -> float:
    return float(sum(bd.values()))


def _standard_options(P, config: BoostConfig, linear: dict, standard: dict, target: float) -> dict:
    """The standard-training digital systems that reach `target`, with their energy (J) per decision."""
    c = config
    opts = {}
    n_std = standard.get("n_weak_classifiers_to_target")
    if n_std is not None:
        opts["standard_boosting"] = {"n_weak_classifiers": n_std, "weight_bits": 1, "energy_J": _sum(
            digital_boosted_energy(P, n_std, c.n_features, c.bits, c.n_classes, c.alpha_bits))}
    reach = [b for b in range(1, 9) if linear["accuracy_by_weight_bits"][str(b)] >= target]
    if reach:
        b = min(reach)
        opts["linear"] = {"weight_bits": b, "accuracy": linear["accuracy_by_weight_bits"][str(b)],
                          "energy_J": _sum(digital_linear_energy(P, b, c.n_features, c.bits, c.n_classes))}
    return opts


def _implied(P, config: BoostConfig, digital_same_J: float) -> dict:
    """What the published standard / same-training ratio means on this digital model."""
    c = config
    k = JSSC2017["ratio_vs_discrete_standard"] / JSSC2017["ratio_vs_discrete_same_training"]
    by_bits = {str(b): _sum(digital_boosted_energy(P, c.n_columns, c.n_features, c.bits, c.n_classes, c.alpha_bits,
                                                   weight_bits=b)) for b in range(1, 11)}
    bits = next((int(b) for b, e in by_bits.items() if e / digital_same_J >= k), None)
    pub_std = JSSC2017["ratio_vs_discrete_standard"] * JSSC2017["energy_per_decision_J"]
    bits_abs = next((int(b) for b, e in by_bits.items() if e >= pub_std), None)
    n = c.n_columns
    while n < 100 * c.n_columns and _sum(digital_boosted_energy(P, n, c.n_features, c.bits, c.n_classes,
                                                                c.alpha_bits)) < k * digital_same_J:
        n += c.n_classes
    pub = JSSC2017["energy_per_decision_J"]
    return {"published_standard_over_same": k,
            "published_discrete_same_training_J": JSSC2017["ratio_vs_discrete_same_training"] * pub,
            "published_discrete_standard_J": JSSC2017["ratio_vs_discrete_standard"] * pub,
            "digital_boosted_by_weight_bits_J": by_bits, "boosted_weight_bits_for_published_ratio": bits,
            "boosted_weight_bits_for_published_standard_J": bits_abs,
            "boosted_1b_weak_classifiers_for_published_ratio": n}


def energy_study(P, run: ChipRun, D: Data, sizes: Sizes, config: BoostConfig, linear: dict, standard: dict,
                 target: float) -> dict:
    """Energy per decision on the array (chip-in-the-loop classifiers, every chip of `run`, the first
    energy_images test images of the subset) and of the digital systems; the ratios and what the published
    ones imply. target: the accuracy the standard-training systems must reach (the software boosted one's)."""
    n = check_int("energy_images", sizes.energy_images, 1)
    layout = Layout.of(config, P)
    x = D.x_test[D.test_idx[:n]]
    imc = imc_decision_energy(P, run.chip, run.in_loop, x, layout)
    c = config
    same = digital_boosted_energy(P, c.n_columns, c.n_features, c.bits, c.n_classes, c.alpha_bits)
    opts = _standard_options(P, config, linear, standard, target)
    best = min(opts, key=lambda k: opts[k]["energy_J"]) if opts else None
    out = {"energy_per_decision_J": imc.total_J, "imc": imc.as_dict(),
           "digital_same_training_J": _sum(same), "digital_same_training_breakdown_J": same,
           "ratio_vs_discrete_same_training": _sum(same) / imc.total_J,
           "standard_training_options": opts, "standard_training_choice": best, "target_accuracy": target,
           "ratio_vs_discrete_standard": opts[best]["energy_J"] / imc.total_J if best else None,
           "ratio_vs_published_energy": imc.total_J / JSSC2017["energy_per_decision_J"]}
    for k, v in opts.items():
        out[f"ratio_vs_discrete_{k}"] = v["energy_J"] / imc.total_J
    out["implied"] = _implied(P, config, _sum(same))
    return out
