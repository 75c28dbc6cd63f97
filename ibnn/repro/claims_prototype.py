"""The prototype paper's claims (J. Zhang, Z. Wang, N. Verma, IEEE JSSC 52(4):915-924, 2017), a section of the
claims ledger apart from the JETCAS rows: what notebook 08 (`results/08_jssc_prototype.json`) reproduces of the
figures the chip's own paper published: 90% on 81 pixels, accuracy equivalent to a discrete digital system, 630 pJ
per decision, 113x and 13x below discrete systems with standard and with the same training.

Each `ibnn.repro.claims.Claim` names its results key ("08_jssc_prototype:<key path>"); nothing reproduced is typed
here. The tolerances are those of the JETCAS rows: half a unit of the quoted digit, plus the half-width of the
reproduced figure's 95% interval where it has one.
"""
from __future__ import annotations

from ..published import JSSC2017, JSSC2017_WORDS
from .claims import Claim, rounding, rounding_plus_ci

STEM = "08_jssc_prototype"


def _src(key: str) -> str:
    return f"{STEM}:{key}"


def prototype_claims() -> list[Claim]:
    """The five prototype rows, in the order of the paper's abstract. Sources are keys of results/08_jssc_prototype."""
    acc_tol = "the paper quotes whole percent (0.5 pt) plus the half-width of the 95% interval over test images"
    return [
        Claim("jssc_accuracy_81", JSSC2017_WORDS["accuracy_81"], 100 * JSSC2017["accuracy_81"], "%", "equal",
              _src("software_accuracy.mean"),
              "the paper's boosted binary-weight column classifiers ({08_jssc_prototype:n_weak_classifiers} "
              "columns, one-vs-all AdaBoost), ideal arithmetic, trained on {08_jssc_prototype:software_accuracy."
              "n_train} images; on chip it loses the drop of the next row",
              rounding_plus_ci(1.0, _src("software_accuracy.ci95"), 100), acc_tol, scale=100),
        Claim("jssc_digital_equivalent", JSSC2017_WORDS["digital_equivalent"], 0.0, "%", "at_most",
              _src("chip_accuracy_chip_in_the_loop.drop.mean_drop"),
              "drop (software - chip accuracy) of error-adaptive boosting trained per chip in the loop on "
              "{08_jssc_prototype:chips.n_train} images, against the same classifier trained on them in software; "
              "{08_jssc_prototype:chip_accuracy_chip_in_the_loop.n_chips} held-out simulated chips x "
              "{08_jssc_prototype:chip_accuracy_chip_in_the_loop.n_images} test images",
              rounding_plus_ci(1.0, _src("chip_accuracy_chip_in_the_loop.drop.ci95"), 100),
              "'equivalent' at the paper's whole-percent accuracy (0.5 pt) plus the half-width of the 95% interval "
              "of the drop over chips and images", scale=100),
        Claim("jssc_energy_per_decision", JSSC2017_WORDS["energy_per_decision_J"],
              round(1e12 * JSSC2017["energy_per_decision_J"], 6), "pJ", "equal", _src("energy_per_decision_J"),
              "one 50-MHz classify cycle of the boosted classifier (every pixel and bias row driven, every column "
              "read, bit-line drops of the chip model) + the digital weighted vote; the cost room's energy model",
              rounding(10.0), "quoted to ten picojoules (VLSI 2016: 633 pJ for the same chip): half a unit, 5 pJ",
              scale=1e12),
        Claim("jssc_ratio_standard", JSSC2017_WORDS["ratio_vs_discrete_standard"],
              JSSC2017["ratio_vs_discrete_standard"], "x", "equal", _src("ratio_vs_discrete_standard"),
              "the cheapest standard-trained classifier reaching the software boosted accuracy "
              "({08_jssc_prototype:energy.standard_training_choice}) on a discrete SRAM + digital-MAC datapath, "
              "against the array's energy per decision",
              rounding(1.0), "the paper quotes a whole number: half a unit, 0.5"),
        Claim("jssc_ratio_same_training", JSSC2017_WORDS["ratio_vs_discrete_same_training"],
              JSSC2017["ratio_vs_discrete_same_training"], "x", "equal", _src("ratio_vs_discrete_same_training"),
              "the same boosted classifier ({08_jssc_prototype:n_weak_classifiers} 1-b weak classifiers and the "
              "weighted vote) on a discrete SRAM + digital-MAC datapath, against the array's energy per decision",
              rounding(1.0), "the paper quotes a whole number: half a unit, 0.5"),
    ]
