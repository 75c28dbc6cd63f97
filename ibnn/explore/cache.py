"""The point cache of the sweep engine: one JSON file per point, named by its content hash, written atomically.

Content-addressed (the key hashes the point, its seed, the point function and the code version), so sweeps of
different code or parameters can share a folder, an interrupted sweep finds what it had finished, and a larger
rerun reuses every point it has in common with a smaller one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..repro import io as _io
from .keys import SCHEMA


def sweep_cache_dir(name: str) -> Path:
    """The default cache folder of a named sweep: <IBNN_CACHE_DIR or .cache>/sweeps/<name> (content-addressed,
    so sweeps of different code or parameters can share it)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"sweep name {name!r} must be a plain folder name")
    return _io.cache_dir() / "sweeps" / name


class PointCache:
    """One JSON file per point, cache_dir/<key[:2]>/<key>.json, written atomically (never half-written)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file of a key."""
        return self.root / key[:2] / f"{key}.json"

    def load(self, key: str) -> dict | None:
        """The stored entry, or None where absent or unreadable (it is then recomputed)."""
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(entry, dict) and entry.get("key") == key and entry.get("schema") == SCHEMA
        return entry if ok and isinstance(entry.get("result"), dict) else None

    def store(self, entry: dict) -> None:
        """Write atomically (temporary file + rename: a killed process never leaves half a file). No fsync: a
        file lost to an operating-system crash reads as absent or unreadable and is recomputed."""
        with _io.atomic_path(self.path(entry["key"])) as tmp:
            tmp.write_text(_io.dumps(entry))

    def count(self) -> int:
        """Number of points stored."""
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0

