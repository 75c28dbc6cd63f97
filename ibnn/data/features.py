"""The chip's word-line features (9 x 9 pixels, 5-bit codes) and the seeded train/validation split."""
from __future__ import annotations

import numpy as np

from ..validate import check_int, check_real


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) int64 area-averaging weights, in units of 1/n_out of an input pixel's width.

    Output pixel i covers the input interval [i*n_in/n_out, (i+1)*n_in/n_out); entry (i, p) is n_out times the
    part of input pixel p = [p, p+1) inside it. Every row sums to n_in, so the area average of a row is
    (weights @ x) / n_in: a box anti-aliasing filter, exact (integers) also for non-integer ratios like 28/9.
    """
    n_in = check_int("n_in", n_in, 1)
    n_out = check_int("n_out", n_out, 1, n_in)
    i = np.arange(n_out)[:, None]
    p = np.arange(n_in)[None, :]
    return np.clip(np.minimum((p + 1) * n_out, (i + 1) * n_in) - np.maximum(p * n_out, i * n_in), 0, None)


def features(images, size: int = 9, bits: int = 5) -> np.ndarray:
    """Word-line DAC codes of `images`: uint8 (N, size*size) in 0..2**bits-1, row-major pixels.

    1. Anti-aliased downsampling by exact area averaging: each of the size x size output pixels is the mean of the
       28 x 28 input over its square of side 28/size, fractional pixels weighted by their overlap
       (`area_weights`; a box filter, so no aliasing of thin strokes as with point sampling).
    2. Normalisation per image: divide by the image's largest averaged pixel, so the brightest output pixel is
       full scale (1.0) whatever the stroke width or contrast; an all-zero image stays all zero.
    3. Quantisation to 2**bits levels, round half up: code = floor(v * (2**bits - 1) + 1/2) for v in [0, 1].
       Code 0 leaves the word line off; code 2**bits-1 is the DAC's full-scale current.
    All in integer arithmetic (the area sums are integers in units of 1/size**2 of a pixel), so the codes are
    exact and identical on every machine.

    >>> import numpy as np
    >>> img = np.zeros((28, 28), dtype=np.uint8); img[:14, :14] = 255   # the top-left quarter lit
    >>> codes = features(img, size=2, bits=5)
    >>> codes.tolist()                                                   # brightest pixel at full scale, 31
    [[31, 0, 0, 0]]
    >>> features(img).shape                                              # the chip's 9 x 9 = 81 word lines
    (1, 81)
    """
    size = check_int("size", size, 2, 28)
    bits = check_int("bits", bits, 1, 8)
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images has shape {images.shape}; expected (N, 28, 28)")
    if images.dtype != np.uint8:
        if images.size and (images.min() < 0 or images.max() > 255 or not np.all(images == np.round(images))):
            raise ValueError("images must hold integer pixel values 0..255")
    W = area_weights(28, size)
    levels = 2 ** bits - 1
    out = np.empty((images.shape[0], size * size), dtype=np.uint8)
    for start in range(0, images.shape[0], 10000):  # chunks keep memory small
        x = images[start:start + 10000].astype(np.int64)
        sums = np.matmul(np.matmul(W, x), W.T).reshape(x.shape[0], -1)   # area sums, exact integers
        peak = sums.max(axis=1, keepdims=True)
        safe = np.maximum(peak, 1)
        codes = (2 * sums * levels + safe) // (2 * safe)                  # floor(sums/peak*levels + 1/2)
        out[start:start + 10000] = np.where(peak > 0, codes, 0).astype(np.uint8)
    return out


def train_val_split(n: int = 60000, val_fraction: float = 1 / 12, seed: int = 0):
    """Disjoint sorted index arrays (train, val) over range(n); val has round(n*val_fraction) entries.

    A seeded permutation (numpy PCG64) picks the validation set; the same (n, val_fraction, seed) always gives
    the same split.
    """
    n = check_int("n", n, 2)
    val_fraction = check_real("val_fraction", val_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    seed = check_int("seed", seed, 0)
    n_val = int(round(n * val_fraction))
    if not 1 <= n_val <= n - 1:
        raise ValueError(f"val_fraction={val_fraction} gives {n_val} of n={n} examples for validation; "
                         f"accepted: a fraction leaving at least one example on each side")
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
