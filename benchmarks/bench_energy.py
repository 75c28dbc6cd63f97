"""Benchmark of the energy model: one classify cycle's breakdown over a batch of MNIST-sized inputs, the digital
baseline, and one tornado evaluation. Prints wall times; exits non-zero if a budget is exceeded."""
import sys
import time

import numpy as np
import torch  # imported first so the timings below exclude it

from ibnn import params
from ibnn.analysis import sensitivity
from ibnn.circuit.chip import Chip, Nonidealities
from ibnn.cost import area, digital, energy


def main() -> int:
    P = params.load()
    rng = np.random.default_rng(0)
    B = 10_000
    drops = rng.uniform(0, 0.3, size=(B, 128, 2))
    codes = rng.integers(0, 32, size=(B, 128))
    t0 = time.perf_counter()
    tables = energy.drive_tables(P)
    t_lut = time.perf_counter() - t0
    t0 = time.perf_counter()
    bd = energy.cycle_energy(P, bl_drops_V=drops, codes=codes, input_bits=5, tables=tables)
    t_cycle = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(100):
        digital.digital_inference_energy(P, [(81, 64), (64, 40)], 5, {"kind": "vote", "n_in": 40, "n_classes": 10})
    t_dig = (time.perf_counter() - t0) / 100
    t0 = time.perf_counter()
    chip = Chip(P, n_chips=1, seed=0, nonideal=Nonidealities(cell_mismatch=0.0))
    t_chip = time.perf_counter() - t0
    chip.program(torch.where(torch.rand(128, 128, generator=torch.Generator().manual_seed(0)) > 0.5, 1, -1))
    wl = torch.as_tensor(codes[:1000])
    t0 = time.perf_counter()
    chip.evaluate(wl, noise_seed=0, drops=True)
    t_drops = time.perf_counter() - t0
    t0 = time.perf_counter()
    chip.evaluate(wl, noise_seed=0, dv=True)
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    fig = lambda p: area.macro_area(p)  # noqa: E731
    sensitivity.tornado(P, P.ranged("energy"), lambda p, name: fig(p))
    t_tor = time.perf_counter() - t0
    print(f"word-line drive tables (waveform, settling, charges): {t_lut * 1e3:.1f} ms")
    print(f"cycle_energy, batch {B}: {t_cycle * 1e3:.1f} ms ({energy.total(bd) * 1e12:.1f} pJ per cycle)")
    print(f"digital_inference_energy: {t_dig * 1e6:.0f} us")
    print(f"chip model without cell mismatch: {t_chip:.1f} s; Chip.evaluate with line drops, 1000 inputs: "
          f"{t_drops * 1e3:.0f} ms "
          f"(decisions and dV only: {t_eval * 1e3:.0f} ms)")
    print(f"tornado over {len(P.ranged('energy'))} energy parameters (area figure): {t_tor * 1e3:.1f} ms")
    return 0 if t_cycle < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
