"""The parameter-set loader: strict schema checks (one line naming file, table, key, value and what is accepted),
derived values, variants, overrides of a cited range, and the record of which entries a run read."""
import math

import pytest

from ibnn import params


def write(tmp_path, name, text):
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


BASE = """
[c_cell]
value = 1.2e-15
unit = "F"
kind = "assumed"
source = "typical 130-nm bit-line capacitance per cell"
low = 1.0e-15
high = 1.5e-15

[rows]
value = 128
unit = "1"
kind = "cited"
source = "JSSC 2017"

[c_bl]
unit = "F"
kind = "derived"
source = "per-cell capacitance times rows"
formula = "c_cell * rows"
"""


def test_derived_values_and_replace(tmp_path):
    ps = params.load_from([write(tmp_path, "circuit", BASE)])
    assert math.isclose(ps["c_bl"], 1.2e-15 * 128)
    assert ps.entry("c_bl").kind == "derived"
    ps2 = ps.replace(c_cell=1.5e-15)
    assert math.isclose(ps2.c_bl, 1.5e-15 * 128)           # re-derived, not copied
    assert math.isclose(ps.c_bl, 1.2e-15 * 128)            # original untouched
    assert ps.ranged() == ["c_cell"]


def test_replace_rejects_bad_values(tmp_path):
    ps = params.load_from([write(tmp_path, "circuit", BASE)])
    with pytest.raises(ValueError, match=r"c_cell=-1.0 is out of range.*\(0, inf\)"):
        ps.replace(c_cell=-1.0)
    with pytest.raises(ValueError, match=r"c_cell=nan"):
        ps.replace(c_cell=float("nan"))
    with pytest.raises(ValueError, match="derived"):
        ps.replace(c_bl=1e-13)
    with pytest.raises(KeyError, match="unknown parameter 'nope'"):
        ps.replace(nope=1.0)


@pytest.mark.parametrize("entry, msg", [
    ('[x]\nvalue = 1\nunit = "V"\nkind = "guessed"\nsource = "s"\n', 'kind = "guessed"'),
    ('[x]\nvalue = 1\nunit = "V"\nkind = "assumed"\n', "lacks 'source'"),
    ('[x]\nvalue = 1\nunit = "V"\nkind = "fitted"\nsource = "s"\n', "name the fit"),
    ('[x]\nvalue = 5\nunit = "V"\nkind = "assumed"\nsource = "s"\nlow = 1\nhigh = 2\n', "outside its cited range"),
    ('[x]\nvalue = -1\nunit = "V"\nkind = "assumed"\nsource = "s"\n', "out of its domain"),
    ('[x]\nunit = "V"\nkind = "derived"\nsource = "s"\nformula = "y * 2"\n', "unknown parameters"),
    ('[x]\nunit = "V"\nkind = "derived"\nsource = "s"\nformula = "__import__(1)"\n', "unknown function"),
])
def test_schema_errors(tmp_path, entry, msg):
    with pytest.raises(ValueError, match=msg):
        params.load_from([write(tmp_path, "bad", entry)])


ENTRY = '[rows]\nvalue = {v}\nunit = "1"\nkind = "cited"\nsource = "JSSC 2017"\n{extra}'


@pytest.mark.parametrize("value, extra, problem, accepted", [
    ("true", "", "a boolean is not a number", "a TOML number"),
    ('"1.2e-15"', "", "a number in quotes is a string", "no quotes"),
    ('"1.2 fF"', "", "write the number alone", "no unit"),
    ('"abc"', "", "not a number", "a TOML number"),
    ("128.0", "integer = true\n", "not an integer", "a TOML integer"),
    ("128.5", "integer = true\n", "not an integer", "a TOML integer"),
    ("true", "integer = true\n", "a boolean is not a number", "a TOML integer"),
    ("5", "low = 1\nhigh = 2\n", "outside its cited range", 'override = "<your reason>"'),
    ("1", 'low = "1"\nhigh = 2\n', "a number in quotes", "low end of the cited range"),
])
def test_strict_values_name_file_table_key_value_and_what_is_accepted(tmp_path, value, extra, problem, accepted):
    """Every message: the file, the table, the key, the value as written and what is accepted, on one line."""
    path = write(tmp_path, "circuit", ENTRY.format(v=value, extra=extra))
    with pytest.raises(params.ParamFileError) as info:
        params.load_from([path])
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: [rows] ") and problem in msg and accepted in msg, msg
    if "low = " not in extra or "override" in accepted:
        assert f"value = {value}" in msg, msg


def test_integer_entry_accepts_an_integer_and_replace_keeps_it_integral(tmp_path):
    ps = params.load_from([write(tmp_path, "circuit", ENTRY.format(v=128, extra="integer = true\n"))])
    assert ps["rows"] == 128 and ps.entry("rows").integer
    assert ps.replace(rows=64)["rows"] == 64
    with pytest.raises(ValueError, match="must be a whole number"):
        ps.replace(rows=64.5)


def test_unknown_key_lists_the_accepted_ones(tmp_path):
    path = write(tmp_path, "circuit", ENTRY.format(v=128, extra="vaule = 3\n"))
    with pytest.raises(params.ParamFileError, match=r"\[rows\] vaule = 3: unknown key; accepted keys: value, "
                                                    r"unit, kind, source, low, high"):
        params.load_from([path])


def test_toml_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path, "energy", '[x]\nvalue = 1.2 fF\nunit = "F"\n')
    with pytest.raises(params.ParamFileError, match=rf"^{path}: TOML syntax error: .*line 2"):
        params.load_from([path])


def test_a_bad_formula_names_its_file_and_table(tmp_path):
    path = write(tmp_path, "circuit", BASE.replace('formula = "c_cell * rows"', 'formula = "c_cel * rows"'))
    with pytest.raises(params.ParamFileError, match=rf"^{path}: \[c_bl\] parameter c_bl: formula .* unknown "):
        params.load_from([path])


def test_override_allows_a_value_outside_the_cited_range_and_is_reported(tmp_path):
    path = write(tmp_path, "circuit", ENTRY.format(v=5, extra='low = 1\nhigh = 2\noverride = "my corner"\n'))
    ps = params.load_from([path])
    assert ps["rows"] == 5 and ps.overrides() == {"rows": "my corner"}
    with pytest.raises(params.ParamFileError, match="override = 3: not accepted; accepted: a non-empty string"):
        params.load_from([write(tmp_path, "circuit", ENTRY.format(v=5, extra="low = 1\nhigh = 2\noverride = 3\n"))])


def test_reads_are_recorded_per_entry_and_keys_are_not_reads(tmp_path):
    ps = params.load_from([write(tmp_path, "circuit", BASE)])
    params.reset_used()
    ps["c_bl"]
    ps.names("circuit")
    ps.key()
    assert params.used() == ["@section:circuit", "c_bl"]
    before = ps.digest("c_bl")
    assert ps.replace(c_cell=1.4e-15).digest("c_bl") != before      # a derived entry's digest follows its inputs
    assert ps.digest("nope") == "absent"


def test_shipped_parameter_files_pass_the_strict_check():
    ps = params.load_from(params.DATA_DIR.glob("*.toml"))
    for name in ("array_rows", "array_cols", "input_bits"):
        assert ps.entry(name).integer, name


def test_duplicate_across_sections(tmp_path):
    a = write(tmp_path, "a", '[x]\nvalue = 1\nunit = "V"\nkind = "assumed"\nsource = "s"\n')
    b = write(tmp_path, "b", '[x]\nvalue = 2\nunit = "V"\nkind = "assumed"\nsource = "s"\n')
    with pytest.raises(ValueError, match="defined twice"):
        params.load_from([a, b])


def test_shipped_parameter_set_is_complete():
    """Every shipped entry has a source and a known kind; every fitted one names its fit."""
    ps = params.load()
    for name in ps.names():
        e = ps.entry(name)
        assert e.source.strip(), name
        assert e.kind in params.KINDS, name
        assert math.isfinite(e.value), name
        if e.kind == "fitted":
            assert e.fit, name


def test_cached_per_set_memoises_per_values_and_records_only_what_the_computation_reads():
    from ibnn import params

    calls = []

    @params.cached_per_set(2)
    def f(P, x):
        calls.append(x)
        return P["vdd"] * x

    P = params.load()
    params.reset_used()
    assert f(P, 2.0) == f(P, 2.0) == 2 * P["vdd"] and calls == [2.0]          # computed once
    assert params.used() == ["vdd"]                                         # the key is not a read
    assert f(P.replace(vdd=1.0), 2.0) == 2.0 and calls == [2.0, 2.0]        # other values, computed again
    for x in (3.0, 4.0, 5.0):                                               # the least recently used go
        f(P, x)
    f(P, 2.0)
    assert calls[-1] == 2.0 and len(calls) == 6
    with pytest.raises(ValueError, match="ParamSet"):
        f({"vdd": 1.0}, 2.0)


def test_a_cached_result_serves_every_set_that_agrees_on_what_its_computation_read():
    """The key is the values of the entries read while computing, inner cached functions' reads included: a set
    that differs only in an entry never read shares the result; one that differs in an entry the inner function
    read (even where the inner result came from its own cache) does not; a hit records the reads for the pipeline."""
    from ibnn import params

    calls = []

    @params.cached_per_set(4)
    def inner(P):
        calls.append("inner")
        return P["vdd"] + (P["vt0_n"] if "no_such_entry" not in P else 0.0)

    @params.cached_per_set(4)
    def outer(P):
        calls.append("outer")
        return 2 * inner(P) + len(P.names("circuit"))

    P = params.load()
    first = outer(P)
    assert calls == ["outer", "inner"]
    energy_only = P.replace(e_comparator=2 * P["e_comparator"])            # neither function reads it
    params.reset_used()
    assert outer(energy_only) == first and calls == ["outer", "inner"]      # shared, no computation
    assert params.used() == sorted(["vdd", "vt0_n", "no_such_entry", "@section:circuit"])   # the reads, recorded
    assert inner(P.replace(vt0_n=0.3)) != inner(P) and calls[-1] == "inner"
    inner(P.replace(vdd=1.1))                                               # inner cached for vdd = 1.1 ...
    n = len(calls)
    assert outer(P.replace(vdd=1.1)) != first and calls[n:] == ["outer"]    # ... outer still recomputes
