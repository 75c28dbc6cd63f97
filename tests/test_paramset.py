"""The parameter-set loader: schema checks, derived values, variants."""
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
    ('[x]\nvalue = 1\nunit = "V"\nkind = "guessed"\nsource = "s"\n', "kind='guessed'"),
    ('[x]\nvalue = 1\nunit = "V"\nkind = "assumed"\n', "lacks 'source'"),
    ('[x]\nvalue = 1\nunit = "V"\nkind = "fitted"\nsource = "s"\n', "name the fit"),
    ('[x]\nvalue = 5\nunit = "V"\nkind = "assumed"\nsource = "s"\nlow = 1\nhigh = 2\n', "outside its range"),
    ('[x]\nvalue = -1\nunit = "V"\nkind = "assumed"\nsource = "s"\n', "out of range"),
    ('[x]\nunit = "V"\nkind = "derived"\nsource = "s"\nformula = "y * 2"\n', "unknown parameters"),
    ('[x]\nunit = "V"\nkind = "derived"\nsource = "s"\nformula = "__import__(1)"\n', "unknown function"),
])
def test_schema_errors(tmp_path, entry, msg):
    with pytest.raises(ValueError, match=msg):
        params.load_from([write(tmp_path, "bad", entry)])


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
