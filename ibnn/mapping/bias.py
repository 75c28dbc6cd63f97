"""Bias rows: the fixed-code rows whose +-1 cells realise each column's threshold (coarse rows at full scale and
fine rows at codes 2**(bits-1), ..., 2, 1, 1)."""
from __future__ import annotations

from typing import Sequence

import torch


def fine_codes(bits: int) -> list[int]:
    """Codes of the fine bias rows: 2**(bits-1), ..., 2, 1, 1. With +-1 cells their signed sum 2 P - 2**bits
    reaches every even number in [-2**bits, 2**bits] (P any integer in 0..2**bits)."""
    return [2 ** k for k in range(bits - 1, -1, -1)] + [1]


def bias_split(T: torch.Tensor, K: int, c_b: int, fine: Sequence[int]):
    """Bias realisation nearest to -T with K coarse rows at code c_b and fine rows `fine`.

    Returns (m, P, B, residual): m (fan_out,) coarse rows at +1 (the other K - m at -1), P the fine positive sum,
    B = c_b (2 m - K) + 2 P - sum(fine) the signed bias sum, residual = T + B (what the comparator must add)."""
    T = T.to(torch.float64)
    fs = int(sum(fine))
    m = torch.arange(K + 1, dtype=torch.int64)[:, None]                     # (K+1, 1)
    coarse = c_b * (2 * m - K)                                              # (K+1, 1)
    e_t = -T[None, :] - coarse                                              # fine target
    if fs:
        P = torch.round((e_t + fs) / 2).clamp(0, fs).to(torch.int64)
    else:
        P = torch.zeros_like(e_t, dtype=torch.int64)
    B = coarse + 2 * P - fs
    res = T[None, :] + B.to(torch.float64)
    best = res.abs().argmin(0)                                              # first (fewest +1 rows) on ties
    pick = lambda x: torch.gather(x.expand(K + 1, T.numel()), 0, best[None])[0]
    return pick(m.expand(K + 1, T.numel())), pick(P), pick(B), pick(res)


def fine_pattern(P: torch.Tensor, fine: Sequence[int]) -> torch.Tensor:
    """(F, fan_out) +-1: greedy subset of `fine` (descending, exact for 2**k,...,1,1) summing to P at +1."""
    rem = P.clone()
    out = []
    for c in fine:
        take = rem >= c
        rem = torch.where(take, rem - c, rem)
        out.append(torch.where(take, 1, -1))
    assert bool((rem == 0).all())
    return torch.stack(out).to(torch.int8)
