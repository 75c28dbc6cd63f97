"""The table of published in-memory-computing macros (ibnn/data_tables/imc_macros.csv) for notebook 07.

Each row cites its paper (authors, title, venue, year, doi where verified) and carries the 1-bit-normalised
energy efficiency (TOPS/W) and compute density (TOPS/mm2) of one operating point; `numbers_from` says where the
normalised figures come from. `load_macros()` checks every row and raises ValueError naming the row and field.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "data_tables" / "imc_macros.csv"
COLUMNS = ("key", "authors", "title", "venue", "year", "doi", "tech_nm", "memory", "cell", "input_bits_bank",
           "weight_bits_bank", "supply_V", "tops_per_w_1b", "tops_per_mm2_1b", "headline_reported",
           "numbers_from")


@dataclass(frozen=True)
class Macro:
    """One published in-memory-computing macro at one operating point, with its citation and 1-b-normalised figures."""
    key: str
    authors: str
    title: str
    venue: str
    year: int
    doi: str
    tech_nm: float
    memory: str
    cell: str
    input_bits_bank: float
    weight_bits_bank: float
    supply_V: float
    tops_per_w_1b: float
    tops_per_mm2_1b: float
    headline_reported: str
    numbers_from: str

    @property
    def citation(self) -> str:
        """Authors, title, venue, year (and doi where verified)."""
        doi = f", doi {self.doi}" if self.doi else ""
        return f"{self.authors}, \"{self.title}\", {self.venue} {self.year}{doi}"


def _pos(where: str, field: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{where}: {field}={text!r} must be a number") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{where}: {field}={v!r} is out of range; accepted: finite number in (0, inf)")
    return v


def load_macros(path: str | Path = TABLE) -> list[Macro]:
    """Rows of the macro table, checked: every citation field present, numbers finite and positive."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{path.name}: columns {reader.fieldnames} differ from the expected {list(COLUMNS)}")
    out, keys = [], set()
    for i, row in enumerate(reader, start=1):
        where = f"{path.name} row {i} ({row.get('key') or '?'})"
        for f in ("key", "authors", "title", "venue", "year", "numbers_from"):
            if not (row.get(f) or "").strip():
                raise ValueError(f"{where}: citation field {f!r} is empty; every row must cite its paper")
        if row["key"] in keys:
            raise ValueError(f"{where}: key {row['key']!r} appears twice")
        keys.add(row["key"])
        year = int(_pos(where, "year", row["year"]))
        if not 1990 <= year <= 2100:
            raise ValueError(f"{where}: year={year} is out of range; accepted: integer in [1990, 2100]")
        out.append(Macro(key=row["key"], authors=row["authors"], title=row["title"], venue=row["venue"],
                         year=year, doi=row["doi"].strip(), tech_nm=_pos(where, "tech_nm", row["tech_nm"]),
                         memory=row["memory"], cell=row["cell"],
                         input_bits_bank=_pos(where, "input_bits_bank", row["input_bits_bank"]),
                         weight_bits_bank=_pos(where, "weight_bits_bank", row["weight_bits_bank"]),
                         supply_V=_pos(where, "supply_V", row["supply_V"]),
                         tops_per_w_1b=_pos(where, "tops_per_w_1b", row["tops_per_w_1b"]),
                         tops_per_mm2_1b=_pos(where, "tops_per_mm2_1b", row["tops_per_mm2_1b"]),
                         headline_reported=row["headline_reported"], numbers_from=row["numbers_from"]))
    if not out:
        raise ValueError(f"{path.name} has no rows")
    return out
