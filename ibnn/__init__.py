"""ibnn: reproducible companion to Zhang & Verma, "An In-memory-Computing DNN Achieving 700 TOPS/W and
6 TOPS/mm2 in 130-nm CMOS" (IEEE JETCAS 2019).

Rooms, in the order data flows through them (imports point down this list only; docs/architecture.md):

floor     params (the one parameter set), validate (argument checks), published (the papers' figures),
          repro.io / repro.device / repro.progress (atomic files, CPU/CUDA and threads, quiet progress bars)
data      MNIST, checksum-verified, and the chip's 9 x 9 5-bit word-line codes            (notebook 01)
circuit   6T bit-cell, word-line DAC, bit-line column and comparator, simulated chips      (02)
nn        the reduced BNN: binary layers, training, folding, checkpoints                   (03)
mapping   the BNN placed on one 128 x 128 array, weights stationary                        (04)
analysis  accuracy over chips and its statistics, per-chip correction, noise-aware training,
          sweeps, sensitivity                                                               (05)
cost      energy with its scopes, digital baseline, ops and TOPS, area, published macros   (06, 07)
jssc      the prototype's own boosted binary-weight classifiers (JSSC 2017) on the chip  (08)
explore   the parameter space as a whole: cached sweeps on dask, Sobol indices, the joint fit  (09)
repro     provenance, the pipeline (`make figures`), the claims ledger, notebook helpers    (10)
"""

__version__ = "0.1.0"
