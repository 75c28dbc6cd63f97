"""The published figures this companion checks itself against, one copy, each with its source.

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
