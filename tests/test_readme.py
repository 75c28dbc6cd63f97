"""README shows the claims tables of the committed results/claims.json (the paper's claims, then the findings
beyond the paper), and opens with the two commands."""
import json

from ibnn.repro import claims, io


def test_readme_table_matches_claims_json():
    rows = json.loads((io.REPO_ROOT / "results" / "claims.json").read_text())
    assert [r["id"] for r in rows][:5] == list(claims.CLAIM_IDS)
    readme = (io.REPO_ROOT / "README.md").read_text()
    block = readme.split(claims.README_START)[1].split(claims.README_END)[0].strip()
    assert block == claims.markdown_table(rows)
    sections = list(dict.fromkeys(r["section"] for r in rows))
    assert sections[:2] == [claims.PAPER_SECTION, claims.BEYOND_SECTION]


def test_readme_opens_with_the_two_commands():
    lines = [l for l in (io.REPO_ROOT / "README.md").read_text().splitlines() if l.startswith("make ")]
    assert lines[0].startswith("make figures") and lines[1].startswith("make test")
