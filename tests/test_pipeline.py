"""`make figures` machinery (ibnn.repro.pipeline) on tiny notebooks run against a copy of the package: incremental
reruns keyed on recorded dependencies, the record refused when edited, figures embedded, quick and hand runs kept
out of the record, interruption at random points (SIGINT and SIGKILL) leaving no half-written output, bad input
failing before any work in one line. The real notebooks run under nbval in `make test`."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from ibnn.repro import io

KERNEL = {"name": "ibnn", "display_name": "Python (ibnn)", "language": "python"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = "from ibnn.repro import nb\nprofile = nb.start(globals(), {stem!r}{rules})\n"

SRC_A = [                                  # pause: seconds per step, a window for the interrupt test
    ('profile = "full"\nn = 200\npause = 0.0', ["parameters"]),
    (START.format(stem="01_a", rules=", n=nb.Int(1, 10_000), pause=nb.Real(0, 5)") +
     "import time\nimport numpy as np\nimport matplotlib.pyplot as plt\nfrom ibnn import published\n"
     "from ibnn.repro import io, provenance, style",
     []),
    ("rng = np.random.default_rng(0)\nx = rng.normal(size=n)\ntime.sleep(pause)", []),
    ("fig, ax = plt.subplots()\nax.hist(x, bins=20)\nax.set_xlabel('x (1)')\nax.set_ylabel('count')\n"
     "style.savefig(fig, '01_hist')\ntime.sleep(pause)", []),
    ("io.atomic_write_bytes(io.checkpoints_dir() / 'w.pt', bytes(range(256)) * 8)\n"
     "provenance.write_results('01_a', {'mean': float(x.mean()), 'n': n})", []),
]
SRC_B = [
    ('profile = "full"\npause = 0.0', ["parameters"]),
    (START.format(stem="02_b", rules=", pause=nb.Real(0, 5)") + "import time\nfrom ibnn.repro import provenance", []),
    ("a = provenance.load_results('01_a')\ntime.sleep(pause)", []),
    ("provenance.write_results('02_b', {'twice': 2 * a['mean']})", []),
]
SRC_C = [                                  # reads one circuit constant and 01_a's result
    ('profile = "full"', ["parameters"]),
    (START.format(stem="03_c", rules="") + "from ibnn import params\nfrom ibnn.repro import provenance\n"
     "P = params.load()", []),
    ("provenance.write_results('03_c', {'offset': P['comp_offset_sigma'], 'n': provenance.load_results('01_a')['n']})",
     []),
]


def make_nb(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    for i, c in enumerate(nb.cells):
        c.id = f"cell{i}"                   # fixed ids: the sources are byte-stable
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    """A copy of the package (so a test may edit its parameters and modules) with two tiny notebooks; the copy's
    repository root is the output root, as in a full-profile `make figures`."""
    root = tmp_path / "repo"
    shutil.copytree(io.PACKAGE_DIR, root / "ibnn", ignore=shutil.ignore_patterns("__pycache__"))
    nbdir = root / "notebooks"
    shutil.copytree(io.REPO_ROOT / "notebooks" / "profiles", nbdir / "profiles")
    make_nb(nbdir / "01_a.ipynb", SRC_A)
    make_nb(nbdir / "02_b.ipynb", SRC_B)
    env = dict(os.environ, IBNN_OUTPUT_ROOT=str(root), IBNN_NOTEBOOKS_DIR=str(nbdir), PYTHONPATH=str(root),
               IBNN_SCRATCH_DIR=str(tmp_path / "scratch"))
    for k in ("IBNN_PROFILE", "IBNN_DEVICE", "MPLBACKEND", "IBNN_READ_ROOT", "IBNN_MANIFEST"):
        env.pop(k, None)
    return root, env


def pipeline(env, *args, **kw):
    """`python -m ibnn.repro.pipeline` of the package copy (run in its root: -m puts the working directory first)."""
    return subprocess.run([sys.executable, "-m", "ibnn.repro.pipeline", *args], env=env, capture_output=True,
                          text=True, cwd=env["PYTHONPATH"], **kw)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def outputs_intact(root):
    """Every output that exists is complete: JSON parses, PNGs end with IEND, notebooks are valid."""
    for p in (root / "results").glob("*.json"):
        json.loads(p.read_text())
    for p in (root / "figures").glob("*.png"):
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"), p
    for p in (root / "notebooks").glob("*.ipynb"):
        nbformat.validate(nbformat.read(p, as_version=4))


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for d in ("results", "figures", "notebooks", "ibnn")
            for p in sorted((root / d).rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def test_runs_then_is_incremental_byte_identical_with_figures_embedded(project):
    root, env = project
    r = pipeline(env)
    assert r.returncode == 0, r.stderr
    for noise in ("does not end in", "without encryption", "Traceback", "Warning", "KeyboardInterrupt"):
        assert noise not in r.stdout + r.stderr, (noise, r.stdout, r.stderr)
    assert "1/2 01_a: running (full profile): no recorded run" in r.stdout, r.stdout
    a, b = (json.loads((root / "results" / f"{s}.json").read_text()) for s in ("01_a", "02_b"))
    assert b["twice"] == 2 * a["mean"]
    nb = nbformat.read(root / "notebooks" / "01_a.ipynb", as_version=4)
    fig_cell = next(c for c in nb.cells if "savefig" in c.source)       # executed in place, figure embedded
    assert any("image/png" in o.get("data", {}) for o in fig_cell.outputs)
    for p in [*(root / "notebooks").glob("*.ipynb"), *(root / "results").rglob("*.json")]:
        text = p.read_text()
        assert str(root) not in text and "PosixPath('/" not in text, p
        if p.suffix == ".ipynb":
            for volatile in ("papermill", "iopub.", "start_time", "duration", "ibnn-manifest"):
                assert volatile not in text, (p, volatile)
    assert "RecordPath('results/01_a.json')" in (root / "notebooks" / "01_a.ipynb").read_text()
    first = snapshot(root)

    r = pipeline(env)
    assert r.stdout.count(": up to date") == 2 and snapshot(root) == first, r.stdout

    # A missing figure or an executed notebook saved by hand reruns its notebook; 01_a is deterministic and its
    # metadata stable, so everything comes out byte-identical, and 02_b, whose inputs are unchanged, stays up to date.
    (root / "figures" / "01_hist.png").unlink()
    saved = nbformat.read(root / "notebooks" / "01_a.ipynb", as_version=4)
    saved.cells[2].outputs.append(nbformat.v4.new_output("stream", text="run again in JupyterLab\n"))
    nbformat.write(saved, root / "notebooks" / "01_a.ipynb")
    r = pipeline(env)
    assert "01_a: running (full profile): figures/01_hist.png is missing; notebooks/01_a.ipynb was executed or " \
           "edited outside make figures" in r.stdout, r.stdout
    assert "02_b: up to date" in r.stdout, r.stdout
    assert snapshot(root) == first

    # Changing the downstream notebook reruns it alone.
    make_nb(root / "notebooks" / "02_b.ipynb", SRC_B[:-1] + [("provenance.write_results('02_b', {'twice': 3})", [])])
    r = pipeline(env)
    assert "01_a: up to date" in r.stdout and "02_b: running (full profile): its source changed" in r.stdout


def test_a_figure_saved_but_not_shown_fails_and_records_nothing(project):
    root, env = project
    hidden = SRC_A[:3] + [("fig, ax = plt.subplots()\nax.plot(x)\nio.figures_dir().mkdir(parents=True)\n"
                           "fig.savefig(io.figures_dir() / '01_hidden.png')\nplt.close(fig)", [])] + SRC_A[4:]
    make_nb(root / "notebooks" / "01_a.ipynb", hidden)
    r = pipeline(env, "--only", "01_a")
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "\n" not in line and "figures/01_hidden.png without showing it" in line, r.stderr
    assert not (root / "figures").exists() and not (root / "results" / "01_a.json").exists()


def test_hand_edited_result_truncated_checkpoint_and_foreign_figure_are_refused_by_name(project):
    root, env = project
    assert pipeline(env).returncode == 0
    result = root / "results" / "01_a.json"
    original = result.read_bytes()
    edit(result, '"n": 200', '"n": 2')
    r = pipeline(env)
    assert r.returncode == 2 and "running" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibnn: preflight: results/01_a.json: not the file 01_a wrote")
    assert "git checkout -- results/01_a.json" in lines[0] and "make figures FORCE=01_a" in lines[0]
    result.write_bytes(original)                                   # restored, as git checkout would

    ckpt = root / "results" / "checkpoints" / "w.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    t0 = time.perf_counter()
    r = pipeline(env)
    assert r.returncode == 2 and time.perf_counter() - t0 < 10
    assert re.fullmatch(r"ibnn: preflight: results/checkpoints/w\.pt: not the checkpoint 01_a wrote .*100 bytes\): "
                        r"truncated or replaced; restore it \(git checkout -- results/checkpoints/w\.pt\) or "
                        r"regenerate it \(make figures FORCE=01_a\)", r.stderr.strip()), r.stderr

    (root / "figures" / "01_extra.png").write_bytes(PNG_MAGIC)
    r = pipeline(env)
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "ibnn: preflight: figures/01_extra.png: not written by make figures (no notebook recorded it); remove it or "
        "move it out of figures/"), r.stderr
    (root / "figures" / "01_extra.png").unlink()
    r = pipeline(env, "--force", "01_a")                           # regenerated on request
    assert r.returncode == 0 and "01_a: running (full profile): forced" in r.stdout, r.stderr
    assert len(ckpt.read_bytes()) == 2048 and "02_b: up to date" in r.stdout


def test_a_circuit_constant_reruns_only_its_readers_and_a_module_edit_stops_at_identical_outputs(project):
    root, env = project
    make_nb(root / "notebooks" / "03_c.ipynb", SRC_C)
    assert pipeline(env).returncode == 0
    stamps = json.loads((root / "results" / "pipeline_stamps.json").read_text())["notebooks"]
    assert list(stamps["03_c"]["deps"]["params"]) == ["comp_offset_sigma"] and not stamps["01_a"]["deps"]["params"]
    assert "ibnn/params.py" not in stamps["01_a"]["deps"]["modules"]

    edit(root / "ibnn" / "params_data" / "circuit.toml", "[comp_offset_sigma]\nvalue = 0.010",
         "[comp_offset_sigma]\nvalue = 0.012")
    before = snapshot(root)
    r = pipeline(env, "--dry-run")
    assert "03_c: would run: parameter comp_offset_sigma changed" in r.stdout and snapshot(root) == before, r.stdout
    r = pipeline(env)
    assert r.returncode == 0, r.stderr
    assert "01_a: up to date" in r.stdout and "02_b: up to date" in r.stdout, r.stdout
    assert "03_c: running (full profile): parameter comp_offset_sigma changed" in r.stdout, r.stdout
    after = snapshot(root)                     # 03_c's notebook shows nothing of the value: byte-identical
    assert [k for k in after if after[k] != before[k]] == ["results/03_c.json", "results/pipeline_stamps.json"]

    with open(root / "ibnn" / "published.py", "a") as fh:             # of the three, only 01_a imports it
        fh.write("\n# an edit that changes no output\n")
    r = pipeline(env)
    assert "01_a: running (full profile): ibnn/published.py changed" in r.stdout, r.stdout
    assert "02_b: up to date" in r.stdout and "03_c: up to date" in r.stdout, r.stdout

    # A parameter a notebook reads must stay defined (a renamed entry fails in preflight, not minutes later).
    edit(root / "ibnn" / "params_data" / "circuit.toml", "[comp_offset_sigma]\n", "[comp_ofset_sigma]\n")
    r = pipeline(env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("ibnn: preflight: ibnn/params_data/*.toml: [comp_offset_sigma] is not defined, but "
                                "notebook 03_c reads it (did you mean [comp_ofset_sigma]?); accepted: restore the "
                                "entry [comp_offset_sigma] (value, unit, kind, source)"), r.stderr


@pytest.mark.parametrize("old, new, expect", [
    ("[array_rows]\nvalue = 128", "[array_rows]\nvalue = true",
     r"ibnn/params_data/circuit\.toml: \[array_rows\] value = true: a boolean is not a number; accepted: a TOML "
     r"integer"),
    ("[array_rows]\nvalue = 128", "[array_rows]\nvalue = 128.5",
     r"ibnn/params_data/circuit\.toml: \[array_rows\] value = 128\.5: not an integer; accepted: a TOML integer"),
    ("[c_bl_per_cell]\nvalue = 1.2e-15", '[c_bl_per_cell]\nvalue = "1.2 fF"',
     r"\[c_bl_per_cell\] value = \"1\.2 fF\": write the number alone \(SI units\) and its unit in `unit`"),
    ("[c_bl_per_cell]\nvalue = 1.2e-15", '[c_bl_per_cell]\nvalue = "1.2e-15"',
     r"\[c_bl_per_cell\] value = \"1\.2e-15\": a number in quotes is a string: write it without the quotes"),
    ("[c_bl_per_cell]\nvalue = 1.2e-15", "[c_bl_per_cell]\nvalue = 1.2e-15\nvaule = 1",
     r"\[c_bl_per_cell\] vaule = 1: unknown key; accepted keys: value, unit, kind, source, low, high"),
    ("[c_bl_per_cell]\nvalue = 1.2e-15", "[c_bl_per_cell]\nvalue == 1.2e-15",
     r"ibnn/params_data/circuit\.toml: TOML syntax error: .*\(at line \d+, column \d+\)"),
    ("[vdd]\nvalue = 1.2", "[vdd]\nvalue = 2.0",
     r"\[vdd\] value = 2\.0: outside its cited range \[1\.08, 1\.32\]; accepted: .*override"),
])
def test_bad_parameter_files_fail_in_seconds_with_one_line(project, old, new, expect):
    root, env = project
    edit(root / "ibnn" / "params_data" / "circuit.toml", old, new)
    t0 = time.perf_counter()
    r = pipeline(env)
    assert time.perf_counter() - t0 < 5 and r.returncode == 2 and "running" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(expect, lines[0]), r.stderr
    assert not (root / "results").exists()


def test_cuda_request_without_cuda_fails_in_under_a_second(project):
    root, env = project
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    t0 = time.perf_counter()
    r = pipeline(dict(env, IBNN_DEVICE="cuda"))
    assert time.perf_counter() - t0 < 1.0 and r.returncode == 2
    assert r.stderr.startswith("ibnn: preflight: IBNN_DEVICE=cuda, but") and r.stderr.count("\n") == 1
    r = pipeline(dict(env, IBNN_DEVICE="gpu"))
    assert "IBNN_DEVICE='gpu' is not accepted; accepted: 'cpu', 'cuda' or unset" in r.stderr


def test_a_quick_run_writes_into_scratch_and_leaves_the_record_alone(project):
    root, env = project
    env = {k: v for k, v in env.items() if k != "IBNN_OUTPUT_ROOT"}
    before = snapshot(root)
    r = pipeline(env, "--fast", "--only", "01_a")
    assert r.returncode == 0, r.stderr
    fast = Path(env["IBNN_SCRATCH_DIR"]) / "fast"
    assert json.loads((fast / "results" / "01_a.json").read_text())["_provenance"]["profile"] == "fast"
    assert (fast / "notebooks" / "01_a.ipynb").exists() and (fast / "figures" / "01_hist.png").exists()
    assert snapshot(root) == before                    # sources, notebooks and the (empty) record untouched


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_leaves_no_half_written_output(project, sig):
    root, env = project
    for name, src in (("01_a", SRC_A), ("02_b", SRC_B)):          # half a second per step: time to interrupt
        make_nb(root / "notebooks" / f"{name}.ipynb", [(src[0][0].replace("0.0", "0.5"), ["parameters"])] + src[1:])
    rng = random.Random(1234 + int(sig))
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "ibnn.repro.pipeline", "--force"], env=env, cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(1.0, 5.0))
        os.killpg(proc.pid, sig)           # the whole group: papermill and its kernel
        proc.communicate(timeout=60)
        outputs_intact(root)
    r = pipeline(env)
    assert r.returncode == 0, r.stderr
    outputs_intact(root)
    assert not list(root.rglob(".*.tmp*")) and not list((root / ".cache" / "staging").iterdir())
    assert json.loads((root / "results" / "02_b.json").read_text())["twice"] is not None


@pytest.fixture
def hand_env(tmp_path, monkeypatch):
    """A hand papermill run: no IBNN_OUTPUT_ROOT, the scratch root in tmp."""
    for k in ("IBNN_OUTPUT_ROOT", "IBNN_PROFILE", "IBNN_READ_ROOT", "IBNN_MANIFEST", "MPLBACKEND"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("IBNN_SCRATCH_DIR", str(tmp_path / "scratch"))
    return tmp_path


def hand_run(root, out, **parameters):
    import papermill as pm
    return pm.execute_notebook(str(root / "notebooks" / "01_a.ipynb"), str(out), parameters=parameters,
                               kernel_name="ibnn", progress_bar=False)


def test_bad_or_misspelled_papermill_parameter_fails_before_work(project, hand_env):
    root, env = project
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match=r"n=0 is out of range"):
        hand_run(root, hand_env / "out.ipynb", n=0)
    with pytest.raises(pm.PapermillExecutionError,
                       match=r"unknown parameter\(s\) \['nn'\] for notebook 01_a \(did you mean nn -> n\?\); "
                             r"accepted: \['n', 'pause', 'profile'\]"):
        hand_run(root, hand_env / "out.ipynb", nn=3)
    assert not (hand_env / "scratch").exists()


def test_hand_papermill_run_writes_into_the_scratch_root(project, hand_env):
    root, env = project
    before = snapshot(io.REPO_ROOT)
    hand_run(root, hand_env / "out.ipynb", n=50)
    assert json.loads((hand_env / "scratch" / "full" / "results" / "01_a.json").read_text())["n"] == 50
    assert (hand_env / "scratch" / "full" / "figures" / "01_hist.png").exists()
    assert snapshot(io.REPO_ROOT) == before


def test_default_roots_are_git_ignored(monkeypatch):
    from ibnn.repro import pipeline as pl
    for k in ("IBNN_OUTPUT_ROOT", "IBNN_SCRATCH_DIR"):
        monkeypatch.delenv(k, raising=False)
    assert pl.root_for(fast=False) == io.REPO_ROOT
    fast_root = pl.root_for(fast=True)
    assert fast_root == io.REPO_ROOT / "scratch" / "fast"
    assert io.scratch_root("full") == io.REPO_ROOT / "scratch" / "full"
    if shutil.which("git") is None or not (io.REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for p in (fast_root / "results" / "x.json", io.scratch_root("full") / "figures" / "x.png",
              io.REPO_ROOT / ".cache" / "staging" / "x"):
        r = subprocess.run(["git", "check-ignore", "-q", str(p)], cwd=io.REPO_ROOT)
        assert r.returncode == 0, f"{p} is not git-ignored"


def test_second_pipeline_on_same_root_is_refused(project):
    import fcntl
    root, env = project
    lock = root / ".cache" / "pipeline.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        r = pipeline(env)
    assert r.returncode != 0 and "another `make figures` is running" in r.stderr
    assert not (root / "results").exists()


def test_a_readme_table_that_differs_from_claims_json_makes_its_notebook_stale(tmp_path, monkeypatch):
    from ibnn.repro import claims
    from ibnn.repro import stamps as st
    rows = [{"id": "x", "claim": "c", "paper": 1.0, "reproduced": 1.0, "unit": "%", "tolerance": 0.1,
             "holds": True, "assumptions": "a"}]
    io.atomic_write_json(tmp_path / "results" / "claims.json", rows)
    readme = tmp_path / "README.md"
    readme.write_text(f"{claims.README_START}\n{claims.markdown_table(rows)}\n{claims.README_END}\n")
    monkeypatch.setattr(io, "REPO_ROOT", tmp_path)
    assert st._readme_reason(tmp_path, "results/claims.json") is None
    readme.write_text(f"{claims.README_START}\n| edited by hand |\n{claims.README_END}\n")
    assert "README claims table differs" in st._readme_reason(tmp_path, "results/claims.json")
    assert st._readme_reason(tmp_path / "scratch", "results/claims.json") is None      # only the record's README
