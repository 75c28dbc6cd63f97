"""Notebook set-up in one call: every papermill parameter validated before any work, the quick profile applied
as a declared per-notebook override, the run profile recorded, the device request checked, figures inline.

A notebook's first code cell (tagged `parameters`) holds its defaults, the full profile. The next cell calls

    profile = nb.start(globals(), "05_accuracy_on_chip", n_chips=nb.Int(1, 10000), seed=nb.Int(0), ...)

with one rule per parameter. `start` refuses a parameter the notebook does not declare (a misspelled papermill
parameter is an error, not a warning), applies the quick profile's overrides for this notebook from
notebooks/profiles/fast.toml (each checked against the type of the default it replaces), checks every value
against its rule (the message names the parameter, its value and what is accepted), writes the validated values
back into the notebook's namespace, records the profile in the provenance of the results, checks IBNN_DEVICE (a
CUDA request without CUDA fails here, before any work), starts recording the package data the run opens (its
manifest, `ibnn.repro.manifest`) and shows figures inline in the common style (every figure saved with
`style.savefig` is embedded in the notebook).
"""
from __future__ import annotations

import difflib
import math
import os
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path

from ..validate import check_bool, check_choice, check_int, check_real
from . import device, io, manifest
from .style import kernel_shell, use_style

PROFILES = ("full", "fast")
PROFILE_DIR = io.REPO_ROOT / "notebooks" / "profiles"
#: Names IPython puts in a notebook's namespace; they are not parameters.
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}


@dataclass(frozen=True)
class Int:
    """An integer (bools refused) in [lo, hi]."""
    lo: int | None = None
    hi: int | None = None

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        return check_int(name, value, self.lo, self.hi)


@dataclass(frozen=True)
class Real:
    """A finite number in [lo, hi] (or open at lo with lo_open)."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        return check_real(name, value, self.lo, self.hi, lo_open=self.lo_open)


@dataclass(frozen=True)
class Bool:
    """True or False."""

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        return check_bool(name, value)


@dataclass(frozen=True)
class Str:
    """A string (a file name, a label); `empty` allows ''."""
    empty: bool = True

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        if not isinstance(value, str) or (not self.empty and not value):
            raise ValueError(f"{name}={value!r} must be a {'' if self.empty else 'non-empty '}string")
        return value


@dataclass(frozen=True)
class Choice:
    """One of the given values."""
    options: tuple

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        return check_choice(name, value, self.options)


@dataclass(frozen=True)
class List:
    """A list (or tuple) whose items each satisfy `item`, with at least `min_len` of them."""
    item: object
    min_len: int = 0

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        if not isinstance(value, (list, tuple)) or len(value) < self.min_len:
            raise ValueError(f"{name}={value!r} must be a list of at least {self.min_len} item(s)")
        return [self.item.check(f"{name}[{i}]", v) for i, v in enumerate(value)]


@dataclass(frozen=True)
class Optional:
    """None, or a value satisfying `rule`."""
    rule: object

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        return None if value is None else self.rule.check(name, value)


@dataclass(frozen=True)
class OneOf:
    """A value satisfying the first of `rules` that accepts it (the error lists them all)."""
    rules: tuple

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        errors = []
        for rule in self.rules:
            try:
                return rule.check(name, value)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(" or ".join(errors))


@dataclass(frozen=True)
class Record:
    """A dict with exactly the keys of `fields` (a dict name -> rule), each satisfying its rule."""
    fields: dict

    def check(self, name, value):
        """The value, checked; a ValueError naming the parameter, its value and what is accepted otherwise."""
        if not isinstance(value, dict) or set(value) != set(self.fields):
            raise ValueError(f"{name}={value!r} must be a dict with keys {sorted(self.fields)}")
        return {k: rule.check(f"{name}[{k!r}]", value[k]) for k, rule in self.fields.items()}


def resolve_profile(profile: str) -> str:
    """The run profile: 'full' (make figures) or 'fast' (make figures FAST=1, and make test).

    The environment variable IBNN_PROFILE, when set, overrides the notebook parameter (make test sets it)."""
    env = os.environ.get("IBNN_PROFILE")
    profile = check_choice("IBNN_PROFILE", env, PROFILES) if env else check_choice("profile", profile, PROFILES)
    io.set_profile(profile)
    return profile


def parameters(ns: dict) -> dict:
    """The papermill parameters in a notebook namespace: plain values, not modules, functions, classes or
    IPython's own names (and not private names)."""
    return {k: v for k, v in ns.items()
            if not k.startswith("_") and k not in _IPYTHON
            and not isinstance(v, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))}


def fast_overrides(stem: str, defaults: dict, path: Path | None = None) -> dict:
    """The quick profile's values for notebook `stem` ([stem] table of notebooks/profiles/fast.toml), each
    declared by the notebook and of the type of the default it replaces (an int for an int, a list for a list)."""
    path = PROFILE_DIR / "fast.toml" if path is None else Path(path)
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get(stem, {})
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    for key, value in table.items():
        if key not in defaults:
            raise ValueError(f"{path}: [{stem}] {key} is not a parameter of the notebook; accepted: {sorted(defaults)}")
        if not _same_type(defaults[key], value):
            raise ValueError(f"{path}: [{stem}] {key}={value!r} must be of the default's type "
                             f"{type(defaults[key]).__name__} (default {defaults[key]!r})")
    return table


def _same_type(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return isinstance(value, int) or not isinstance(default, int) or math.isinf(value)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return default is None or type(default) is type(value)


def start(ns: dict, stem: str, **rules) -> str:
    """Validate and set up a notebook (see the module docstring); returns the run profile.

    Args:
        ns: the notebook's `globals()`; its parameters are replaced by their validated values.
        stem: the notebook's name (its table in notebooks/profiles/fast.toml).
        rules: one rule (Int, Real, Bool, Str, Choice, List) per parameter other than `profile`.
    """
    running = os.environ.get("IBNN_NOTEBOOK")            # make figures names the notebook file it runs
    if running and running != stem:
        raise ValueError(f"notebook {running}.ipynb calls nb.start with stem {stem!r}: a renamed notebook's stem "
                         f"(nb.start, its table in notebooks/profiles/fast.toml, write_results) follows its file name")
    given = parameters(ns)
    accepted = sorted(set(rules) | {"profile"})
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        hints = [f"{u} -> {m[0]}" for u in unknown for m in [difflib.get_close_matches(u, accepted, 1)] if m]
        raise ValueError(f"unknown parameter(s) {unknown} for notebook {stem}"
                         f"{' (did you mean ' + ', '.join(hints) + '?)' if hints else ''}; accepted: {accepted}")
    missing = sorted(set(rules) - set(given))
    if missing:
        raise ValueError(f"notebook {stem} declares rules for {missing} but its parameters cell does not set them")
    profile = resolve_profile(ns.get("profile", "full"))
    if profile == "fast":
        given.update(fast_overrides(stem, given))
    for name, rule in rules.items():
        ns[name] = rule.check(name, given[name])
    ns["profile"] = profile
    device.check_request()
    manifest.watch()
    setup()
    return profile


def setup() -> None:
    """Figures inline (embedded in the notebook, whatever MPLBACKEND says) and the common plot style (`start` does
    it too)."""
    shell = kernel_shell()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
    use_style()
