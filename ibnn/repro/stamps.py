"""The pipeline's record of every notebook run (results/pipeline_stamps.json) and why a notebook must rerun.

One entry per notebook: the profile, the digest of its source, its recorded dependencies (the ibnn modules it
imported, the parameter entries it read, the package data it opened, the inputs it loaded, each with its digest;
see `ibnn.repro.manifest`) and the sha256 of every file it wrote (results, figures, checkpoints, the executed
notebook). The record is committed with the results, so a fresh clone knows its notebooks are current.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from . import io

STAMPS = "pipeline_stamps.json"
FORMAT = 2
RECORD_DIRS = ("results", "figures")
MANIFEST_TAG = "ibnn-manifest"          # the cell the pipeline appends (ibnn.repro.manifest.TAG)
INJECTED_TAG = "injected-parameters"    # the cell papermill inserts for the parameters of a hand run


def notebook_digest(path: Path) -> str:
    """Hash of the code and markdown sources, without outputs and without injected or appended cells."""
    nb = json.loads(Path(path).read_text())
    h = hashlib.sha256()
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags or MANIFEST_TAG in tags:
            continue
        src = cell["source"]
        h.update(cell["cell_type"].encode())
        h.update(("".join(src) if isinstance(src, list) else src).encode())
    return h.hexdigest()


def injected(path: Path) -> bool:
    """Whether the notebook holds a papermill-injected parameters cell (a hand run saved over its source)."""
    cells = json.loads(Path(path).read_text())["cells"]
    return any(INJECTED_TAG in c.get("metadata", {}).get("tags", []) for c in cells)


def file_digest(path: Path) -> str | None:
    """sha256 of a file, None when it does not exist."""
    return io.sha256_file(path) if path.is_file() else None


def list_files(root: Path) -> list[str]:
    """Files of the record under root (results/**, figures/**), relative, without temporaries and the stamps."""
    out = []
    for d in RECORD_DIRS:
        for p in sorted((root / d).rglob("*")) if (root / d).exists() else []:
            rel = p.relative_to(root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts) and p.name != STAMPS:
                out.append(rel.as_posix())
    return out


def path(root: Path) -> Path:
    """root/results/pipeline_stamps.json."""
    return root / "results" / STAMPS


def load(root: Path) -> dict:
    """{stem: entry}. Entries of the first stamp format (outputs without hashes) are kept, marked 'legacy'.
    A ValueError (one line) when the file is not valid JSON."""
    p = path(root)
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{io.relative(p)} is not valid JSON ({exc}); restore it (git checkout -- results/{STAMPS})"
                         f" or remove it and regenerate everything (FORCE=1)") from None
    if data.get("format") == FORMAT:
        return data["notebooks"]
    return {stem: {"legacy": True, "outputs": {rel: None for rel in e.get("outputs", [])}}
            for stem, e in data.items() if isinstance(e, dict)}


def save(root: Path, stamps: dict) -> None:
    """Write the stamps atomically."""
    io.atomic_write_json(path(root), {"format": FORMAT, "notebooks": dict(sorted(stamps.items()))})


def dependencies(manifest: dict, P) -> dict:
    """The digests of what a run read (its manifest): modules, parameter entries, package data, inputs."""
    return {"modules": {rel: file_digest(io.REPO_ROOT / rel) for rel in manifest["modules"]},
            "params": {name: P.digest(name) for name in manifest["params"]},
            "package_data": {rel: file_digest(io.REPO_ROOT / rel) for rel in manifest["package_data"]},
            "inputs": manifest["inputs"]}


def _readme_reason(root: Path, rel: str) -> str | None:
    """For results/claims.json of the repository: the README claims table must be the one it gives."""
    from . import claims

    readme, p = io.REPO_ROOT / "README.md", root / rel
    if root != io.REPO_ROOT or rel != "results/claims.json" or not p.is_file() or not readme.exists():
        return None
    text = readme.read_text()
    if claims.README_START not in text or claims.README_END not in text:
        return None
    block = text.split(claims.README_START)[1].split(claims.README_END)[0].strip()
    if block != claims.markdown_table(json.loads(p.read_text())).strip():
        return "the README claims table differs from results/claims.json"
    return None


def _dependency_reasons(deps: dict, root: Path, P) -> list[str]:
    """Which recorded dependencies changed since the run."""
    reasons = [f"{rel} changed" for kind in ("modules", "package_data") for rel, d in deps.get(kind, {}).items()
               if file_digest(io.REPO_ROOT / rel) != d]
    for name, d in deps.get("params", {}).items():
        if P.digest(name) != d:
            reasons.append(f"the list of {name.split(':')[-1].lstrip('@')} parameters changed"
                           if name.startswith("@") else f"parameter {name} changed")
    return reasons + [f"{rel} changed" for rel, d in deps.get("inputs", {}).items() if file_digest(root / rel) != d]


def stale_reasons(src: Path, entry: dict | None, root: Path, profile: str, P, forced: bool) -> list[str]:
    """Why the notebook `src` must rerun (empty: up to date)."""
    if forced:
        return ["forced"]
    if not entry:
        return ["no recorded run"]
    if entry.get("legacy"):
        return ["recorded by an older make figures (no dependency record)"]
    if entry.get("committing"):
        return ["its last run did not finish"]
    if entry.get("profile") != profile:
        return [f"recorded with the {entry.get('profile')} profile, this run is {profile}"]
    reasons = [] if entry.get("source") == notebook_digest(src) else ["its source changed"]
    if src.parent.resolve() == (root / "notebooks").resolve() and injected(src):   # the record's own copy
        reasons.append(f"notebooks/{src.name} holds papermill-injected parameters (a hand run saved in place; "
                       f"the rerun drops them)")
    reasons += _dependency_reasons(entry["deps"], root, P)
    for rel, d in entry.get("outputs", {}).items():
        cur = file_digest(root / rel)
        if cur is None:
            reasons.append(f"{rel} is missing")
        elif rel.startswith("notebooks/") and cur != d:
            reasons.append(f"{rel} was executed or edited outside make figures")
        elif reason := _readme_reason(root, rel):
            reasons.append(reason)
    return reasons


_DURATION = re.compile(r"\d+(?:\.\d+)?(?= ?(?:s|ms|min)\b)")


def same_but_durations(a: str, b: str) -> bool:
    """Whether two executed notebooks differ at most in the run times they print (a number followed by s, ms or
    min): a rerun that changed nothing else keeps the recorded notebook, so reruns leave notebooks byte-identical."""
    return a == b or _DURATION.sub("#", a) == _DURATION.sub("#", b)


def commit(src: Path, root: Path, stage: Path, executed: Path, manifest: dict, stamps: dict, P,
           profile: str) -> list[str]:
    """Move a finished notebook's staged outputs and executed notebook into the root, then write its stamp.
    Returns the outputs removed because the notebook no longer writes them."""
    stem, old = src.stem, stamps.get(src.stem, {}).get("outputs", {})
    staged = list_files(stage)
    outputs = {rel: io.sha256_file(stage / rel) for rel in staged}
    owned = {rel for k, e in stamps.items() if k != stem for rel in e.get("outputs", {})}
    for rel, d in manifest["inputs"].items():   # caches it read instead of rewriting (noise-aware checkpoints)
        if rel not in outputs and rel not in owned and rel.startswith("results/") and (root / rel).is_file():
            outputs[rel] = d
    nb_rel = f"notebooks/{src.name}"
    recorded = root / nb_rel
    if (recorded.is_file() and old.get(nb_rel) == io.sha256_file(recorded)
            and same_but_durations(recorded.read_text(), executed.read_text())):
        shutil.copyfile(recorded, executed)       # only its printed run times differ: the record stays byte-identical
    outputs[nb_rel] = io.sha256_file(executed)
    entry = {"profile": profile, "source": notebook_digest(src), "deps": dependencies(manifest, P),
             "outputs": dict(sorted(outputs.items()))}
    stamps[stem] = {**entry, "committing": True}      # a crash while moving: rerun next time, nothing refused
    save(root, stamps)
    for rel in [*staged, nb_rel]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(executed if rel == nb_rel else stage / rel, root / rel)
    removed = [rel for rel, d in old.items() if rel not in outputs and (root / rel).is_file()
               and (d is None or io.sha256_file(root / rel) == d)]
    for rel in removed:
        (root / rel).unlink()
    stamps[stem] = entry
    save(root, stamps)
    shutil.rmtree(stage, ignore_errors=True)
    return removed
