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

Variants (corners, sweeps) are made with `ParamSet.replace(name=value, ...)`, which re-derives every derived value;
nothing is copied.
"""
from __future__ import annotations

import ast
import math
import tomllib
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

DATA_DIR = Path(__file__).resolve().parent / "params_data"
KINDS = ("cited", "assumed", "derived", "fitted")
DOMAINS = ("positive", "nonneg", "fraction", "any")


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

    def as_dict(self) -> dict:
        """The fields that are set, as a dict."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _check_domain(name: str, value: float, domain: str) -> None:
    ok = math.isfinite(value)
    if domain == "positive":
        ok &= value > 0
        rng = "(0, inf)"
    elif domain == "nonneg":
        ok &= value >= 0
        rng = "[0, inf)"
    elif domain == "fraction":
        ok &= 0 <= value <= 1
        rng = "[0, 1]"
    else:
        rng = "(-inf, inf)"
    if not ok:
        raise ValueError(f"parameter {name}={value!r} is out of range; accepted: finite number in {rng}")


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
    """An immutable set of parameters. `ps["vdd"]` gives the value; `ps.entry("vdd")` the whole record."""

    entries: Mapping[str, Param] = field(repr=False)

    # --- access -------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> float:
        return self.entry(name).value

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __getattr__(self, name: str) -> float:
        # attribute access for readability in models: P.vdd
        entries = object.__getattribute__(self, "entries")
        if name in entries:
            return entries[name].value
        raise AttributeError(name)

    def entry(self, name: str) -> Param:
        """The whole record of `name` (a KeyError lists the known names)."""
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
        return [n for n, p in self.entries.items() if section is None or p.section == section]

    def values(self) -> dict[str, float]:
        """{name: value} of every entry."""
        return {n: p.value for n, p in self.entries.items()}

    def table(self, section: str | None = None) -> list[dict]:
        """The entries (of one section) as dicts, for tables in the notebooks."""
        return [self.entries[n].as_dict() for n in self.names(section)]

    def ranged(self, section: str | None = None) -> list[str]:
        """Names of non-derived parameters that carry a cited low/high range (for tornado analyses)."""
        return [n for n in self.names(section)
                if self.entries[n].kind != "derived" and self.entries[n].low is not None]

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
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    section = path.stem
    out = {}
    for name, d in raw.items():
        where = f"{path.name}: [{name}]"
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be a table")
        unknown = set(d) - {"value", "unit", "kind", "source", "low", "high", "valid", "formula", "fit", "note"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
        for key in ("unit", "kind", "source"):
            if not d.get(key) and not (key == "unit" and key in d):
                raise ValueError(f"{where} lacks '{key}'")
        kind = d["kind"]
        if kind not in KINDS:
            raise ValueError(f"{where} kind={kind!r}; choose one of {list(KINDS)}")
        valid = d.get("valid", "positive")
        if valid not in DOMAINS:
            raise ValueError(f"{where} valid={valid!r}; choose one of {list(DOMAINS)}")
        if kind == "derived":
            if "formula" not in d or "value" in d:
                raise ValueError(f"{where} is derived: give 'formula' and no 'value'")
            value = float("nan")
        else:
            if "value" not in d:
                raise ValueError(f"{where} lacks 'value'")
            value = float(d["value"])
            _check_domain(name, value, valid)
        if kind == "fitted" and not d.get("fit"):
            raise ValueError(f"{where} is fitted: name the fit that produced it in 'fit'")
        low, high = d.get("low"), d.get("high")
        if (low is None) != (high is None):
            raise ValueError(f"{where} gives only one of low/high")
        if low is not None and not (float(low) <= value <= float(high)) and kind != "derived":
            raise ValueError(f"{where} value {value} lies outside its range [{low}, {high}]")
        out[name] = Param(name=name, value=value, unit=d["unit"], kind=kind, source=d["source"],
                          section=section, low=None if low is None else float(low),
                          high=None if high is None else float(high), valid=valid,
                          formula=d.get("formula"), fit=d.get("fit"), note=d.get("note"))
    return out


def load_from(paths: Iterable[Path]) -> ParamSet:
    """The parameter set of the given TOML files (each file a section); a name defined twice is a ValueError."""
    entries: dict[str, Param] = {}
    for path in sorted(paths):
        for name, p in _parse_file(path).items():
            if name in entries:
                raise ValueError(f"parameter {name} defined twice ({entries[name].section}, {p.section})")
            entries[name] = p
    return ParamSet(_derive(entries))


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
