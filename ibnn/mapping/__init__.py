"""Room `mapping` (notebook 04): the folded BNN placed on the one array, weights stationary, bias rows for the
thresholds, and its run on simulated chips."""
from .bias import fine_codes
from .layout import ArrayMapping, LayerMap
from .place import map_network

__all__ = ["ArrayMapping", "LayerMap", "fine_codes", "map_network"]
