"""Speed of the chip model against its two targets, the speed the notebooks need to simulate many chips over the
whole test set on a laptop CPU:

1. one chip, every nonideality on, 10000 x 128 codes (81 rows used), 128 columns: at most 3x the time of the ideal
   integer matrix product of the same shape (codes int64 @ weights int64, what `codes @ W` costs in torch);
2. 100 chips x 10000 inputs through 128 x 128: at most 60 s (including drawing the 100 chips).

Usage: .venv/bin/python benchmarks/bench_chip.py [--device cpu|cuda]
Prints the timings and the ratios; exits 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from ibnn import params
from ibnn.circuit.chip import Chip

P = params.load()


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--n-chips", type=int, default=100)
    ap.add_argument("--batch", type=int, default=10000)
    args = ap.parse_args()
    dev = torch.device(args.device) if args.device else None
    g = torch.Generator().manual_seed(0)
    B = args.batch
    codes = torch.zeros(B, 128, dtype=torch.int64)
    codes[:, :81] = torch.randint(0, 32, (B, 81), generator=g)
    w = (torch.randint(0, 2, (128, 128), generator=g) * 2 - 1).to(torch.int64)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev or 'default'}")

    t_int64 = best_of(lambda: codes @ w)
    c32, w32 = codes.to(torch.int32), w.to(torch.int32)
    t_int32 = best_of(lambda: c32 @ w32)
    cf, wf = codes.float(), w.float()
    t_f32 = best_of(lambda: cf @ wf)
    print(f"ideal product {B}x128 @ 128x128: int64 {t_int64 * 1e3:.1f} ms, int32 {t_int32 * 1e3:.1f} ms, "
          f"float32 {t_f32 * 1e3:.1f} ms")

    chip = Chip(P, n_chips=1, seed=0, device=dev).program(w)
    chip.evaluate(codes[:64], noise_seed=0)                    # warm-up
    t_chip = best_of(lambda: chip.evaluate(codes, noise_seed=1))
    ratio = t_chip / t_int64
    print(f"target 1: one chip, all nonidealities, {B} inputs: {t_chip * 1e3:.1f} ms = {ratio:.2f}x the int64 "
          f"product (target <= 3x); {t_chip / t_int32:.2f}x int32, {t_chip / t_f32:.2f}x float32")

    t0 = time.perf_counter()
    chips = Chip(P, n_chips=args.n_chips, seed=1, device=dev).program(w)
    t_draw = time.perf_counter() - t0
    t1 = time.perf_counter()
    dec = chips.evaluate(codes, noise_seed=2)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t_eval = time.perf_counter() - t1
    total = t_draw + t_eval
    print(f"target 2: {args.n_chips} chips x {B} inputs: draw {t_draw:.1f} s + evaluate {t_eval:.1f} s = "
          f"{total:.1f} s (target <= 60 s); decisions {tuple(dec.shape)} {dec.dtype}")
    ok = ratio <= 3.0 and total <= 60.0
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
