"""Speed of one simulated chip and of drawing chips, as ratios to the float32 product measured in the
same run:

(a) one chip, every nonideality on, 10,000 x 128 codes (every row driven, random 5-bit codes), 128 columns: at most
    5x the float32 matrix product of the same shape (10,000 x 128 @ 128 x 128); measured on the chip's default CPU
    path, its cycle as one compiled loop (ibnn.circuit.kernel, numba; the verdict), on the torch path (IBNN_KERNEL=0:
    look-ups and ibnn.circuit.fused, what CUDA runs), and the torch path's two look-up passes alone;
(b, drawing) 100 chips drawn and programmed: under 1 s (the median of 3 draws; the spread is printed).
Beside (a) it prints a floor, in units of the product: the look-ups' operations counted
(`ibnn.circuit.kernel.lookup_operations`) as if they ran at the product's own rate, plus the rest of the cycle
timed: the same evaluation on codes that drive no cell (no row is looked up, so what remains is the temporal-noise
draws, the tables, the discharge, the offsets and the decisions; the noise draws are also timed alone). The cycle
cannot come in under it without fewer operations, a faster normal generator or a cheaper discharge and decision.

Usage: python benchmarks/bench_chip.py [--device cpu|cuda] [--threads N] [--reps 5] [--profile]
Timing: `reps` interleaved pairs (product, chip); the ratio is the median of the pairs' ratios (the neighbours'
load moves both alike); the load average and this process's CPU time are printed beside the wall times. Exits 1 if
a target is missed. --profile prints where the chip's time goes (torch.profiler, self time per op).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from ibnn import params
from ibnn.circuit import factored, kernel, physical
from ibnn.circuit.chip import Chip
from ibnn.repro.device import elementwise_threads, torch_threads

TARGET_CHIP = 5.0         # target: one chip at most 5x the float32 product of the same shape
TARGET_DRAW_S = 1.0       # target: drawing 100 chips under 1 s (sweeps draw chips per point)


def sync(dev) -> None:
    """Wait for the device (a no-op on the CPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one call."""
    sync(dev)
    t, c = time.perf_counter(), time.process_time()
    fn()
    sync(dev)
    return time.perf_counter() - t, time.process_time() - c


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def inputs(B: int, rows: int, cols: int, dev):
    """Random 5-bit codes (B, rows) and +-1 weights (rows, cols), seed 0."""
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 32, (B, rows), generator=g)
    w = (torch.randint(0, 2, (rows, cols), generator=g) * 2 - 1).to(torch.int64)
    return codes.to(dev), w


def measure(ref_fn, fn, dev, reps: int):
    """(median ratio wall, median ratio CPU, product wall, product CPU, fn wall, fn CPU) over `reps` interleaved
    pairs (the neighbours' load moves both alike)."""
    pairs = [(*timed(ref_fn, dev), *timed(fn, dev)) for _ in range(reps)]
    ratio = statistics.median(p[2] / p[0] for p in pairs)
    cpu_ratio = statistics.median(p[3] / max(p[1], 1e-9) for p in pairs)
    return (ratio, cpu_ratio, *(statistics.median(p[i] for p in pairs) for i in range(4)))


def lookups(chip, codes) -> None:
    """The torch path's line sums alone (both look-up passes of every chunk), as the chip computes them (on its
    elementwise threads)."""
    tab = physical._group_tables(chip, 0, chip.n_chips)
    cpl = chip.coupling.to(torch.float32).to(chip.device)
    with torch_threads(elementwise_threads() if chip.device.type == "cpu" else None):
        for b0 in range(0, codes.shape[0], physical.CHUNK):
            factored.table_sums(tab, cpl, codes[b0:b0 + physical.CHUNK], True)


def noise_draws(chip, B: int, noise_seed: int = 1) -> None:
    """The temporal-noise draws of one evaluation of B inputs (`chip.evaluate(..., noise_seed)`) alone, chunk by
    chunk as the chip draws them (`physical._noise`: one standard normal per decision from each chip's own
    generator)."""
    gens = [factored.chip_generator(noise_seed, chip.first_chip + c, 1) for c in range(chip.n_chips)]
    for b0 in range(0, B, physical.CHUNK):
        physical._noise(chip, gens, 0, chip.n_chips, min(B, b0 + physical.CHUNK) - b0, torch.get_num_threads())


def floor_a(chip, codes, cols: int, t_ref: float, noise_ratio: float, rest_ratio: float) -> str:
    """The floor line of (a): counted look-up operations / the product's multiply-adds, plus the rest of the cycle
    (the evaluation on codes that drive no cell, timed; of it, the noise draws timed alone), against TARGET_CHIP."""
    kick = bool((chip.coupling != 0).any())
    ops = kernel.lookup_operations(codes, cols, kick) / (codes.numel() * cols)
    floor = ops + rest_ratio
    verdict_text = ("below the target: room for the look-ups' own overhead" if floor < TARGET_CHIP else
                    "above the target: look-ups at the product's rate and the rest of this cycle alone exceed it")
    return (f"    floor of (a): look-ups {ops:.2f}x the product's multiply-adds (counted: "
            f"{'a window add and a kick multiply-add' if kick else 'a window add'} on both lines of each driven "
            f"cell; {float((codes != 0).float().mean()):.3f} of the cells driven) + the rest of the cycle "
            f"{rest_ratio:.2f}x (timed, {rest_ratio * t_ref * 1e3:.1f} ms: the same evaluation on codes that drive "
            f"no cell; of it the noise draws {noise_ratio:.2f}x, timed alone, and the tables, discharge, offsets and "
            f"decisions) = {floor:.2f}x; {verdict_text} (<= {TARGET_CHIP:g}x)")


def profile_chip(chip, codes) -> None:
    """Self time of the ops of one evaluation (torch.profiler), the ten largest."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if chip.device.type == "cuda" else [])
    with profile(activities=acts) as p:
        chip.evaluate(codes, noise_seed=1)
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n-chips", type=int, default=100)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    P = params.load()
    rows, cols = P.int("array_rows"), P.int("array_cols")
    codes, w = inputs(a.batch, rows, cols, dev)
    cf, wf = codes.float(), w.float().to(dev)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}, load average "
          f"{os.getloadavg()[0]:.1f}")
    chip = Chip(P, n_chips=1, seed=0, device=dev).program(w)
    ratios, env = {}, os.environ.get("IBNN_KERNEL")
    names = {"1": "compiled loop (the default)", "0": "torch path"}                 # by IBNN_KERNEL
    for mode in names:
        os.environ["IBNN_KERNEL"] = mode
        chip.evaluate(codes[:64], noise_seed=0)                                 # warm-up (and compilation)
        ratios[mode] = measure(lambda: cf @ wf, lambda: chip.evaluate(codes, noise_seed=1), dev, a.reps)
    os.environ.pop("IBNN_KERNEL", None) if env is None else os.environ.__setitem__("IBNN_KERNEL", env)
    default = "1" if kernel.available(dev, None) else "0"               # what the chip runs by default
    for mode, name in names.items():
        ratio, cpu_ratio, tr, cr, tc, cc = ratios[mode]
        print(f"(a) one chip, every nonideality, {a.batch} x {rows} codes, {name}: {tc * 1e3:.1f} ms wall "
              f"({cc * 1e3:.1f} ms CPU), float32 product {tr * 1e3:.2f} ms wall ({cr * 1e3:.2f} ms CPU): ratio "
              f"{ratio:.1f}x wall, {cpu_ratio:.1f}x CPU (medians of {a.reps} pairs; target <= {TARGET_CHIP:g}x)"
              + (f": {verdict(ratio <= TARGET_CHIP)}" if mode == default else "") + f"; load {os.getloadavg()[0]:.1f}")
    ok_a = ratios[default][0] <= TARGET_CHIP
    floor = measure(lambda: cf @ wf, lambda: lookups(chip, codes), dev, a.reps)
    print(f"    the torch path's two look-up passes alone (window charge, word-line kick: 2 x {rows} x {2 * cols} "
          f"table entries per input): {floor[4] * 1e3:.1f} ms, {floor[0]:.1f}x the product")
    noise = measure(lambda: cf @ wf, lambda: noise_draws(chip, a.batch), dev, a.reps)
    idle = torch.zeros_like(codes)                                      # no cell driven: no row looked up
    rest = measure(lambda: cf @ wf, lambda: chip.evaluate(idle, noise_seed=1), dev, a.reps)
    print(floor_a(chip, codes, cols, rest[2], noise[0], rest[0]))
    if a.profile:
        profile_chip(chip, codes)
    draws = [timed(lambda: Chip(P, n_chips=a.n_chips, seed=1, device=dev).program(w), dev) for _ in range(3)]
    t_draw, c_draw = (statistics.median(d[i] for d in draws) for i in range(2))
    ok_d = t_draw < TARGET_DRAW_S
    print(f"(b) drawing and programming {a.n_chips} chips: {t_draw:.2f} s wall ({c_draw:.2f} s CPU; median of 3, "
          f"{min(d[0] for d in draws):.2f}-{max(d[0] for d in draws):.2f} s; target < {TARGET_DRAW_S:g} s): "
          f"{verdict(ok_d)}; load {os.getloadavg()[0]:.1f}")
    return 0 if (ok_a and ok_d) else 1


if __name__ == "__main__":
    sys.exit(main())
