"""Provenance of results: which inputs each result was computed from, and refusal of stale ones.

Every file a notebook reads through `load_results` / `record_input` is remembered with its sha256, and
`write_results` stores that list, with the run profile, under the key "_provenance" of results/<notebook>.json.
A later `load_results` checks that the inputs recorded there are still the files on disk: a result computed from
another checkpoint or from an older upstream result is reported as stale instead of silently used.
"""
from __future__ import annotations

import json
from pathlib import Path

from .io import atomic_write_json, output_root, results_dir, sha256_file

# Provenance: every file a notebook reads through `load_results` / `record_input` is remembered (with its
# sha256), and `write_results` stores that list, with the run profile, under the key "_provenance". A later
# `load_results` checks that the inputs recorded there are still the files on disk: a result computed from
# another checkpoint or from an older upstream result is reported as stale instead of silently used.
_INPUTS: dict[str, str] = {}


_PROFILE: list[str] = []


def set_profile(profile: str) -> None:
    """Called by ibnn.nb.resolve_profile: the profile recorded in the results this process writes."""
    _PROFILE[:] = [profile]


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(output_root()))
    except ValueError:
        return str(path)


def record_input(path) -> str:
    """Remember that the current notebook used `path` (its sha256 goes into the provenance of its results)."""
    digest = sha256_file(path)
    _INPUTS[_rel(path)] = digest
    return digest


def write_results(name: str, obj: dict) -> Path:
    """Write results/<name>.json atomically (name: the notebook's stem, e.g. '03_train_bnn').

    Adds "_provenance": the run profile and the sha256 of every input this process loaded.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"results for {name!r} must be a dict, got {type(obj).__name__}")
    if "_provenance" in obj:
        raise ValueError("results may not set the reserved key '_provenance'")
    out = dict(obj)
    out["_provenance"] = {"notebook": name, "profile": _PROFILE[0] if _PROFILE else None,
                          "inputs": dict(sorted(_INPUTS.items()))}
    return atomic_write_json(results_dir() / f"{name}.json", out)


class StaleResultError(RuntimeError):
    """A result or checkpoint does not match what it claims to be derived from."""


def check_provenance(name: str, data: dict, profile: str | None = None) -> None:
    """A StaleResultError unless every input recorded in results/<name>.json is unchanged on disk (and the profile
    matches)."""
    prov = data.get("_provenance")
    if not isinstance(prov, dict):
        raise StaleResultError(f"results/{name}.json has no _provenance: it was not written by this version of "
                               f"ibnn; rerun make figures")
    if profile is not None and prov.get("profile") not in (None, profile):
        raise StaleResultError(f"results/{name}.json was computed with profile {prov.get('profile')!r}, this run "
                               f"uses {profile!r}; rerun make figures{' FAST=1' if profile == 'fast' else ''}")
    root = output_root()
    for rel, digest in prov.get("inputs", {}).items():
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if not path.exists():
            raise StaleResultError(f"results/{name}.json was computed from {rel}, which no longer exists; "
                                   f"rerun make figures")
        if sha256_file(path) != digest:
            raise StaleResultError(f"results/{name}.json is stale: {rel} changed since it was computed "
                                   f"(sha256 {digest[:12]}... expected); rerun make figures")


def load_results(name: str, check: bool = True) -> dict:
    """Read results/<name>.json, check its provenance and record it as an input of the current notebook."""
    path = results_dir() / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebook {name}.ipynb first (make figures)")
    with open(path) as fh:
        data = json.load(fh)
    if check:
        check_provenance(name, data, _PROFILE[0] if _PROFILE else None)
    record_input(path)
    return data
