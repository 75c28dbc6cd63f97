"""Time the stages of notebook 10 (the JSSC 2017 classifier on the simulated chip), wall and process CPU seconds.

    PYTHONPATH=. IBNN_CACHE_DIR=... python benchmarks/bench_jssc.py [--fast] [--no-sweep]

--fast uses the quick profile's sizes (notebooks/profiles/fast.toml). Prints the machine's load average, whether
the chip evaluates column subsets itself (`Chip.evaluate(cols=)`) or through the fallback, and the headline
numbers, so a timing comes with what it computed.
"""
from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path

from ibnn import params
from ibnn.jssc import costs, onchip, study, sweep
from ibnn.jssc.boost import BoostConfig

FAST = Path(__file__).resolve().parents[1] / "notebooks" / "profiles" / "fast.toml"
SIZE_KEYS = set(study.Sizes.__dataclass_fields__)


def sizes(fast: bool) -> study.Sizes:
    """The full profile's sizes, or the quick profile's overrides of notebook 10."""
    if not fast:
        return study.Sizes()
    with open(FAST, "rb") as fh:
        table = tomllib.load(fh).get("10_jssc_prototype", {})
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in table.items() if k in SIZE_KEYS}
    return study.Sizes(**kw)


def main() -> None:
    """Run every stage once and print its timing and headline."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--no-sweep", action="store_true")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    P, cfg, sz = params.load(), BoostConfig(), sizes(a.fast)
    print(f"column subsets by the chip itself (Chip.evaluate(cols=), always since main 0a97190); sizes {sz}")
    clock = onchip.Clock()
    D = study.load_data(sz, cfg)
    clock.lap("data")
    sw = study.software_baseline(D, sz, cfg)
    clock.lap("software")
    lin = study.linear_baseline(D, sz)
    clock.lap("linear")
    std = study.standard_boosting(D, sz, cfg, sw.accuracy["mean"])
    clock.lap("standard boosting")
    s784 = study.software_784(sz, cfg)
    clock.lap("784 pixels")
    run = onchip.chip_study(P, D, sz, cfg)
    clock.lap("chips")
    summ = onchip.summarise(run, sz.n_boot, sz.seed)
    clock.lap("statistics")
    en = costs.energy_study(P, run, D, sz, cfg, lin, std, sw.accuracy["mean"])
    clock.lap("energy")
    if not a.no_sweep:
        al = sweep.alone_study(P, D, sz, cfg, run)
        clock.lap("alone")
        sw_ = sweep.mismatch_sweep(P, D, sz, cfg, run)
        clock.lap("mismatch sweep")
    for k, v in {**run.seconds, **clock.laps}.items():
        print(f"{k:32s} wall {v['wall_s']:6.2f} s  cpu {v['cpu_s']:6.2f} s")
    print(f"software {sw.accuracy['mean']:.4f}, 784 px {s784['accuracy']['mean']:.4f}, linear {lin}, standard "
          f"{std['n_weak_classifiers_to_target']}")
    for k in ("software_trained", "chip_in_the_loop"):
        print(k, summ[k]["mean"], summ[k]["ci95"], "drop", summ[k]["drop"]["mean_drop"], summ[k]["drop"]["ci95"])
    print("energy", en["energy_per_decision_J"], en["ratio_vs_discrete_same_training"],
          en["ratio_vs_discrete_standard"])
    if not a.no_sweep:
        for name, m in al["mechanisms"].items():
            print(f"alone {name}: drop {m['drop']['mean_drop']:.4f} {m['drop']['ci95']} flips "
                  f"{m.get('column_flip_rate', float('nan')):.3f}")
        for arm, r in sw_["arms"].items():
            print(arm, [round(p["drop"]["mean_drop"], 4) for p in r["points"]], {k: r["fit"].get(k) for k in (
                "b", "x_at_target", "x_ci95", "quotable", "factor", "factor_ci95", "reason")})
    print(f"total wall {sum(v['wall_s'] for v in clock.laps.values()):.1f} s, cpu "
          f"{sum(v['cpu_s'] for v in clock.laps.values()):.1f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
