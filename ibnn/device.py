"""Where tensors live: the CPU by default, CUDA when present (or IBNN_DEVICE=cpu|cuda)."""
from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    want = os.environ.get("IBNN_DEVICE")
    if want:
        if want not in ("cpu", "cuda"):
            raise ValueError(f"IBNN_DEVICE={want!r} is not accepted; choose 'cpu' or 'cuda'")
        if want == "cuda" and not torch.cuda.is_available():
            raise ValueError("IBNN_DEVICE='cuda' but torch.cuda.is_available() is False")
        return torch.device(want)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
