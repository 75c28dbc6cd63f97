"""The strict reader of the parameter files (ibnn/params_data/*.toml), below `ibnn.params`.

`read_tables(path)` returns each table of one file, checked, or raises `ParamFileError` (a ValueError) with one
line that names the file, the table, the key, the value as written and what is accepted:
- numbers are TOML numbers in SI units: no booleans (`value = true`), no quoted numbers (`"1.2e-15"`), no units in
  the value (`"1.2 fF"`); `integer = true` entries (counts: array_rows, input_bits) take TOML integers only;
- no unknown keys (the message lists the accepted ones); unit, kind and source are required; a TOML syntax error
  names the file, line and column;
- a value outside its cited `low`-`high` range is refused unless the table says `override = "<your reason>"`:
  the value is then the reader's own (`ibnn.params` reports it, results carry it in their provenance).
"""
from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

KINDS = ("cited", "assumed", "derived", "fitted")
#: Domain checks: name -> (test, interval as printed, text for messages).
DOMAINS = {
    "positive": (lambda v: v > 0, "(0, inf)", "a finite number > 0"),
    "nonneg": (lambda v: v >= 0, "[0, inf)", "a finite number >= 0"),
    "fraction": (lambda v: 0 <= v <= 1, "[0, 1]", "a finite number in [0, 1]"),
    "any": (lambda v: True, "(-inf, inf)", "a finite number"),
}
KEYS = ("value", "unit", "kind", "source", "low", "high", "valid", "formula", "fit", "note", "integer",
        "override")
REPO_ROOT = Path(__file__).resolve().parents[1]

_TEXT = {"unit": 'a string (may be empty, e.g. "1")', "kind": f"one of {list(KINDS)}",
         "source": "a non-empty string: the primary citation, or the reason/derivation",
         "valid": f"one of {list(DOMAINS)}", "formula": "a non-empty string: arithmetic over other parameters",
         "fit": "a non-empty string: the fit that produced the value", "note": "a string",
         "override": "a non-empty string: your reason for a value outside the cited range"}
_NUMBERS = {"value": "a TOML number in SI units, e.g. 1.2e-15 (no quotes, no unit)",
            "low": "a TOML number (the low end of the cited range)",
            "high": "a TOML number (the high end of the cited range)"}
_INTEGER = "a TOML integer, no decimal point or exponent (e.g. 128): this entry is a count (integer = true)"


class ParamFileError(ValueError):
    """A parameter file that cannot be used; one line naming the file, the table, the key, the value and what is
    accepted."""


def in_domain(value: float, valid: str) -> bool:
    """Whether `value` is finite and inside the domain `valid` (a key of DOMAINS)."""
    return math.isfinite(value) and DOMAINS[valid][0](value)


def shown(path) -> str:
    """The file as messages name it: relative to the repository when inside it."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def toml_repr(v) -> str:
    """`v` as it is written in TOML (true, "text", 1.2e-15)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def _number_problem(v) -> str | None:
    """Why `v` (a TOML value) is not a number, or None."""
    if isinstance(v, bool):
        return "a boolean is not a number"
    if isinstance(v, str):
        try:
            float(v)
            return "a number in quotes is a string: write it without the quotes"
        except ValueError:
            if re.match(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*\S", v):
                return "write the number alone (SI units) and its unit in `unit`"
            return "not a number"
    if not isinstance(v, (int, float)):
        return f"a TOML {type(v).__name__} is not a number"
    return None if math.isfinite(v) else "not a finite number"


def _check_keys(where: str, d: dict) -> None:
    """Every key known and of its type; ParamFileError naming the key, the value and what is accepted."""
    for k, v in d.items():
        if k not in KEYS:
            raise ParamFileError(f"{where} {k} = {toml_repr(v)}: unknown key; accepted keys: {', '.join(KEYS)}")
        if k in _NUMBERS:
            problem = _number_problem(v)
            if problem:
                accepted = _INTEGER if k == "value" and d.get("integer") is True else _NUMBERS[k]
                raise ParamFileError(f"{where} {k} = {toml_repr(v)}: {problem}; accepted: {accepted}")
        elif k == "integer":
            if not isinstance(v, bool):
                raise ParamFileError(f"{where} integer = {toml_repr(v)}: not a boolean; accepted: true or false")
        elif (not isinstance(v, str) or (not v.strip() and k not in ("unit", "note"))
              or (k == "kind" and v not in KINDS) or (k == "valid" and v not in DOMAINS)):
            raise ParamFileError(f"{where} {k} = {toml_repr(v)}: not accepted; accepted: {_TEXT[k]}")
    for k in ("unit", "kind", "source"):
        if k not in d:
            raise ParamFileError(f"{where} lacks '{k}'; accepted: {_TEXT[k]}")


def _check_value(where: str, name: str, d: dict) -> float:
    """The value of one non-derived table, checked against `integer`, its domain and its cited range."""
    if "value" not in d:
        raise ParamFileError(f"{where} lacks 'value'; accepted: {_NUMBERS['value']}")
    value, valid = d["value"], d.get("valid", "positive")
    if d.get("integer") and not isinstance(value, int):
        raise ParamFileError(f"{where} value = {toml_repr(value)}: not an integer; accepted: {_INTEGER}")
    if not in_domain(float(value), valid):
        raise ParamFileError(f"{where} value = {toml_repr(value)}: out of its domain; accepted: "
                             f"{DOMAINS[valid][2]} (valid = \"{valid}\")")
    low, high = d.get("low"), d.get("high")
    if (low is None) != (high is None):
        raise ParamFileError(f"{where} gives only one of low/high; accepted: both (the cited range) or neither")
    if low is not None and low > high:
        raise ParamFileError(f"{where} low = {toml_repr(low)}, high = {toml_repr(high)}: low above high; "
                             f"accepted: low <= high")
    if low is not None and not low <= value <= high and not d.get("override"):
        raise ParamFileError(
            f"{where} value = {toml_repr(value)}: outside its cited range [{toml_repr(low)}, {toml_repr(high)}]; "
            f"accepted: a value in that range, or add override = \"<your reason>\" to [{name}] to use your own "
            f"value (it is then reported as yours, not the cited one)")
    return float(value)


def read_tables(path) -> dict[str, dict]:
    """The tables of one parameter file, checked strictly: {name: table}, with "value" a float (NaN for a derived
    entry, whose formula `ibnn.params` evaluates). ParamFileError (one line) on the first problem."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ParamFileError(f"{shown(path)}: TOML syntax error: {exc}; fix the file (TOML: https://toml.io)") from None
    out = {}
    for name, d in raw.items():
        where = f"{shown(path)}: [{name}]"
        if not isinstance(d, dict):
            raise ParamFileError(f"{shown(path)}: {name} = {toml_repr(d)}: not accepted at the top level; accepted: "
                                 f"one table per parameter, [{name}] followed by value, unit, kind, source")
        _check_keys(where, d)
        if d["kind"] == "derived":
            if "formula" not in d or "value" in d:
                raise ParamFileError(f"{where} is derived: give 'formula' and no 'value'")
            value = math.nan
        elif "formula" in d:
            raise ParamFileError(f"{where} formula = {toml_repr(d['formula'])}: only kind = \"derived\" entries "
                                 f"take a formula; accepted: value = <number>")
        else:
            value = _check_value(where, name, d)
        if d["kind"] == "fitted" and not d.get("fit"):
            raise ParamFileError(f"{where} is fitted: name the fit that produced it in 'fit'")
        out[name] = {**d, "value": value}
    return out


def locate(message: str, files: dict[str, str]) -> str:
    """A message of `ibnn.params` about parameter <name> ("parameter x: ..."), prefixed with its file and table."""
    m = re.match(r"parameter (\w+)\W", message)
    if not m or m.group(1) not in files:
        return message
    return f"{files[m.group(1)]}: [{m.group(1)}] {message}"
