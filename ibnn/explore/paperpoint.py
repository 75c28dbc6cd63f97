"""The paper's figures at one point of the parameter space: the engine's point function for notebook 09.

A point is a variant of the parameter set (entries naming parameters: `ParamSet.replace`, derived values
recomputed) plus the operating-point choices the JETCAS paper does not publish:

    supply       V at which the JETCAS figures are measured (None: the parameter set's vdd)
    pulse        word-line pulse (discharge time t_eval) of the JETCAS point, s (None: the parameter set's)
    clock        classify clock of the JETCAS point, Hz (None: f_classify)
    gating       "none" (every column precharged and read, the chip as built) or "columns" (unused columns gated)
    drive        the word-line DAC drive gating of the JETCAS point: a gated drive this many times the replica
                 ratio, enabled only as late as its slowest corner code settles (`circuit.wordline.
                 gated_drive_tables`; 1.0: the drive as built, settling under the precharge)
    hidden_code  the code a +1 hidden activation drives ("auto": the mapping's rule; an int); applies only to a
                 network with more than one on-array layer

Two configurations are evaluated from the same parameter values (the physics is shared, only the operating point
differs): the JETCAS point (the choices applied), where the accuracy drop, the energy per inference, TOPS/W,
TOPS/mm2 and the energy ratio are measured; and the prototype's own configuration (the parameter set as it is:
the mapped network, every column deciding, one decision per classify cycle), where the energy per ten-way
decision is set beside the 630 pJ measured on silicon (J. Zhang, Z. Wang, N. Verma, IEEE JSSC 52(4):915-924,
2017). Op conventions and area scopes are not point entries: every one is returned (the fit selects among them).

The accuracy drop is measured on `Resolution.n_chips` simulated chips x `n_images` MNIST test images, naive and
after the per-chip correction (`correct.py`), with a two-level bootstrap interval over chips x images
(`ibnn.analysis.bootstrap.drop_ci`). All randomness (the chips' static mismatch, the temporal noise, the bootstrap)
is drawn from the engine's seed, so a sweep with one seed for every point (`seed_keys=()`) compares points on
common random numbers: the same chips (their standard-normal draws, scaled by each point's sigmas), the same
images, the same noise streams.

Chips are cached within a worker process by the circuit values they depend on, shared by every PaperPoint of
the same network (an energy- or area-only change, or `CHIP_FREE` = the precharge sizing, reuses them and their
runs; a change of t_eval or c_bl_per_cell retimes them), so the points of a Saltelli design or of a
finite-difference Jacobian that differ only in energy constants cost milliseconds. Work no requested figure reads
is skipped (`silicon=False`: no run in the prototype's configuration; `peak=False`: no all-rows workload and no
all-rows figures), which changes no figure that is computed.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..circuit.chip import Chip
from ..circuit.wordline import drive_tables, gated_drive_tables
from ..cost import efficiency as F
from ..cost import energy as E
from ..cost import silicon as Si
from ..cost.activity import network_activity
from ..cost.study import ENERGY_ONLY_CIRCUIT, EnergyStudy
from ..mapping import map_network
from ..published import JSSC2017
from ..validate import check_choice, check_int, check_positive
from . import correct
from .keys import canonical_json

CHOICES = ("supply", "pulse", "clock", "gating", "drive", "hidden_code")
GATING = ("none", "columns")
RETIMED = ("t_eval", "c_bl_per_cell", "c_bl", "volts_per_lsb_nominal")   # enter a Chip only via volts_per_lsb
CHIP_FREE = ENERGY_ONLY_CIRCUIT           # circuit entries no chip, run or drive table reads (the energy's alone)
SILICON_J = JSSC2017["energy_per_decision_J"]
_CHIPS: dict = {}          # per process: build key -> Chip (see `_chips`), least recently used dropped first
_RUNS: dict = {}           # per process: run key -> _Run, and drive tables
_MAX_CHIPS, _MAX_RUNS = 12, 96       # a run is small (activity of n_energy images); a chip holds its tables


@dataclass(frozen=True)
class Resolution:
    """How finely one point is measured.

    n_chips x n_images: the accuracy drop (test images); n_cal: training images of the per-chip correction (0: no
    correction); n_energy: test images of the run the energy model reads; n_boot: bootstrap replicates."""

    n_chips: int = 4
    n_images: int = 2000
    n_cal: int = 100
    n_energy: int = 200
    n_boot: int = 200
    n_all_rows: int = 50

    def __post_init__(self):
        check_int("n_chips", self.n_chips, 1)
        check_int("n_images", self.n_images, 10)
        check_int("n_cal", self.n_cal, 0)
        check_int("n_energy", self.n_energy, 1)
        check_int("n_boot", self.n_boot, 10)
        check_int("n_all_rows", self.n_all_rows, 1)


@dataclass
class _Run:
    """What one configuration's chips gave: drops (DropCI dicts or None) and the activity of chip 0."""

    naive: dict | None
    corrected: dict | None
    activity: list
    mapping: Any
    correction: str | None
    all_rows: Any = None


def circuit_key(P, skip=()) -> str:
    """sha256 of the circuit-section values of P (the chip depends on nothing else), less the names in `skip`."""
    vals = {n: P[n] for n in P.names("circuit") if n not in skip}
    return hashlib.sha256(canonical_json(vals).encode()).hexdigest()[:20]


class PaperPoint:
    """The point function (module docstring): ``PaperPoint(P, folded, data, res)(point, seed) -> figures``.

    Args:
        P: the base parameter set (every point starts from it).
        folded: the trained FoldedBNN (notebook 03's checkpoint).
        data: `correct.EvalData` (test codes and labels, software correctness, calibration codes).
        res: Resolution.
        drops: measure the accuracy drop (False: the energy, ops and area figures only, from one chip).
        silicon: compute the silicon check (False: no run in the prototype's configuration, no silicon_* figures).
        peak: compute the all-rows workload (False: no energy_all_rows_cycle_J and no tops_per_w_all_rows_*).
    """

    def __init__(self, P, folded, data, res: Resolution = Resolution(), drops: bool = True, silicon: bool = True,
                 peak: bool = True):
        self.P, self.folded, self.data, self.res, self.drops = P, folded, data, res, bool(drops)
        self.silicon, self.peak = bool(silicon), bool(peak)
        if res.n_images > len(data.labels) or res.n_energy > len(data.labels):
            raise ValueError(f"Resolution n_images={res.n_images}, n_energy={res.n_energy} exceed the "
                             f"{len(data.labels)} test images of the data")
        if res.n_cal > len(data.cal_codes):
            raise ValueError(f"Resolution n_cal={res.n_cal} exceeds the {len(data.cal_codes)} calibration images")
        self._net = _network_digest(folded)
        parts = [canonical_json(P.values()), data.digest(), self._net, canonical_json(asdict(res)),
                 str(self.drops)] + ([] if self.silicon and self.peak else [f"silicon={self.silicon},peak={self.peak}"])
        self._fp = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def fingerprint(self) -> str:
        """Digest of the base parameter values, the network, the data, the resolution and which figures are
        measured (enters every cache key)."""
        return self._fp

    def split(self, point: Mapping[str, Any]) -> tuple[dict, dict]:
        """(parameter values, choices with defaults filled in) of a point; unknown entries are a ValueError."""
        known = self.P.entries         # not a read of its own: __init__ read every value (P.values())
        params = {k: v for k, v in point.items() if k in known}
        choices = {"supply": None, "pulse": None, "clock": None, "gating": "none", "drive": 1.0, "hidden_code": "auto"}
        extra = {k: v for k, v in point.items() if k not in known}
        unknown = sorted(set(extra) - set(CHOICES))
        if unknown:
            raise ValueError(f"point entries {unknown} are neither parameters nor choices {list(CHOICES)}")
        choices.update(extra)
        check_choice("gating", choices["gating"], GATING)
        if float(choices["drive"]) < 1.0:
            raise ValueError(f"drive={choices['drive']!r}: the gated drive's width factor must be >= 1")
        return params, choices

    def configs(self, point: Mapping[str, Any]):
        """(P of the JETCAS point, P of the prototype's configuration, choices)."""
        params, ch = self.split(point)
        P_sil = self.P.replace(**params)
        over = {k: check_positive(c, ch[c]) for k, c in (("vdd", "supply"), ("t_eval", "pulse"),
                                                          ("f_classify", "clock")) if ch[c] is not None}
        return P_sil.replace(**over) if over else P_sil, P_sil, ch

    def __call__(self, point: Mapping[str, Any], seed: int) -> dict:
        P_op, P_sil, ch = self.configs(point)
        run = self._run(P_op, ch["hidden_code"], seed, drops=self.drops, peak=self.peak)
        figs = {"software_accuracy": float(self.data.soft_correct[:self.res.n_images].double().mean())}
        for name in ("naive", "corrected"):
            d = getattr(run, name)
            if d is not None:
                figs.update({f"drop_{name}": d["mean_drop"], f"drop_{name}_lo": d["ci95"][0],
                             f"drop_{name}_hi": d["ci95"][1]})
        figs.update(self._energy_figures(P_op, run, ch["gating"], float(ch["drive"])))
        if not self.silicon:
            return figs
        same = circuit_key(P_sil, CHIP_FREE) == circuit_key(P_op, CHIP_FREE) and ch["hidden_code"] == "auto"
        sil = run if same else self._run(P_sil, "auto", seed, drops=False, peak=False)
        e_sil = self._study(P_sil, sil.mapping, "none").energies(P_sil, sil.activity)   # JSSC: the chip as built
        figs.update({"silicon_J": e_sil["imc_J"], "silicon_ratio": e_sil["imc_J"] / SILICON_J,
                     "silicon_log2_ratio": math.log2(e_sil["imc_J"] / SILICON_J)})
        return figs

    # --- energy, ops, area ---------------------------------------------------------------------------------
    def _tables(self, P, drive: float = 1.0):
        """The word-line drive tables of P (cached per circuit), gated `drive` times wider where drive > 1."""
        key = ("tables", circuit_key(P, CHIP_FREE), float(drive))
        if _hit(_RUNS, key) is None:
            _trim(_RUNS, _MAX_RUNS)
            _RUNS[key] = drive_tables(P) if drive == 1.0 else gated_drive_tables(P, P["replica_ratio"] * drive)
        return _RUNS[key]

    def _study(self, P, mapping, gating: str, drive: float = 1.0) -> EnergyStudy:
        n = self.res.n_energy
        return EnergyStudy(P, mapping, self.data.codes[:n], self.data.labels[:n],
                           gate_unused_columns=gating == "columns", tables=self._tables(P, drive))

    def _energy_figures(self, P, run: _Run, gating: str, drive: float) -> dict:
        """Energy per inference (system, macro, digital), the ratio, TOPS/W for every op basis and definition
        (macro energy; the all-rows basis from `run.all_rows`, where measured) and TOPS/mm2 for every basis,
        definition and area scope, at the JETCAS point (`ibnn.cost.efficiency`)."""
        study = self._study(P, run.mapping, gating, drive)
        e = study.energies(P, run.activity)
        peak = None if run.all_rows is None else \
            E.imc_inference_energy(P, [run.all_rows], study.readout, False, study.tables)
        shapes = study.layer_shapes
        tpw = F.tops_per_w_table(P, e["imc"], shapes, study.readout, all_rows=peak)
        tpmm = F.tops_per_mm2_table(P, shapes, e["imc"]["n_cycles"])
        out = {"energy_per_inference_J": e["imc_J"], "energy_macro_J": e["imc"]["macro_J"],
               "energy_digital_J": e["digital_J"], "energy_ratio": e["ratio"]}
        if peak is not None:
            out["energy_all_rows_cycle_J"] = peak["macro_J"]
        for basis, defs in tpw.items():
            for d, scopes in defs.items():
                out[f"tops_per_w_{basis}_{d}"] = scopes["macro"]
                for s, v in tpmm[basis][d].items():
                    out[f"tops_per_mm2_{basis}_{d}_{s}"] = v
        return out

    # --- chips and their runs, cached per process -----------------------------------------------------------
    def _chips(self, P, seed: int, n_chips: int):
        free = {n: self.P[n] for n in CHIP_FREE if n in P and P[n] != self.P[n]}
        P = P.replace(**free) if free else P          # the chip of P is the chip of P at the base's CHIP_FREE
        key = (self._net, circuit_key(P, RETIMED + CHIP_FREE), seed, n_chips)   # a chip depends on nothing else
        chip = _hit(_CHIPS, key)
        if chip is None:
            _trim(_CHIPS, _MAX_CHIPS)
            chip = _CHIPS[key] = Chip(P, n_chips=n_chips, seed=seed % (2 ** 31))
        return chip if chip.params is P else chip.retimed(P)

    def _run(self, P, hidden_code, seed: int, drops: bool, peak: bool = True) -> _Run:
        key = (self.fingerprint(), circuit_key(P, CHIP_FREE), str(hidden_code), seed, drops, peak)
        if _hit(_RUNS, key) is not None:
            return _RUNS[key]
        res, d = self.res, self.data
        chips = self._chips(P, seed, res.n_chips if drops else 1)
        mapping = map_network(self.folded, P, hidden_code=hidden_code)
        naive = corrected = name = None
        if drops:
            noise = correct.noise_seeds(seed)
            naive, corrected, name = correct.drops(mapping, chips, d, res, noise)
        _, act = network_activity(mapping, chips, d.codes[:res.n_energy], noise_seed=seed % (2 ** 31))
        all_rows = None
        if peak:
            ar_codes = Si.all_rows_codes(act[0].codes, P.int("array_rows"), res.n_all_rows, seed % (2 ** 31))
            all_rows = Si.all_rows_activity(chips, ar_codes, mapping.bits, seed % (2 ** 31))
        _trim(_RUNS, _MAX_RUNS)
        run = _RUNS[key] = _Run(naive, corrected, act, mapping, name, all_rows)
        return run


def _hit(cache: dict, key):
    """The cached value (moved to the end: the least recently used entry is the first), or None."""
    value = cache.pop(key, None)
    if value is not None:
        cache[key] = value
    return value


def _trim(cache: dict, size: int) -> None:
    while len(cache) >= size:
        cache.pop(next(iter(cache)))


def _network_digest(folded) -> str:
    h = hashlib.sha256()
    tensors = [t for L in folded.layers for t in (L.weight, L.theta)]
    tensors += [getattr(folded.readout, a) for a in ("weight", "bias") if hasattr(folded.readout, a)]
    for t in tensors:
        h.update(np.ascontiguousarray(torch.as_tensor(t).cpu().numpy()).tobytes())
    h.update(canonical_json({k: str(v) for k, v in sorted(folded.meta.items())}).encode())
    return h.hexdigest()[:16]


def clear_caches() -> None:
    """Forget the chips and runs cached in this process (tests; memory)."""
    _CHIPS.clear()
    _RUNS.clear()
