"""Where tensors live and how many threads work on them: the CPU by default, CUDA when present (or
IBNN_DEVICE=cpu|cuda); `torch_threads` for code that is faster single-threaded on a shared machine.

`check_request()` validates IBNN_DEVICE before any work, without importing torch when it can (the pipeline's
preflight and every notebook's `nb.start` call it): a CUDA request on a CPU-only torch build fails at once.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from pathlib import Path

DEVICES = ("cpu", "cuda")


class DeviceError(ValueError):
    """IBNN_DEVICE names a device this machine cannot give."""


def _torch_cuda_build() -> str | None:
    """torch.version.cuda read from the installed torch/version.py without importing torch ('' if unknown)."""
    spec = importlib.util.find_spec("torch")
    try:
        text = (Path(spec.origin).parent / "version.py").read_text() if spec and spec.origin else ""
    except OSError:
        text = ""
    m = re.search(r"^cuda\s*(?::[^=]*)?=\s*(.+)$", text, flags=re.M)
    if not m:
        return ""
    value = m.group(1).strip().strip("'\"")
    return None if value == "None" else value


def check_request() -> str | None:
    """IBNN_DEVICE ('cpu', 'cuda') or None when unset; a DeviceError (one line) when it cannot be met. A CUDA
    request with a CPU-only torch build fails without importing torch (well under a second)."""
    want = os.environ.get("IBNN_DEVICE") or None
    if want is not None and want not in DEVICES:
        raise DeviceError(f"IBNN_DEVICE={want!r} is not accepted; accepted: 'cpu', 'cuda' or unset (CUDA when "
                          f"available, else the CPU)")
    if want != "cuda":
        return want
    if _torch_cuda_build() is None:
        raise DeviceError("IBNN_DEVICE=cuda, but the installed torch is a CPU-only build (torch.version.cuda is "
                          "None); install a CUDA build of torch (README, Running on a GPU) or unset IBNN_DEVICE")
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(f"IBNN_DEVICE=cuda, but torch.cuda.is_available() is False (torch built for CUDA "
                          f"{torch.version.cuda}; no usable GPU or driver); unset IBNN_DEVICE or use IBNN_DEVICE=cpu")
    return want


def default_device():
    """The torch device: IBNN_DEVICE (checked) when set, else CUDA when available, else the CPU."""
    import torch

    want = check_request()
    if want:
        return torch.device(want)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily run torch ops with n intra-op threads (None: leave as is)."""
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def in_shares(work, n: int, threads: int) -> None:
    """work(lo, hi) over contiguous shares of range(n) on up to `threads` threads (in the calling thread for one):
    for work whose torch, LAPACK or numba calls release the GIL and whose result does not depend on the split."""
    share = max(1, min(int(threads), n))
    if share == 1:
        work(0, n)
        return
    from concurrent.futures import ThreadPoolExecutor
    bounds = [n * p // share for p in range(share + 1)]
    with ThreadPoolExecutor(share) as pool:
        for f in [pool.submit(work, bounds[p], bounds[p + 1]) for p in range(share)]:
            f.result()


def elementwise_threads() -> int | None:
    """Threads for the chip's elementwise work on the CPU: IBNN_ELEMENTWISE_THREADS (default 1). The elementwise
    steps (gathers, the closed-form discharge, comparisons) are memory-bound and, on a shared 2-core machine,
    OpenMP's barrier waits make them ~10x slower with 2 threads than with 1; matrix products keep torch's setting."""
    env = os.environ.get("IBNN_ELEMENTWISE_THREADS")
    if env in (None, ""):
        return 1
    if env == "auto":
        return None
    from ..validate import check_int  # (validate imports torch; the preflight imports this module)

    return check_int("IBNN_ELEMENTWISE_THREADS", int(env) if env.isdigit() else env, 1)


def as_tensor(x, dtype=None):
    """x (a tensor, numpy array or sequence) as a torch tensor, without a copy where possible."""
    import numpy as np
    import torch

    t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
    return t if dtype is None else t.to(dtype)
