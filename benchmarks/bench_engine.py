"""Overheads of the sweep engine: LocalCluster start-up and close, time per point on a LocalCluster
against in-process for trivial points (chunk sizes 1 and 10) and for points of real work (sleep), and the time
to take a fully cached sweep from the cache.

Usage: .venv/bin/python benchmarks/bench_engine.py [--workers 2] [--points 400] [--repeat 3]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
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
