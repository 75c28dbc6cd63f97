"""Overheads of the sweep engine: LocalCluster start-up and close, time per point on a LocalCluster
against in-process for trivial points (chunk sizes 1 and 10) and for points of real work (sleep), and the time
to take a fully cached sweep from the cache. With --paper: the CPU seconds of notebook 09's point function
(ibnn.explore.paperpoint) per kind of point, in this process, at the notebook's full-profile resolutions: a point
whose change no chip reads (an energy constant, the precharge sizing), one that rebuilds the chip (vt0_n), at the
fit's resolution (energy figures only; with the drop and its per-chip correction) and at the Sobol's (naive drop,
no silicon check, no all-rows workload), and the verification's.

Usage: .venv/bin/python benchmarks/bench_engine.py [--workers 2] [--points 400] [--repeat 3] [--paper]
Prints one JSON object (milliseconds per point, seconds for start-up); the machine load is printed with it,
as the numbers depend on it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from ibnn.explore import engine as E
from ibnn.explore import toys


def per_point_ms(fn, points, repeat: int, **kw) -> float:
    """Median over `repeat` runs of the wall time per point (ms)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        E.run_sweep(fn, points, code_version="bench", **kw)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times) / len(points)


def bench_cluster(n_workers: int, points, slow, repeat: int) -> dict:
    t0 = time.perf_counter()
    eng = E.open_engine("local", n_workers=n_workers)
    out = {"startup_s": time.perf_counter() - t0, "engine": eng.info.as_dict()}
    E.run_sweep(toys.noisy_square, points[:20], engine=eng, code_version="bench")          # warm the workers
    for cs in (1, 10):
        out[f"local_chunk{cs}_ms_per_point"] = per_point_ms(toys.noisy_square, points, repeat, engine=eng,
                                                            chunk_size=cs)
    out["local_20ms_points_ms_per_point"] = per_point_ms(toys.noisy_square, slow, repeat, engine=eng)
    t0 = time.perf_counter()
    eng.close()
    out["close_s"] = time.perf_counter() - t0
    return out


def bench_paper_point() -> dict:
    """CPU seconds of one PaperPoint evaluation per kind (module docstring), each on a fresh chip cache."""
    import torch

    from ibnn import data, nn, params
    from ibnn.explore import correct
    from ibnn.explore import paperpoint as PP

    P = params.load()
    folded = nn.load_network(nn.find_checkpoint("full", None))
    images, labels = data.load_mnist("test")
    train, _ = data.load_mnist("train")
    D = correct.eval_data(folded, torch.as_tensor(data.features(images[:2000])), torch.as_tensor(labels[:2000]),
                          torch.as_tensor(data.features(train[-100:])))
    fit, sob = PP.Resolution(1, 300, 100, 50, 200, 10), PP.Resolution(1, 200, 0, 50, 200, 10)
    kinds = {"fit_energy": PP.PaperPoint(P, folded, D, fit, drops=False),
             "fit_drops": PP.PaperPoint(P, folded, D, fit),
             "sobol": PP.PaperPoint(P, folded, D, sob, silicon=False, peak=False),
             "verify": PP.PaperPoint(P, folded, D, PP.Resolution(2, 1000, 100, 50, 200, 10))}
    base = {"pulse": 0.35e-9, "drive": 4.0}
    out = {}
    for k, (name, pt) in enumerate(kinds.items()):
        PP.clear_caches()
        pt(base, 0)
        f = 0.9 - 0.01 * k              # values no earlier kind used: nothing from the per-set caches
        for change, point in (("chip_rebuilt", {"vt0_n": f * P["vt0_n"]}), ("no_chip_read", {
                "e_comparator": f * P["e_comparator"], "precharge_sag_max": f * P["precharge_sag_max"]})):
            c0 = time.process_time()
            pt({**base, **point}, 0)
            out[f"{name}_{change}_cpu_s"] = time.process_time() - c0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--paper", action="store_true", help="CPU seconds of notebook 09's point function instead")
    a = ap.parse_args()
    if a.paper:
        print(json.dumps({"load_average": os.getloadavg(), **bench_paper_point()}, indent=2))
        return
    points = [{"x": float(i)} for i in range(a.points)]
    slow = [{"x": float(i), "sleep": 0.02} for i in range(100)]
    out = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "points": a.points}
    out["inprocess_ms_per_point"] = per_point_ms(toys.noisy_square, points, a.repeat, engine="inprocess")
    out["inprocess_20ms_points_ms_per_point"] = per_point_ms(toys.noisy_square, slow, 1, engine="inprocess")
    out.update(bench_cluster(a.workers, points, slow, a.repeat))
    with tempfile.TemporaryDirectory() as d:
        E.run_sweep(toys.noisy_square, points, engine="inprocess", cache_dir=d, code_version="bench")
        out["cached_ms_per_point"] = per_point_ms(toys.noisy_square, points, a.repeat, engine="inprocess",
                                                  cache_dir=d)
        out["cache_write_inprocess_ms_per_point"] = per_point_ms(
            toys.noisy_square, [{"x": -float(i) - 1} for i in range(a.points)], 1, engine="inprocess",
            cache_dir=d)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
