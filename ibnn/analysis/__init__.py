"""Room `analysis` (notebook 05): accuracy over many chips and its statistics, per-chip correction, noise-aware
training, one-nonideality sweeps, and sensitivity (tornado, inverse solve)."""
