"""How BoostConfig.n_coarse (the coarse bias rows of the JSSC 2017 classifier) was chosen: chip-in-the-loop
boosting for each candidate on development chips, scored on validation images of the training split
(`ibnn.jssc.choices.choose_bias_rows`). Slow (one chip-in-the-loop training per candidate); not part of make figures.

    PYTHONPATH=. IBNN_CACHE_DIR=... python scripts/jssc_choose_bias_rows.py [--chips 20] [--val 2000] [--json out]
"""
from __future__ import annotations

import argparse

from ibnn import params
from ibnn.jssc import choices, study
from ibnn.jssc.boost import BoostConfig
from ibnn.repro import io


def main() -> None:
    """Run the choice and print every candidate's validation accuracy."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, default=20)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    P, cfg, sizes = params.load(), BoostConfig(), study.Sizes()
    D = study.load_data(sizes, cfg)
    out = choices.choose_bias_rows(P, D, sizes, cfg, n_chips=a.chips, n_val=a.val)
    for k, v in out["accuracies"].items():
        print(f"n_coarse {k}: chip in the loop {100 * v['chip_in_the_loop']:.2f}%, software "
              f"{100 * v['software']:.2f}%, trained in software on chip {100 * v['software_trained']:.2f}%")
    print(f"chosen {out['chosen']} (best {out['best']}; {out['rule']}); {out['resolution']['text']}; "
          f"{out['n_chips']} development chips (seed {out['chip_seed']}) x {out['n_images']} validation images")
    if a.json:
        io.atomic_write_json(a.json, out)


if __name__ == "__main__":
    main()
