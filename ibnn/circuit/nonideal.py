"""Which nonidealities a simulated chip has, and how strong: one scale per mechanism (0 off, 1 the magnitude in
the parameter set, > 1 exaggerated), and the physical magnitude a scale stands for (for plot axes).

The mechanisms (fields, in order; NONIDEALITIES derives from them, so sweeps and `alone` pick up every one):
cell_mismatch, dac_mismatch, comparator_offset, noise (the comparator's own), compression (drain law and floor),
and, from the word-line and comparator physics: replica_mismatch (each row's WLDAC replica, ibnn.circuit.replica),
window_charge (the code-dependent charge of the real word-line waveform, ibnn.circuit.wordline), wl_coupling (the
falling bit-lines pull every word line down through the access devices' gate-drain capacitance), physical_noise
(kT/C and the discharge shot noise, ibnn.circuit.noise), comparator_cm (the rail-to-rail comparator's offset
moving with the input common mode, ibnn.circuit.comparator).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..validate import check_choice, check_nonneg, check_real


@dataclass(frozen=True)
class Nonidealities:
    """Scales of each nonideality: 0 off, 1 the magnitude in the parameter set, > 1 exaggerated."""

    cell_mismatch: float = 1.0
    dac_mismatch: float = 1.0
    comparator_offset: float = 1.0
    noise: float = 1.0
    compression: float = 1.0
    replica_mismatch: float = 1.0
    window_charge: float = 1.0
    wl_coupling: float = 1.0
    physical_noise: float = 1.0
    comparator_cm: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            check_nonneg(f"Nonidealities.{f.name}", getattr(self, f.name))

    @classmethod
    def ideal(cls) -> "Nonidealities":
        """Every nonideality off: the chip computes sign(codes @ W - theta) exactly."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @property
    def is_ideal(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))


#: The mechanisms, in the order of the dataclass fields.
NONIDEALITIES = tuple(f.name for f in fields(Nonidealities))


def alone(name: str, scale: float = 1.0):
    """Nonidealities with only `name` on (at `scale`), everything else ideal."""
    check_choice("name", name, NONIDEALITIES)
    scale = check_real("scale", scale, 0.0)
    kw = {n: 0.0 for n in NONIDEALITIES}
    kw[name] = scale
    return Nonidealities(**kw)


def physical_magnitude(name: str, scale: float, P) -> tuple[float, str]:
    """The physical magnitude a Nonidealities scale stands for in parameter set P, and its unit (for axes)."""
    check_choice("name", name, NONIDEALITIES)
    rep = (P["sigma_vt_cell"] / P["replica_ratio"] ** 0.5) if "replica_ratio" in P else 0.0
    table = {
        "cell_mismatch": (1e3 * P["sigma_vt_cell"], "cell sigma(Vt) (mV)"),
        "dac_mismatch": (100 * P["sigma_dac_unit"], "WLDAC unit-source sigma (%)"),
        "comparator_offset": (1e3 * P["comp_offset_sigma"], "comparator offset sigma (mV)"),
        "noise": (1e3 * P["comp_noise_sigma"], "comparator noise sigma (mV rms)"),
        "compression": (1.0, "compression scale (0 linear, 1 physical)"),
        "replica_mismatch": (1e3 * rep, "replica sigma(Vt) (mV)"),
        "window_charge": (1.0, "window-charge scale (0 ideal window, 1 real word-line waveform)"),
        "wl_coupling": (1e9 * P["c_ov_per_width"], "access gate-drain capacitance (fF/um)"),
        "physical_noise": (1.0, "physical-noise scale (1: kT/C + shot noise)"),
        "comparator_cm": (1.0, "common-mode offset scale (1: rail-to-rail StrongARM)"),
    }
    value, unit = table[name]
    return value * float(scale), unit
