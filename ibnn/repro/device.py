"""Where tensors live and how many threads work on them: the CPU by default, CUDA when present (or
IBNN_DEVICE=cpu|cuda); `torch_threads` for code that is faster single-threaded on a shared machine."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from ..validate import check_int


def default_device() -> torch.device:
    """The torch device: IBNN_DEVICE (cpu | cuda, checked) or CUDA when available, else the CPU."""
    want = os.environ.get("IBNN_DEVICE")
    if want:
        if want not in ("cpu", "cuda"):
            raise ValueError(f"IBNN_DEVICE={want!r} is not accepted; choose 'cpu' or 'cuda'")
        if want == "cuda" and not torch.cuda.is_available():
            raise ValueError("IBNN_DEVICE='cuda' but torch.cuda.is_available() is False")
        return torch.device(want)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily run torch ops with n intra-op threads (None: leave as is)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def elementwise_threads() -> int | None:
    """Threads for the chip's elementwise work on the CPU: IBNN_ELEMENTWISE_THREADS (default 1). The elementwise
    steps (gathers, the closed-form discharge, comparisons) are memory-bound and, on a shared 2-core machine,
    OpenMP's barrier waits make them ~10x slower with 2 threads than with 1; matrix products keep torch's setting."""
    env = os.environ.get("IBNN_ELEMENTWISE_THREADS")
    if env in (None, ""):
        return 1
    if env == "auto":
        return None
    return check_int("IBNN_ELEMENTWISE_THREADS", int(env) if env.isdigit() else env, 1)


def as_tensor(x, dtype=None) -> torch.Tensor:
    """x (a tensor, numpy array or sequence) as a torch tensor, without a copy where possible."""
    t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
    return t if dtype is None else t.to(dtype)
