"""Time to train the chosen BNN to final accuracy, one seed (the notebook 03 recipe), on this machine's CPU.

Usage: .venv/bin/python benchmarks/bench_train.py [--seed 0] [--epochs N] [--threads 1]
Prints data-loading time, feature time, training time and the validation/test accuracy of the trained network.
The recipe (topology, epochs, lr, batch size) is notebook 03's choice (results/03_train_bnn.json) when present,
else the default ibnn.nn.Recipe().
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ibnn import data
from ibnn import nn as C
from ibnn.repro import provenance


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1, as notebook 03: the matrices are tiny and more threads only add "
                         "synchronisation; the weights depend on the thread count through the float summation order)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    recipe, source = C.Recipe(), "the default ibnn.nn.Recipe()"
    try:
        chosen = provenance.load_results("03_train_bnn")["chosen"]
        recipe = recipe.replace(**{k: tuple(chosen[k]) if k == "hidden" else chosen[k]
                                   for k in ("hidden", "readout", "epochs", "lr", "batch_size") if k in chosen})
        source = "results/03_train_bnn.json"
    except (FileNotFoundError, KeyError):
        pass
    if a.epochs is not None:
        recipe = recipe.replace(epochs=a.epochs)
    print(f"recipe ({source}): {json.dumps(recipe.as_dict())}; torch threads {torch.get_num_threads()}")

    t0 = time.perf_counter()
    imgs, labels = data.load_mnist("train")
    timgs, tlabels = data.load_mnist("test")
    t1 = time.perf_counter()
    codes, tcodes = data.features(imgs), data.features(timgs)
    t2 = time.perf_counter()
    tr, va = data.train_val_split(len(labels), recipe.val_fraction, 0)
    r = C.train_bnn(codes[tr], labels[tr], recipe=recipe, seed=a.seed)
    t3 = time.perf_counter()
    folded = C.fold(r.model)
    val = C.accuracy(folded, codes[va], labels[va])
    test = C.accuracy(folded, tcodes, tlabels)
    print(f"load MNIST (verified, cached npz): {t1 - t0:.2f} s")
    print(f"features (70k images -> 9x9 5-bit codes): {t2 - t1:.2f} s")
    print(f"train {recipe.epochs} epochs, seed {a.seed}: {t3 - t2:.1f} s "
          f"({(t3 - t2) / recipe.epochs:.2f} s/epoch)")
    print(f"validation accuracy {val:.4f}, test accuracy {test:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
