"""The published figures this companion checks itself against, one copy, each with its source: the JETCAS 2019
claims (`PAPER`) and the prototype chip's JSSC 2017 measurements (`JSSC2017`).

Zhang & Verma, "An In-memory-Computing DNN Achieving 700 TOPS/W and 6 TOPS/mm2 in 130-nm CMOS", IEEE JETCAS
9(2):358-366, 2019, doi 10.1109/JETCAS.2019.2912352 (abstract): the claims. These are the paper's words, not
reproduced values; every module that compares against the paper reads them here.
"""
from __future__ import annotations

# These are the paper's words, not reproduced values; every module that compares against the paper reads them here.
PAPER = {"baseline_accuracy": 0.94, "accuracy_drop": 0.004, "energy_ratio": 26.0, "tops_per_w": 700.0,
         "tops_per_mm2": 6.0}


PAPER_WORDS = {
    "baseline_accuracy": "a reduced BNN that fits the 130-nm prototype reaches 94% on MNIST in software",
    "accuracy_drop": "mapped on the chip it loses only 0.4%",
    "energy_ratio": "26x lower energy than a digital implementation of the same network",
    "tops_per_w": "over 700 TOPS/W",
    "tops_per_mm2": "6 TOPS/mm2",
}


#: The prototype chip: J. Zhang, Z. Wang, N. Verma, "In-Memory Computation of a Machine-Learning Classifier in a
#: Standard 6T SRAM Array", IEEE JSSC 52(4):915-924, 2017, doi 10.1109/JSSC.2016.2642198 (abstract), first shown
#: at the 2016 Symposium on VLSI Circuits (abstract). The only measurements of the silicon.
JSSC2017_SOURCE = ("J. Zhang, Z. Wang, N. Verma, IEEE JSSC 52(4):915-924, 2017, doi 10.1109/JSSC.2016.2642198 "
                   "(abstract); VLSI Circuits Symposium 2016 (abstract)")
JSSC2017 = {
    "accuracy_81": 0.90,                        # ten-way MNIST on 9 x 9 = 81 5-bit pixels ("82 features", VLSI)
    "accuracy_784_at_least": 0.95,              # with all 28 x 28 = 784 pixels (VLSI 2016: "> 95%")
    "energy_per_decision_J": 630e-12,           # per ten-way decision, classify mode, one decision per cycle
    "energy_per_decision_vlsi2016_J": 633e-12,  # the same at 50 MHz, VLSI 2016
    "ratio_vs_discrete_standard": 113.0,        # vs a discrete SRAM/digital-MAC system with standard training
    "ratio_vs_discrete_same_training": 13.0,    # vs a discrete system with the same (boosted) training
    "f_classify_Hz": 50e6,                      # classify mode, "generating a classification every cycle"
    "f_sram_max_Hz": 300e6,                     # SRAM mode, up to 300 MHz
}
JSSC2017_WORDS = {
    "accuracy_81": "90% ten-way MNIST accuracy on 81 5-bit pixel features",
    "digital_equivalent": "accuracy equivalent to a discrete SRAM/digital-MAC system (error-adaptive boosting)",
    "energy_per_decision_J": "630 pJ per ten-way decision at 50 MHz, one decision per cycle",
    "ratio_vs_discrete_standard": "113x lower energy than a discrete system with standard training",
    "ratio_vs_discrete_same_training": "13x lower energy than a discrete system with the same training",
}
