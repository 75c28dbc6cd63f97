"""Room `analysis` (notebook 05): accuracy over many chips and its statistics, the per-chip corrections the chip can
make, noise-aware training, one-nonideality sweeps, and sensitivity (tornado, inverse solve).

`stats` (chips, accuracies, flip rates); `bootstrap` (two-level bootstrap over chips x images, paired differences,
resolution, variance components); `inverse` (power-law inverse points, the crossing rule, choices on validation
data); `calibration` (the guard against test data, `ChipCorrection`, running with it, the knob search);
`corrections` (bias-row rewrite; the hypothetical comparator trim within its declared range); `readout` (per-chip
readout retraining); `evaluation` (test bed, outcomes, summaries with intervals, the chip-count design);
`experiment` (notebook 05's steps); `sweeps` (each mechanism alone, inverse points); `noise_aware`;
`sensitivity`."""
