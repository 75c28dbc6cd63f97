"""Benchmark: 100 chips x 10 000 test images through the whole mapped network (target: <= 60 s on 2 CPU cores).

Uses the trained checkpoint when present (results/checkpoints), else a random network of the same shape
(81 -> 128, digital readout), and MNIST test features when available, else random codes. Prints the timings.
Usage: .venv/bin/python benchmarks/bench_mapping.py [--chips 100] [--images 10000]
"""
from __future__ import annotations

import argparse
import time

import torch

from ibnn import params
from ibnn.circuit.chip import Chip
from ibnn.mapping import map_network
from ibnn.repro import io

P = params.load()


def _network():
    from ibnn import nn as clf
    d = io.input_path("results/checkpoints")          # the output root's, else the committed record's
    for p in ([d / "bnn.pt"] + sorted(d.glob("bnn*.pt"))) if d.exists() else []:
        if p.exists():
            return clf.load_checkpoint(p), str(p)
    g = torch.Generator().manual_seed(0)
    w = (torch.randint(0, 2, (81, 128), generator=g) * 2 - 1).to(torch.int8)
    t = (torch.randn(128, generator=g) * 60).round().to(torch.int64)
    ro = clf.DigitalReadout((torch.randint(0, 2, (128, 10), generator=g) * 2 - 1), torch.zeros(10))
    return clf.FoldedBNN([clf.FoldedLayer(w, t)], ro, {"size": 9, "bits": 5}), "random 81-128 network"


def _codes(n):
    try:
        from ibnn import data
        images, _ = data.load_mnist("test")
        return torch.as_tensor(data.features(images[:n])), "MNIST test"
    except Exception:
        g = torch.Generator().manual_seed(1)
        return torch.randint(0, 32, (n, 81), generator=g).to(torch.uint8), "random codes"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--chips", type=int, default=100)
    ap.add_argument("--images", type=int, default=10000)
    a = ap.parse_args(argv)
    net, src = _network()
    codes, csrc = _codes(a.images)
    print(f"network: {src}; inputs: {csrc} ({codes.shape[0]} images); torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    m = map_network(net, P)
    t1 = time.perf_counter()
    chip = Chip(P, n_chips=a.chips, seed=1000)
    t2 = time.perf_counter()
    labels = m.run(chip, codes, noise_seed=1).labels
    t3 = time.perf_counter()
    print(f"map_network: {t1 - t0:.2f} s; Chip({a.chips} chips): {t2 - t1:.2f} s; "
          f"run {a.chips} chips x {codes.shape[0]} images: {t3 - t2:.2f} s "
          f"({a.chips * codes.shape[0] / (t3 - t2):.3g} inferences/s); total {t3 - t0:.2f} s (target <= 60 s)")
    assert labels.shape == (a.chips, codes.shape[0])


if __name__ == "__main__":
    main()
