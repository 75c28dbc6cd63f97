"""Notebook 09's figure: Sobol first-order and total indices with their bootstrap intervals, one panel per output."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

LABELS = {"drop_naive": "accuracy drop (naive)", "energy_per_inference_J": "energy per inference",
          "tops_per_w_network_mac2": "TOPS/W (mac2, network, macro)", "energy_ratio": "energy ratio (digital / IMC)"}


def sobol_figure(sobol: Mapping, outputs: Sequence[str], top: int = 12):
    """Horizontal bars of S1 and ST (95 % bootstrap intervals as error bars) per output, inputs ordered by ST.

    Args:
        sobol: `paperstudy.sobol_summary` or `paperstudy.resolved_sobol` (keys "indices": output -> input -> S1,
            S1_conf, ST, ST_conf; "ranking"; optionally "source": output -> where its indices come from).
        outputs: the outputs, one panel each; top: inputs shown per panel.
    Returns:
        The matplotlib Figure.
    """
    fig, axes = plt.subplots(1, len(outputs), figsize=(3.6 * len(outputs), 0.32 * top + 1.6), sharex=True)
    for ax, out in zip(np.atleast_1d(axes), outputs):
        names = sobol["ranking"][out][:top][::-1]
        ix = sobol["indices"][out]
        y = np.arange(len(names))
        for k, (key, dy) in enumerate((("S1", -0.18), ("ST", 0.18))):
            ax.barh(y + dy, [ix[n][key] for n in names], height=0.34, xerr=[ix[n][f"{key}_conf"] for n in names],
                    label=key, color=f"C{k}", capsize=2)
        ax.set_yticks(y, names, fontsize=7)
        src = sobol.get("source", {}).get(out)
        title = LABELS.get(out, out) + ("" if src is None else f"\n{src['source']}, N = {src['n_base']}")
        ax.set(title=title, xlabel="Sobol index")
        ax.axvline(0, color="k", lw=0.5)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
