"""The published figures of the chip and the paper beside the model, in the manner of cimloop's per-macro tests:
each test names one published figure, computes the modelled one from the parameter set, the committed network and
MNIST, keeps both in its assertion message, and fails outside its stated band. The docstring of each test says why
the band is what it is and why the model deviates.

Sources: JSSC2017 (Zhang, Wang, Verma, IEEE JSSC 52(4):915-924, 2017, abstract; VLSI 2016 abstract) and PAPER
(Zhang & Verma, IEEE JETCAS 9(2):358-366, 2019, abstract), both in ibnn.published.
"""
from __future__ import annotations

import pytest
import torch

from ibnn import data, nn, params
from ibnn.circuit import Chip
from ibnn.cost import efficiency as F
from ibnn.cost import energy as E
from ibnn.cost import ops as O
from ibnn.cost import silicon as Si
from ibnn.cost import study as S
from ibnn.mapping import map_network
from ibnn.published import JSSC2017, PAPER
from ibnn.repro import io

CKPT = io.REPO_ROOT / "results" / "checkpoints" / "bnn.pt"
N_IMAGES = 300
N_ALL_ROWS = 40


@pytest.fixture(scope="module")
def model():
    """One chip (every nonideality at its default) running the committed network on MNIST test images: energies,
    the digital baseline under its storage assumption, the all-rows workload, and TOPS/W and TOPS/mm2."""
    if not CKPT.is_file():
        pytest.skip("needs results/checkpoints/bnn.pt (notebook 03)")
    try:
        images, labels = data.load_mnist("test")
    except Exception as exc:                                  # MNIST not fetched (make data)
        pytest.skip(f"needs MNIST: {exc}")
    P = params.load()
    folded = nn.load_network(CKPT)
    amap = map_network(folded, P)
    codes = torch.as_tensor(data.features(images))
    chip = Chip(P, n_chips=1, seed=0)
    st = S.EnergyStudy(P, amap, codes[:N_IMAGES], torch.as_tensor(labels[:N_IMAGES]))
    _, act = st.run(chip)
    e = st.energies(P, act)
    ar_codes = Si.all_rows_codes(act[0].codes, P.int("array_rows"), N_ALL_ROWS)
    ar = Si.all_rows_activity(chip, ar_codes, amap.bits)
    peak = E.imc_inference_energy(P, [ar], st.readout, False, st.tables)
    return {"P": P, "amap": amap, "chip": chip, "energies": e, "ar_codes": ar_codes, "peak": peak, "study": st,
            "software_accuracy": nn.accuracy(folded, codes, torch.as_tensor(labels)),
            "tops_per_w": F.tops_per_w_table(P, e["imc"], st.layer_shapes, st.readout, all_rows=peak),
            "tops_per_mm2": F.tops_per_mm2_table(P, st.layer_shapes, e["imc"]["n_cycles"])}


def _within(name, published, modelled, lo, hi):
    r = modelled / published
    assert lo <= r <= hi, (f"{name}: published {published:.4g}, modelled {modelled:.4g}, ratio {r:.3g} outside "
                           f"[{lo}, {hi}]")


def test_jssc2017_630_pJ_per_ten_way_decision(model):
    """JSSC 2017: 630 pJ per ten-way decision at 50 MHz, one decision per cycle (classify mode).

    Band [0.5, 2]: a factor of two, what a physics-argued model of an unpublished circuit can claim. The model is
    anchored, not fitted: its energy rests on assumed values (the cell current per LSB, the cycle plan with the word
    lines settling under the precharge, the precharge sizing), whose cited ranges move it by more than a factor 2
    one at a time (notebook 06's tornado). It lies above the silicon because the cells conduct against the
    precharge for the whole settling time of the slowest code; a real design may enable the word
    lines later with a faster drive (notebook 06, DAC gating)."""
    _within("630 pJ per decision", JSSC2017["energy_per_decision_J"], model["energies"]["imc_J"], 0.5, 2.0)


def test_vlsi2016_633_pJ_per_decision(model):
    """VLSI 2016: 633 pJ per ten-way decision at 50 MHz, the same chip; band and deviation as for 630 pJ."""
    _within("633 pJ per decision", JSSC2017["energy_per_decision_vlsi2016_J"], model["energies"]["imc_J"], 0.5, 2.0)


def test_jssc2017_13x_below_a_discrete_system_with_the_same_training(model):
    """JSSC 2017: 13x lower energy than a discrete SRAM / digital-MAC system with the same (boosted) training.

    Modelled with the digital baseline's one storage assumption, every weight read from SRAM (a discrete SRAM +
    digital-MAC system). Band [0.5, 2]: the baseline's primitive energies are 45-nm figures scaled to 130 nm
    (Horowitz, ISSCC 2014) with an assumed exponent, and JSSC's discrete system is not described beyond its name.
    The model's ratio lies below 13x because its in-memory energy lies above the silicon's (see the 630-pJ test);
    with every weight latched instead the ratio would be a few x, far outside the band."""
    st = model["study"]
    c = Si.check_13x(Si.storage_variants(model["P"], st.layer_shapes, st.input_bits, st.readout)["sram"],
                     model["energies"]["imc"])
    _within("13x vs discrete, same training", c["published"], c["modelled"], 0.5, 2.0)


def test_jetcas2019_94_percent_software_accuracy(model):
    """JETCAS 2019: the reduced BNN reaches 94 % on MNIST in software.

    Band: the committed network's accuracy on all 10,000 test images within 1.5 points of 94 %: the paper quotes a
    whole percent and its topology is not published (ours is a reconstruction that fits the array, notebook 03)."""
    acc = model["software_accuracy"]
    assert abs(acc - PAPER["baseline_accuracy"]) <= 0.015, f"published 0.94, modelled {acc:.4f}"


def test_jetcas2019_6_tops_per_mm2(model):
    """JETCAS 2019: 6 TOPS/mm2.

    Modelled: the network's MACs (2 ops each) at one inference per 50-MHz cycle over the macro area (cells + WLDACs
    + comparators + periphery, the cited bit-cell and assumed periphery areas). Band [0.5, 2]: the paper's op
    definition and area scope are not stated; over the full array the same 6 TOPS/mm2 needs more area than the
    macro (notebook 07), so its area is probably a larger scope than the macro."""
    _within("6 TOPS/mm2", PAPER["tops_per_mm2"], model["tops_per_mm2"]["network"]["mac2"]["macro"], 0.5, 2.0)


def test_jetcas2019_700_tops_per_w_is_not_the_silicon_operating_point(model):
    """JETCAS 2019: over 700 TOPS/W, against the silicon-anchored model at the prototype's operating point.

    Not meant to be reproduced there: anchored to the 630 pJ per decision, the network's ops per decision give a
    TOPS/W far below the claim. Band [0.01, 0.1] of 700: it records the size of the disagreement notebooks 06 and 07
    explain, so that a change closing or widening it fails here and has to be explained there."""
    tpw = model["tops_per_w"]["network"]["mac2"]["macro"]
    _within("700 TOPS/W at the silicon point", PAPER["tops_per_w"], tpw, 0.01, 0.1)


def test_jetcas2019_700_tops_per_w_at_a_jetcas_like_operating_point(model):
    """JETCAS 2019: over 700 TOPS/W, where the model is meant to reproduce it: at an operating point unlike the
    prototype's, with every knob of notebook 06 together (1.0-V supply, 0.35-ns window, a 4x drive enabled only as
    late as it settles, binary inputs at code 8) and 1-b-normalised ops over a workload that drives every row.

    Band [0.5, 2]: the knobs are plausible, not published, choices; the test shows that such an operating point
    reaches the claimed figure within a factor 2, not that JETCAS used it."""
    P, bits = model["P"], model["amap"].bits
    rows = Si.jetcas_knobs(P, model["chip"], model["ar_codes"], bits,
                           {"vdd": 1.0, "t_eval": 0.35e-9, "replica_factor": 4.0, "binary_code": 8})
    tpw_1b = O.tops_per_w(O.array_ops_per_cycle("1b", P.int("array_rows"), P.int("array_cols"), bits),
                          rows[-1]["energy_J"])
    _within("700 TOPS/W, JETCAS-like point, 1-b ops", PAPER["tops_per_w"], tpw_1b, 0.5, 2.0)


def test_jetcas2019_26x_is_not_reproduced(model):
    """JETCAS 2019: 26x lower energy than a digital implementation of the same network.

    With the baseline's one storage assumption (every weight from SRAM) and the in-memory energy anchored to the
    silicon the model falls short of it; with every weight latched far shorter. Band [0.25, 1]: it records the
    disagreement (the paper's digital baseline and its accounting are not published) so that a change that closes
    it fails here and has to be explained in notebook 06."""
    _within("26x vs digital", PAPER["energy_ratio"], model["energies"]["ratio"], 0.25, 1.0)
