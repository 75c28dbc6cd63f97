"""Provenance of results: which inputs each result was computed from, and refusal of stale ones.

Every file a notebook reads through `load_results` / `record_input` is remembered with its sha256, and
`write_results` stores that list, with the run profile (and any parameter the reader set outside its cited range,
`param_overrides`), under the key "_provenance" of results/<notebook>.json. A later `load_results` checks that the
inputs recorded there are still the files on disk: a result computed from another checkpoint or from an older
upstream result is reported as stale instead of silently used. Paths are relative (`io.relative`); reads go
through `io.input_path` (a hand run reads what its scratch root lacks from the committed record).
"""
from __future__ import annotations

import json
import sys

from .io import atomic_write_json, current_profile, input_path, relative, results_dir, sha256_file

_INPUTS: dict[str, str] = {}


def record_input(path) -> str:
    """Remember that the current notebook used `path` (its sha256 goes into the provenance of its results)."""
    digest = sha256_file(path)
    _INPUTS[relative(path)] = digest
    return digest


def inputs() -> dict[str, str]:
    """The inputs recorded so far in this process: relative path -> sha256."""
    return dict(sorted(_INPUTS.items()))


def _param_overrides() -> dict:
    """Entries this process read whose value the reader set outside the cited range (`override`)."""
    params = sys.modules.get("ibnn.params")          # not imported here: a notebook that reads none has none
    return params.used_overrides() if params is not None else {}


def write_results(name: str, obj: dict):
    """Write results/<name>.json atomically (name: the notebook's stem, e.g. '03_train_bnn'); returns its path.

    Adds "_provenance": the run profile, the sha256 of every input this process loaded and, when the notebook read
    a parameter the reader moved outside its cited range, "param_overrides" (the change is the reader's).
    """
    if not isinstance(obj, dict):
        raise ValueError(f"results for {name!r} must be a dict, got {type(obj).__name__}")
    if "_provenance" in obj:
        raise ValueError("results may not set the reserved key '_provenance'")
    prov = {"notebook": name, "profile": current_profile(), "inputs": inputs()}
    overrides = _param_overrides()
    if overrides:
        prov["param_overrides"] = overrides
    return atomic_write_json(results_dir() / f"{name}.json", {**obj, "_provenance": prov})


class StaleResultError(RuntimeError):
    """A result or checkpoint does not match what it claims to be derived from."""


def check_provenance(name: str, data: dict, profile: str | None = None) -> None:
    """A StaleResultError unless every input recorded in results/<name>.json is unchanged on disk (and the profile
    matches)."""
    where = f"results/{name}.json"
    prov = data.get("_provenance")
    if not isinstance(prov, dict):
        raise StaleResultError(f"{where} has no _provenance: it was not written by this version of ibnn; "
                               f"rerun make figures")
    if profile is not None and prov.get("profile") not in (None, profile):
        raise StaleResultError(f"{where} was computed with profile {prov.get('profile')!r}, this run uses "
                               f"{profile!r}; rerun make figures{' FAST=1' if profile == 'fast' else ''}")
    for rel, digest in prov.get("inputs", {}).items():
        path = input_path(rel)
        if not path.exists():
            raise StaleResultError(f"{where} was computed from {rel}, which no longer exists; rerun make figures")
        if sha256_file(path) != digest:
            raise StaleResultError(f"{where} is stale: {rel} changed since it was computed "
                                   f"(sha256 {digest[:12]}... expected); rerun make figures")


def load_results(name: str, check: bool = True) -> dict:
    """Read results/<name>.json, check its provenance and record it as an input of the current notebook."""
    path = input_path(f"results/{name}.json")
    if not path.exists():
        raise FileNotFoundError(f"results/{name}.json does not exist: run notebook {name}.ipynb first "
                                f"(make figures)")
    with open(path) as fh:
        data = json.load(fh)
    if check:
        check_provenance(name, data, current_profile())
    record_input(path)
    return data
