"""Room `circuit` (notebook 02): the 6T bit-cell, the word-line DAC with its replica (`replica`) and its waveform
(`wordline`: settling, the cycle plan, the window charge, the coupling of the falling bit-lines), the bit-line
column and the rail-to-rail comparator at its common mode (`column`, `comparator`), the precharge devices
(`precharge`), temporal noise (`noise`), read disturb (`disturb`), the checks notebook 02 reports (`checks`), and
simulated 128 x 128 chips batched over instances (CPU or CUDA; `chip`, `physical`)."""
from .bitcell import BitCell
from .chip import Chip
from .nonideal import NONIDEALITIES, Nonidealities, alone, physical_magnitude
from .wldac import WLDAC

__all__ = ["BitCell", "Chip", "NONIDEALITIES", "Nonidealities", "WLDAC", "alone", "physical_magnitude"]
