"""The table of published in-memory-computing macros: loads, every row cited, numbers sane."""
import csv
from pathlib import Path

import pytest

from ibnn.cost import macros

REFERENCE = Path("/work/shared/reference/uiuc-imc-benchmarking.csv")


def test_table_loads_and_every_row_is_cited():
    rows = macros.load_macros()
    assert len(rows) >= 15
    assert len({r.key for r in rows}) == len(rows)
    for r in rows:
        assert r.authors and r.title and r.venue and 1990 <= r.year <= 2100, r.key
        assert r.numbers_from, r.key
        assert r.tops_per_w_1b > 0 and r.tops_per_mm2_1b > 0
        assert r.citation.startswith(r.authors)


def _write(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text(",".join(macros.COLUMNS) + "\n" + text)
    return p


def test_missing_citation_is_an_error(tmp_path):
    row = "k1,,Some title,ISSCC,2020,,65,SRAM,6T,1,1,1.0,100,1.0,,src\n"
    with pytest.raises(ValueError, match="citation field 'authors' is empty"):
        macros.load_macros(_write(tmp_path, row))


@pytest.mark.parametrize("val", ["-1", "nan", "inf", "abc"])
def test_bad_number_is_an_error(tmp_path, val):
    row = f"k1,A. B,Some title,ISSCC,2020,,65,SRAM,6T,1,1,1.0,{val},1.0,,src\n"
    with pytest.raises(ValueError, match="tops_per_w_1b"):
        macros.load_macros(_write(tmp_path, row))


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference table not present")
def test_figures_match_the_reference_where_present():
    """Each row's normalised figures appear in the benchmarking table for the same first author and year."""
    with open(REFERENCE, encoding="utf-8", errors="replace") as fh:
        ref = list(csv.DictReader(fh))
    for r in macros.load_macros():
        surname = r.authors.split(",")[0].split()[-1].lower()
        cands = [x for x in ref if surname in x["Authors"].lower() and str(r.year) == x["Year"].strip()]
        assert cands, r.key
        assert any(abs(float(x["TOPS/W"] or "nan") - r.tops_per_w_1b) < 1e-6 * r.tops_per_w_1b
                   and abs(float(x["TOPS/mm2"] or "nan") - r.tops_per_mm2_1b) < 1e-6 * r.tops_per_mm2_1b
                   for x in cands), r.key
