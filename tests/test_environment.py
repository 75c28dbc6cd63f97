"""The set-up files agree: environment.yml mirrors requirements.txt, torch is the pinned CPU wheel."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    return sorted(l.strip() for l in lines if "==" in l and not l.strip().startswith("#"))


def test_environment_yml_mirrors_requirements():
    req = pins((ROOT / "requirements.txt").read_text().splitlines())
    env = [l.strip()[2:] for l in (ROOT / "environment.yml").read_text().splitlines()
           if l.strip().startswith("- ") and "==" in l]
    assert req == sorted(env)


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, line
    assert "torch==2.13.0" in pins((ROOT / "requirements.txt").read_text().splitlines())
