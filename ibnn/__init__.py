"""ibnn: reproducible companion to Zhang & Verma, "An In-memory-Computing DNN Achieving 700 TOPS/W and
6 TOPS/mm2 in 130-nm CMOS" (IEEE JETCAS 2019).

Modules (interfaces: docs/architecture.md)
-------
params      the one parameter set (value, unit, source, kind) for every physical constant
data        MNIST (offline, checksum-verified) and the chip's 9 x 9 5-bit features
classifier  the reduced BNN: straight-through training, batch-norm folding, checkpoints
bitcell, wldac, column, chip
            6T read stack, word-line DAC, bit-line discharge and comparator, batched 128 x 128 chips
mapping     the BNN placed on one array, weights stationary
hwaware     drop statistics over chips, per-chip calibration, noise-aware training
energy, area, efficiency, macros
            energy per cycle and inference, digital baseline, areas, TOPS/W and TOPS/mm2, published macros
claims      the paper's figures and the claims ledger
pipeline    `make figures`: notebooks through papermill, incremental and atomic
io, validate, style, progress, device, nb
            atomic writes and provenance, argument checks, plot style, quiet progress bars, CPU/CUDA, notebook set-up
"""

__version__ = "0.1.0"
