"""Argument checks. Every error names the parameter, the value it got and the accepted range."""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (bool excluded) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name}={value!r} must be an integer in {_rng(lo, hi)}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range; accepted: integer in {_rng(lo, hi)}")
    return value


def check_real(name: str, value, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in the interval given (closed unless *_open)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}={value!r} must be a finite number in {_rng(lo, hi, lo_open, hi_open)}")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= lo is not None and (value <= lo if lo_open else value < lo)
    bad |= hi is not None and (value >= hi if hi_open else value > hi)
    if bad:
        raise ValueError(f"{name}={value!r} is out of range; accepted: finite number in "
                         f"{_rng(lo, hi, lo_open, hi_open)}")
    return value


def check_positive(name: str, value) -> float:
    """A finite number > 0."""
    return check_real(name, value, 0.0, None, lo_open=True)


def check_nonneg(name: str, value) -> float:
    """A finite number >= 0."""
    return check_real(name, value, 0.0, None)


def check_choice(name: str, value, choices: Iterable):
    """One of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not accepted; choose one of {list(choices)}")
    return value


def check_bool(name: str, value) -> bool:
    """True or False (not 0/1)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be a bool (True or False)")
    return value


def _rng(lo, hi, lo_open=False, hi_open=False) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def check_codes(name: str, codes, max_code: int):
    """An integer tensor of word-line codes with every value in [0, max_code] (any shape); returns the tensor."""
    import torch  # here, not at the top: the preflight and the parameter checks stay torch-free

    c = torch.as_tensor(codes)
    if c.dtype.is_floating_point or c.dtype == torch.bool or c.is_complex():
        raise ValueError(f"{name} must be an integer tensor with values in [0, {max_code}]; got dtype {c.dtype}")
    if c.numel():
        lo, hi = (int(v) for v in torch.aminmax(c))                # one pass over the codes
        if lo < 0 or hi > max_code:
            raise ValueError(f"{name} contains {lo if lo < 0 else hi}, out of range; accepted: integers in "
                             f"[0, {max_code}]")
    return c
