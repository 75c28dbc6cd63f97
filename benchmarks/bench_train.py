"""Training benchmark: notebook 03's training before and after batching, on this machine's CPU.

Notebook 03 trains its candidate topologies on the first seed, picks the best on the validation split and trains
it over the other seeds. Before: ibnn.nn.train_bnn, one network after another (the notebook's former loop).
After: ibnn.nn.select_and_train (the candidates in one lockstep pass, then the other seeds in one pass).
Candidates, seeds, learning rate and batch size are notebook 03's (results/03_train_bnn.json).

Usage: python benchmarks/bench_train.py [--epochs 4] [--reps 3] [--full] [--profile] [--threads 1]
- Timing: `reps` back-to-back pairs (the order alternates), wall and CPU time of the training alone (data
  loading excluded; both paths warmed up first). Target: after / before wall time <= 0.5 for the median pair ->
  PASS/FAIL. The per-epoch work is the same at any epoch count, so the default 4 epochs measures the ratio in
  about two minutes (fixed costs, as the final batch-norm recalibration, weigh a little more than at 60).
- Exactness: after must train the same networks as before, bit for bit (every tensor of every state dict, and
  the histories).
- --full: the notebook's epochs (one pair unless --reps), and the checks: test accuracy per seed and the seeds'
  mean against 94.0% (PASS/FAIL), folded == trained on the 10,000 test images, and each seed's network against
  the committed results/checkpoints/bnn_seed<s>.pt (every state-dict tensor, bit for bit).
- --profile: where one epoch's time goes before and after (torch.profiler by kind of op; the rest is Python
  and dispatch between ops).
Other sessions share the CPU: the load average is printed beside each pair, and the CPU time of this process
beside the wall time (the wall ratio moves with the neighbours' load; read it over several pairs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

import torch

from ibnn import data
from ibnn import nn as C
from ibnn.repro import io, provenance

TARGET_RATIO = 0.5        # target: at most half the time of training one by one
TARGET_MEAN_ACC = 0.94    # target: three-seed mean test accuracy at least 94.0% (the paper's 94%)


def notebook_plan():
    """(candidate recipes, seeds, seed epochs) of notebook 03's committed run."""
    res = provenance.load_results("03_train_bnn")
    ch = res["chosen"]
    cands = [C.Recipe(hidden=tuple(c["hidden"]), readout=c["readout"], epochs=c["epochs"], lr=ch["lr"],
                      batch_size=ch["batch_size"]) for c in res["candidates"]]
    return cands, list(res["seeds"]), ch["epochs"]


def before(cands, seeds, epochs, X, Y, Xv, Yv) -> dict:
    """Notebook 03's former loop: train_bnn per candidate, then per further seed of the best."""
    cand = [C.train_bnn(X, Y, Xv, Yv, recipe=r, seed=seeds[0]) for r in cands]
    val = [C.accuracy(r.model, Xv, Yv) for r in cand]
    best = max(range(len(cands)), key=lambda i: val[i])
    recipe = cands[best].replace(epochs=epochs)
    runs = {seeds[0]: cand[best]} if recipe == cands[best] else {}
    runs.update({s: C.train_bnn(X, Y, Xv, Yv, recipe=recipe, seed=s) for s in seeds if s not in runs})
    return {"cand": cand, "runs": {s: runs[s] for s in seeds}}


def after(cands, seeds, epochs, X, Y, Xv, Yv) -> dict:
    """Notebook 03's training now: select_and_train."""
    sel = C.select_and_train(cands, seeds, X, Y, Xv, Yv, epochs=epochs)
    return {"cand": sel.candidates, "runs": sel.runs}


def bits_equal(a: dict, b: dict) -> bool:
    """Every tensor equal bit for bit (floats compared as integers, so -0.0 != +0.0)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.is_floating_point():
            x, y = x.view(torch.int32), y.view(torch.int32)
        if not torch.equal(x, y):
            return False
    return True


def same_networks(b: dict, a: dict) -> bool:
    """Both runs trained the same networks and histories."""
    pairs = list(zip(b["cand"] + list(b["runs"].values()), a["cand"] + list(a["runs"].values())))
    return all(bits_equal(x.model.state_dict(), y.model.state_dict()) and x.history == y.history for x, y in pairs)


def timed(fn):
    """(result, wall s, CPU s of this process)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def profile_epoch(label, fn):
    """Wall time of one call under torch.profiler, split by kind of op (self time of the aten ops and of the
    autograd/optimizer ranges); the rest is Python and dispatch between ops (with the profiler's overhead)."""
    from torch.profiler import ProfilerActivity, profile
    kinds = {"aten::mm": "matrix products", "aten::bmm": "matrix products", "aten::addmm": "matrix products",
             "aten::native_batch_norm": "batch-norm", "aten::native_batch_norm_backward": "batch-norm"}
    move = {"aten::copy_", "aten::index", "aten::index_select", "aten::cat", "aten::fill_", "aten::zero_",
            "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::clone", "aten::_to_copy"}
    with profile(activities=[ProfilerActivity.CPU]) as p:
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
    tot = defaultdict(float)
    for e in p.key_averages():
        k = kinds.get(e.key) or ("data movement, allocation" if e.key in move else
                                 "elementwise, loss, views" if e.key.startswith("aten::") else
                                 "autograd engine, optimizer, custom Functions")
        tot[k] += e.self_cpu_time_total / 1e6
    tot["python and dispatch between ops"] = max(0.0, wall - sum(tot.values()))
    print(f"profile, {label}: {wall:.2f} s wall under the profiler")
    for k, v in sorted(tot.items(), key=lambda kv: -kv[1]):
        print(f"    {k:44s} {v:6.2f} s {100 * v / wall:5.1f}%")


def check_full(res: dict, tcodes, tlabels) -> bool:
    """Per-seed test accuracy, mean vs target, folded == trained, and the committed checkpoints."""
    accs, ok = [], True
    for s, r in res["runs"].items():
        folded = C.fold(r.model)
        pf, pt = folded.predict(tcodes), r.model.predict(tcodes)
        same = bool(torch.equal(pf, pt))
        acc = float((pf == torch.as_tensor(tlabels).long()).double().mean())
        accs.append(acc)
        path = io.checkpoints_dir() / f"bnn_seed{s}.pt"
        ck = "absent"
        if path.exists():
            ck = "identical" if bits_equal(C.load_trained(path).state_dict(), r.model.state_dict()) else "DIFFERENT"
            ok &= ck == "identical"
        print(f"seed {s}: test accuracy {acc:.4f}; folded == trained on {len(tlabels)} test images: {same}; "
              f"committed {path.name}: {ck}")
        ok &= same
    mean = sum(accs) / len(accs)
    verdict = "PASS" if mean >= TARGET_MEAN_ACC else "FAIL"
    print(f"test accuracy, mean over seeds {list(res['runs'])}: {100 * mean:.2f}% (target >= "
          f"{100 * TARGET_MEAN_ACC:.1f}%): {verdict}")
    return ok and verdict == "PASS"


def load_data():
    """Notebook 03's splits (9x9 5-bit codes, validation split seed 0) and the test set."""
    (imgs, labels), (timgs, tlabels) = data.load_mnist("train"), data.load_mnist("test")
    codes, tcodes = data.features(imgs), data.features(timgs)
    tr, va = data.train_val_split(len(labels), C.Recipe().val_fraction, 0)
    return codes[tr], labels[tr], codes[va], labels[va], tcodes, tlabels


def pairs(reps, cands, seeds, epochs, X, Y, Xv, Yv):
    """`reps` before/after pairs (order alternating): (ratios, CPU ratios, all bit-identical, last after)."""
    ratios, cpu_ratios, same, last = [], [], True, None
    for k in range(reps):
        order = ("before", "after") if k % 2 == 0 else ("after", "before")
        got = {n: timed(lambda n=n: (before if n == "before" else after)(cands, seeds, epochs, X, Y, Xv, Yv))
               for n in order}
        (rb, wb, cb), (ra, wa, ca) = got["before"], got["after"]
        same &= same_networks(rb, ra)
        ratios.append(wa / wb)
        cpu_ratios.append(ca / cb)
        last = ra
        print(f"pair {k + 1} ({order[0]} first, load average {os.getloadavg()[0]:.1f}): before {wb:.1f} s wall "
              f"({cb:.1f} s CPU), after {wa:.1f} s wall ({ca:.1f} s CPU): ratio {wa / wb:.3f} wall, "
              f"{ca / cb:.3f} CPU", flush=True)
    return ratios, cpu_ratios, same, last


def main(argv=None) -> int:
    """Run the benchmark; exit status 0 when every check passes."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per network for the timing (default 4)")
    ap.add_argument("--reps", type=int, default=None, help="before/after pairs (default 3; 1 with --full)")
    ap.add_argument("--full", action="store_true", help="the notebook's epochs, and the accuracy checks")
    ap.add_argument("--profile", action="store_true", help="profile one epoch before and after")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as notebook 03)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    reps = a.reps or (1 if a.full else 3)
    cands, seeds, epochs = notebook_plan()
    if not a.full:
        cands, epochs = [c.replace(epochs=a.epochs) for c in cands], a.epochs
    print(f"candidates {[(list(c.hidden), c.readout, c.epochs) for c in cands]}, seeds {seeds} ({epochs} epochs), "
          f"lr {cands[0].lr}, batch {cands[0].batch_size}; torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    X, Y, Xv, Yv, tcodes, tlabels = load_data()
    print(f"data: {len(Y)} training, {len(Yv)} validation, {len(tlabels)} test images "
          f"({time.perf_counter() - t0:.1f} s to load and make features)")

    warm = [c.replace(epochs=1) for c in cands]           # one-off costs (imports, first kernel calls) off the clock
    before(warm, seeds, 1, X[:2000], Y[:2000], Xv, Yv)
    after(warm, seeds, 1, X[:2000], Y[:2000], Xv, Yv)
    if a.profile:
        one = [(c.replace(epochs=1), seeds[0]) for c in cands]
        profile_epoch(f"before, {len(one)} candidates x 1 epoch",
                      lambda: [C.train_bnn(X, Y, Xv, Yv, recipe=r, seed=s) for r, s in one])
        profile_epoch(f"after, {len(one)} candidates x 1 epoch", lambda: C.train_jobs(one, X, Y, Xv, Yv))

    ratios, cpu_ratios, same, last = pairs(reps, cands, seeds, epochs, X, Y, Xv, Yv)
    med = statistics.median(ratios)
    verdict = "PASS" if med <= TARGET_RATIO else "FAIL"
    print(f"training time after / before, median of {reps} pairs: {med:.3f} wall (CPU of this process "
          f"{statistics.median(cpu_ratios):.3f}); target <= {TARGET_RATIO}: {verdict}")
    print(f"same networks and histories, bit for bit, before and after: {same}")
    ok = verdict == "PASS" and same
    if a.full:
        ok &= check_full(last, tcodes, tlabels)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
