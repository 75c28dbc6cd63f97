"""Room `circuit` (notebook 02): the 6T bit-cell, the word-line DAC, the bit-line column and comparator, and
simulated 128 x 128 chips batched over instances (CPU or CUDA)."""
from .bitcell import BitCell
from .chip import Chip
from .nonideal import NONIDEALITIES, Nonidealities, alone, physical_magnitude
from .wldac import WLDAC

__all__ = ["BitCell", "Chip", "NONIDEALITIES", "Nonidealities", "WLDAC", "alone", "physical_magnitude"]
