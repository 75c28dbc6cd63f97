"""Which nonidealities a simulated chip has, and how strong: one scale per mechanism (0 off, 1 the magnitude in
the parameter set, > 1 exaggerated), and the physical magnitude a scale stands for (for plot axes)."""
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

    def __post_init__(self):
        for f in fields(self):
            check_nonneg(f"Nonidealities.{f.name}", getattr(self, f.name))

    @classmethod
    def ideal(cls) -> "Nonidealities":
        """Every nonideality off: the chip computes sign(codes @ W - theta) exactly."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)

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
    if name == "cell_mismatch":
        return 1e3 * P["sigma_vt_cell"] * scale, "cell sigma(Vt) (mV)"
    if name == "dac_mismatch":
        return 100 * P["sigma_dac_unit"] * scale, "WLDAC unit-source sigma (%)"
    if name == "comparator_offset":
        return 1e3 * P["comp_offset_sigma"] * scale, "comparator offset sigma (mV)"
    if name == "noise":
        return 1e3 * P["comp_noise_sigma"] * scale, "comparator noise sigma (mV rms)"
    if name == "compression":
        return float(scale), "compression scale (0 linear, 1 physical)"
    raise ValueError(f"name={name!r} is not accepted; choose one of {list(NONIDEALITIES)}")
