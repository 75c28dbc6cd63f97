"""ibnn: reproducible companion to Zhang & Verma, "An In-memory-Computing DNN Achieving 700 TOPS/W and
6 TOPS/mm2 in 130-nm CMOS" (IEEE JETCAS 2019).

Modules
-------
io        paths, atomic writes, results/*.json
validate  argument checks that name the parameter, its value and the accepted range
style     the one plotting style and figure saving
progress  tqdm that stays quiet when not interactive
params    the one parameter set (value, unit, source, kind) for every physical constant
data      MNIST (offline, checksum-verified) and the chip's 9 x 9 5-bit features
"""

__version__ = "0.1.0"
