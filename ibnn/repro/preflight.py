"""The checks `make figures` makes before any notebook runs, each problem one line naming the file and what to do:
IBNN_DEVICE; the whole parameter set, strictly (`ibnn.paramfile`); every parameter a notebook read still defined;
every file of the record (results, figures, checkpoints) on disk with the sha256 recorded when the pipeline wrote
it, and no file in results/ or figures/ that no notebook wrote. A hand-edited, truncated or foreign file is
refused by name (restore it, or FORCE=<notebook> to regenerate it), never silently built upon or overwritten.
Nothing here imports torch: the preflight takes a fraction of a second.
"""
from __future__ import annotations

import difflib
import time
from pathlib import Path

from .. import params
from . import device, io
from . import stamps as st

MAX_LISTED = 8


class PreflightError(Exception):
    """Problems found before any notebook ran: one line each (`lines`)."""

    def __init__(self, lines: list[str] | str):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


def shown(root: Path) -> str:
    """The root as messages name it: 'the repository', a folder inside it, or its path."""
    if root == io.REPO_ROOT:
        return "the repository"
    return root.relative_to(io.REPO_ROOT).as_posix() + "/" if root.is_relative_to(io.REPO_ROOT) else str(root)


def _modified_line(root: Path, rel: str, stem: str, recorded: str, command: str) -> str:
    """One line: `rel` is not the file `stem` wrote; how to restore or regenerate it."""
    what = {".pt": "truncated or replaced", ".png": "replaced or redrawn outside make figures"}.get(
        Path(rel).suffix, "edited by hand or written by another run")
    kind = "checkpoint" if rel.endswith(".pt") else "file"
    restore = f"restore it (git checkout -- {rel}) or " if root == io.REPO_ROOT else "remove it, or "
    found, size = io.sha256_file(root / rel), (root / rel).stat().st_size
    return (f"{rel}: not the {kind} {stem} wrote (sha256 {recorded[:12]}... recorded, {found[:12]}... on disk, "
            f"{size} bytes): {what}; {restore}regenerate it ({command} FORCE={stem})")


def check_record(root: Path, stamps: dict, forced: set[str], force_all: bool, command: str) -> list[str]:
    """Every recorded output on disk with its recorded sha256, and no unrecorded file in results/ or figures/
    (unless everything is regenerated, or the record predates hashes). One line per problem; a missing output
    is not a problem (its notebook reruns), nor are the outputs of the `forced` notebooks."""
    problems, owners = [], {}
    for stem, e in sorted(stamps.items()):
        for rel, digest in e.get("outputs", {}).items():
            owners[rel] = stem
            p = root / rel
            if (digest is None or rel.startswith("notebooks/") or e.get("committing") or stem in forced
                    or not p.is_file()):
                continue
            if io.sha256_file(p) != digest:
                problems.append(_modified_line(root, rel, stem, digest, command))
    if force_all or any(e.get("legacy") for e in stamps.values()):
        return problems
    foreign = [rel for rel in st.list_files(root) if rel not in owners]
    problems += [f"{rel}: not written by make figures (no notebook recorded it); remove it or move it out of "
                 f"{rel.split('/')[0]}/" for rel in foreign[:MAX_LISTED]]
    if len(foreign) > MAX_LISTED:
        problems.append(f"... and {len(foreign) - MAX_LISTED} more files not written by make figures"
                        + ("" if stamps else f" (results/{st.STAMPS} is missing: restore it with git checkout, "
                                             f"or regenerate everything with FORCE=1)"))
    return problems


def check_params_read(P, stamps: dict, sources: dict[str, Path]) -> list[str]:
    """Parameters a notebook read (recorded) that the files no longer define, while the code that read them is
    unchanged: that notebook would fail after minutes with a KeyError."""
    problems = []
    for stem, e in sorted(stamps.items()):
        deps, src = e.get("deps"), sources.get(stem)
        if not deps or src is None or e.get("source") != st.notebook_digest(src):
            continue
        if any(st.file_digest(io.REPO_ROOT / rel) != d for rel, d in deps["modules"].items()):
            continue
        for name in deps["params"]:
            if not name.startswith("@") and P.digest(name) == "absent":
                close = difflib.get_close_matches(name, list(P.entries), 1)
                problems.append(f"ibnn/params_data/*.toml: [{name}] is not defined, but notebook {stem} reads it"
                                f"{f' (did you mean [{close[0]}]?)' if close else ''}; accepted: restore the "
                                f"entry [{name}] (value, unit, kind, source)")
    return problems


def check_profile_tables(stems: set[str], path: Path | None = None) -> list[str]:
    """Every table of notebooks/profiles/fast.toml names a notebook (a renamed notebook's table follows it)."""
    import tomllib

    path = io.REPO_ROOT / "notebooks" / "profiles" / "fast.toml" if path is None else Path(path)
    try:
        with open(path, "rb") as fh:
            tables = tomllib.load(fh)
    except FileNotFoundError:
        return []
    except tomllib.TOMLDecodeError as exc:
        return [f"{io.relative(path)}: TOML syntax error: {exc}"]
    return [f"{io.relative(path)}: [{t}] names no notebook{f' (did you mean [{c[0]}]?)' if c else ''}; accepted: "
            f"the notebooks' names, {sorted(stems)}" for t in sorted(set(tables) - stems)
            for c in [difflib.get_close_matches(t, sorted(stems), 1)]]


def preflight(root: Path, nbs: list[Path], forced: set[str], command: str):
    """Device, parameter set, record: (ParamSet, stamps, summary line); PreflightError (its lines) on problems."""
    t0 = time.perf_counter()
    try:
        dev = device.check_request()
        P = params.load_from(params.DATA_DIR.glob("*.toml"))
        stamps = st.load(root)
    except ValueError as exc:                 # DeviceError, ParamFileError, a broken stamps file: one line
        raise PreflightError([f"ibnn: preflight: {exc}"]) from None
    force_all = forced >= {p.stem for p in nbs}
    problems = (check_profile_tables({p.stem for p in nbs}) + check_params_read(P, stamps, {p.stem: p for p in nbs})
                + check_record(root, stamps, forced, force_all, command))
    if problems:
        raise PreflightError([f"ibnn: preflight: {p}" for p in problems])
    files = [rel for e in stamps.values() for rel in e.get("outputs", {}) if (root / rel).is_file()]
    line = (f"[ibnn] preflight ({time.perf_counter() - t0:.1f} s): device {dev or 'auto'}; {len(P.entries)} "
            f"parameters valid; {len(files)} recorded files verified "
            f"({sum(rel.endswith('.pt') for rel in files)} checkpoints) in {shown(root)}")
    if P.overrides():
        line += "\n[ibnn] parameters set outside their cited range (your own values): " + ", ".join(
            f"{n} = {P[n]:g} ({reason})" for n, reason in P.overrides().items())
    return P, stamps, line
