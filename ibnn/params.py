"""The one parameter set: every physical constant of the companion, with value, unit, source and kind.

The values live in TOML files under ibnn/params_data/ (one file per section: circuit.toml for the array and its
periphery, energy.toml for energy, area and the digital baseline); this module is the only reader. Each entry::

    [name]
    value  = 1.2              # SI units unless `unit` says otherwise (e.g. "fF" is stored as given, see `si`)
    unit   = "V"
    kind   = "cited"          # cited | assumed | derived | fitted
    source = "where the value comes from: a citation, or the derivation"
    low    = 1.08             # optional: the cited range, used by sensitivity (tornado) analyses
    high   = 1.32
    valid  = "positive"       # optional domain check: positive | nonneg | fraction | any (default positive)
    formula = "a * b"         # kind = "derived" only: arithmetic over other parameters (+ - * / ** sqrt exp log)
    fit    = "notebook or function that performs the fit"   # kind = "fitted" only
    integer = true            # optional: the value must be a TOML integer (counts: array_rows, input_bits)
    override = "why"          # optional: the reader's own value outside [low, high] (reported as the reader's)

The files are read strictly (`ibnn.paramfile`: a `ParamFileError` names the file, the table, the key, the value
and what is accepted). Reads are recorded (`used()`): `make figures` keys each notebook on the entries it read, so
changing one circuit constant reruns only the notebooks that read it.

Variants (corners, sweeps) are made with `ParamSet.replace(name=value, ...)`, which re-derives every derived value;
nothing is copied.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from functools import lru_cache, wraps
from pathlib import Path
from typing import Iterable, Mapping

from . import paramfile
from .paramfile import KINDS, ParamFileError

DATA_DIR = Path(__file__).resolve().parent / "params_data"
DOMAINS = tuple(paramfile.DOMAINS)
__all__ = ["DATA_DIR", "DOMAINS", "KINDS", "Param", "ParamFileError", "ParamSet", "load", "load_from", "require",
           "used", "reset_used", "used_overrides"]


@dataclass(frozen=True)
class Param:
    """One entry of the parameter set: value (SI units unless `unit` says otherwise), unit, kind, source, section
    (the file), optional cited low/high range, domain, formula (derived) or fit (fitted)."""
    name: str
    value: float
    unit: str
    kind: str
    source: str
    section: str
    low: float | None = None
    high: float | None = None
    valid: str = "positive"
    formula: str | None = None
    fit: str | None = None
    note: str | None = None
    integer: bool | None = None         # True for counts (the file must give a TOML integer)
    override: str | None = None         # the reader's reason for a value outside [low, high]

    def as_dict(self) -> dict:
        """The fields that are set, as a dict."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def digest(self) -> str:
        """sha256 of the whole record (value, unit, kind, source, range, ...): what `make figures` keys on."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


# Which entries this process read: the recorded dependencies of a notebook (ibnn.repro.manifest).
_USED: set[str] = set()
# The read sets of the `cached_per_set` computations now running (any thread: a read adds to all of them, so a
# set can only hold more names than its computation needed, never fewer).
_RECORDING: list[set[str]] = []


def _read(name: str) -> None:
    _USED.add(name)
    for names in list(_RECORDING):
        names.add(name)


def used() -> list[str]:
    """Entries read so far in this process ("@section:<name>" / "@all": the list of names was read)."""
    return sorted(_USED)


def reset_used() -> None:
    """Forget the entries read so far."""
    _USED.clear()


def used_overrides() -> dict:
    """{name: {value, low, high, reason}} of every entry read so far that the reader set outside its cited range
    (`override` in the file)."""
    try:
        entries = load().entries
    except ValueError:
        return {}
    return {n: {"value": p.value, "low": p.low, "high": p.high, "reason": p.override}
            for n, p in sorted(entries.items()) if n in _USED and p.override}


def _check_domain(name: str, value: float, domain: str) -> None:
    if not paramfile.in_domain(value, domain):
        raise ValueError(f"parameter {name}={value!r} is out of range; accepted: finite number in "
                         f"{paramfile.DOMAINS[domain][1]}")


_FUNCS = {"sqrt": math.sqrt, "exp": math.exp, "log": math.log, "min": min, "max": max}
_OPS = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub,
        ast.UAdd, ast.Constant, ast.Name, ast.Load, ast.Call)


def formula_names(formula: str) -> set[str]:
    """The parameter names a formula refers to."""
    tree = ast.parse(formula, mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in _FUNCS}


@lru_cache(maxsize=None)
def _compiled(name: str, formula: str):
    """(code object, names it refers to) of a formula, checked once: the formulas of the parameter files are few
    and fixed, while every `ParamSet.replace` re-derives every derived value (sweeps call it once per point).
    A formula that fails its checks is not cached (the ValueError is raised again on every call)."""
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"parameter {name}: formula {formula!r} is not an expression ({exc.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ValueError(f"parameter {name}: formula {formula!r} calls an unknown function")
        if not isinstance(node, _OPS):
            raise ValueError(f"parameter {name}: formula {formula!r} uses {type(node).__name__}, not allowed")
    return compile(tree, "<formula>", "eval"), frozenset(formula_names(formula))


def _check_formula(name: str, formula: str, known):
    code, names = _compiled(name, formula)
    missing = names - set(known)
    if missing:
        raise ValueError(f"parameter {name}: formula {formula!r} names unknown parameters {sorted(missing)}")
    return code


def _eval_formula(name: str, formula: str, env: Mapping[str, float]) -> float:
    code = _check_formula(name, formula, env)
    return float(eval(code, {"__builtins__": {}, **_FUNCS}, dict(env)))


@dataclass(frozen=True)
class ParamSet:
    """An immutable set of parameters. `ps["vdd"]` gives the value; `ps.entry("vdd")` the whole record.

    Every read is recorded (`used()`); `key()` and `digest()` are not reads."""

    entries: Mapping[str, Param] = field(repr=False)

    # --- access -------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> float:
        return self.entry(name).value

    def __contains__(self, name: str) -> bool:
        _read(name)
        return name in self.entries

    def __getattr__(self, name: str) -> float:
        # attribute access for readability in models: P.vdd
        entries = object.__getattribute__(self, "entries")
        if name in entries:
            _read(name)
            return entries[name].value
        raise AttributeError(name)

    def entry(self, name: str) -> Param:
        """The whole record of `name` (a KeyError lists the known names)."""
        _read(name)
        try:
            return self.entries[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r}; known: {sorted(self.entries)}") from None

    def int(self, name: str) -> int:
        """The value of `name` as an int (array sizes, bit widths); a ValueError if it is not a whole number."""
        v = self[name]
        if not float(v).is_integer():
            raise ValueError(f"parameter {name}={v!r} must be a whole number (an integer count)")
        return int(v)

    def names(self, section: str | None = None) -> list[str]:
        """Names of every entry, or of one section (file)."""
        _read("@all" if section is None else f"@section:{section}")
        return [n for n, p in self.entries.items() if section is None or p.section == section]

    def values(self) -> dict[str, float]:
        """{name: value} of every entry (a read of every entry)."""
        return {n: self.entry(n).value for n in self.names()}

    def table(self, section: str | None = None) -> list[dict]:
        """The entries (of one section) as dicts, for tables in the notebooks."""
        return [self.entry(n).as_dict() for n in self.names(section)]

    def ranged(self, section: str | None = None) -> list[str]:
        """Names of non-derived parameters that carry a cited low/high range (for tornado analyses)."""
        return [n for n in self.names(section) if self.entry(n).kind != "derived" and self.entries[n].low is not None]

    def key(self) -> tuple:
        """A hashable identity of every value, for caches; not a read (a cache keyed on the whole set does not
        depend on every entry)."""
        return tuple(sorted((n, p.value) for n, p in self.entries.items()))

    def overrides(self) -> dict[str, str]:
        """{name: reason} of the entries the reader set outside their cited range (`override`)."""
        return {n: p.override for n, p in self.entries.items() if p.override}

    def digest(self, dep: str) -> str:
        """sha256 of one recorded dependency: an entry's record, or the list of names ("@section:x", "@all");
        "absent" for an entry that does not exist. Not a read."""
        if dep.startswith("@"):
            section = None if dep == "@all" else dep.split(":", 1)[1]
            names = [n for n, p in self.entries.items() if section is None or p.section == section]
            return hashlib.sha256(json.dumps(names).encode()).hexdigest()
        return self.entries[dep].digest() if dep in self.entries else "absent"

    # --- variants -----------------------------------------------------------------------------------------
    def replace(self, **values: float) -> "ParamSet":
        """A new set with the given (non-derived) values replaced and every derived value recomputed."""
        new = dict(self.entries)
        for name, value in values.items():
            p = self.entry(name)
            if p.kind == "derived":
                raise ValueError(f"parameter {name} is derived ({p.formula}); replace its inputs instead")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"parameter {name}={value!r} must be a number")
            if p.integer and not float(value).is_integer():
                raise ValueError(f"parameter {name}={value!r} must be a whole number (an integer count)")
            _check_domain(name, float(value), p.valid)
            new[name] = dc_replace(p, value=float(value))
        return ParamSet(_derive(new))


def _derive(entries: dict[str, Param]) -> dict[str, Param]:
    """Evaluate derived entries in dependency order."""
    out = dict(entries)
    pending = {n: p for n, p in out.items() if p.kind == "derived"}
    for n, p in pending.items():
        _check_formula(n, p.formula, out)
    env = {n: p.value for n, p in out.items() if p.kind != "derived"}
    while pending:
        known = set(env)
        ready = [n for n, p in pending.items() if _compiled(n, p.formula)[1] <= known]
        if not ready:
            raise ValueError(f"derived parameters with unresolved or circular formulas: {sorted(pending)}")
        for n in ready:
            p = pending.pop(n)
            v = _eval_formula(n, p.formula, env)
            _check_domain(n, v, p.valid)
            out[n] = dc_replace(p, value=v)
            env[n] = v
    return out


def _parse_file(path: Path) -> dict[str, Param]:
    """The entries of one file (its stem is their section), read strictly by `paramfile.read_tables`."""
    fields = ("low", "high", "formula", "fit", "note", "override")
    return {name: Param(name=name, value=d["value"], unit=d["unit"], kind=d["kind"], source=d["source"],
                        section=Path(path).stem, valid=d.get("valid", "positive"),
                        integer=True if d.get("integer") else None,
                        **{k: (float(d[k]) if k in ("low", "high") else d[k]) for k in fields if k in d})
            for name, d in paramfile.read_tables(path).items()}


def load_from(paths: Iterable[Path]) -> ParamSet:
    """The parameter set of the given TOML files (each file a section), checked strictly: a ParamFileError (one
    line naming the file, the table, the key and what is accepted) on the first problem."""
    entries: dict[str, Param] = {}
    files: dict[str, str] = {}
    for path in sorted(paths):
        for name, p in _parse_file(path).items():
            if name in entries:
                raise ParamFileError(f"{paramfile.shown(path)}: [{name}] is defined twice ({files[name]} and "
                                     f"{paramfile.shown(path)}); accepted: one table per parameter name")
            entries[name], files[name] = p, paramfile.shown(path)
    if not entries:
        raise ParamFileError(f"no parameter files (*.toml) given ({paramfile.shown(DATA_DIR)} holds them)")
    try:
        return ParamSet(_derive(entries))
    except ValueError as exc:                     # a formula: name its file and table
        raise ParamFileError(paramfile.locate(str(exc), files)) from None


@lru_cache(maxsize=1)
def load() -> ParamSet:
    """The default parameter set of the 130-nm prototype."""
    return load_from(DATA_DIR.glob("*.toml"))


def require(P) -> ParamSet:
    """P itself if it is a ParamSet, else a ValueError: library code is always handed the caller's parameter set
    (made once by the notebook with `load()`), never a default looked up behind the caller's back."""
    if not isinstance(P, ParamSet):
        raise ValueError(f"P={P!r} must be an ibnn.params.ParamSet (make one with ibnn.params.load())")
    return P


def cached_per_set(maxsize: int):
    """Decorator: memoise `fn(P, *args)` within the process on the entries its computation read. Each result is
    kept with the values of every entry read while it was computed (by `fn` and everything it called, cached
    functions included: `_values_read`) and returned for any P that agrees on those values, so sets that differ
    only in entries `fn` never reads (an energy constant, an area) share one computation. Sound for functions
    whose result depends on P only through its reads (P[name], P.name, `in`, P.entry, P.names), as every cached
    function here does. At most `maxsize` results are kept (the least recently used go). A hit records the same
    reads a computation would (`used()`, and the computations now running), so the pipeline's dependencies and an
    enclosing cached function's key are what they would be without the cache."""
    def decorate(fn):
        kept: list = []           # (args, names read, their values, result), least recently used first

        lock = threading.Lock()

        @wraps(fn)
        def memo(P, *args):
            require(P)
            with lock:
                hit = next((i for i, (a, names, values, _) in enumerate(kept)
                            if a == args and _values_read(P, names) == values), None)
                if hit is not None:
                    kept.append(kept.pop(hit))
                    _, names, _, result = kept[-1]
            if hit is not None:
                for name in names:
                    _read(name)
                return result
            names = set()
            _RECORDING.append(names)
            try:
                result = fn(P, *args)
            finally:
                del _RECORDING[next(i for i, r in enumerate(_RECORDING) if r is names)]
            names = tuple(sorted(names))
            with lock:
                kept.append((args, names, _values_read(P, names), result))
                del kept[:-maxsize]
            return result
        memo.cache_clear = kept.clear
        return memo
    return decorate


def _values_read(P: ParamSet, names: tuple) -> tuple:
    """What a computation that read `names` saw of P (not a read): each entry's value (None where absent), the
    list of names of a section for "@section:x" ("@all": every name)."""
    out = []
    for n in names:
        if n.startswith("@"):
            section = None if n == "@all" else n.split(":", 1)[1]
            out.append(tuple(m for m, p in P.entries.items() if section is None or p.section == section))
        else:
            p = P.entries.get(n)
            out.append(None if p is None else p.value)
    return tuple(out)
