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

from ibnn.repro import io, schedule

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
SRC_B = [                                  # reads one circuit constant and 01_a's result
    ('profile = "full"\npause = 0.0', ["parameters"]),
    (START.format(stem="02_b", rules=", pause=nb.Real(0, 5)") + "import time\nfrom ibnn import params\n"
     "from ibnn.repro import provenance\nP = params.load()", []),
    ("a = provenance.load_results('01_a')\ntime.sleep(pause)", []),
    ("provenance.write_results('02_b', {'twice': 2 * a['mean'], 'offset': P['comp_offset_sigma']})", []),
]

def make_nb(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    for i, c in enumerate(nb.cells):
        c.id = f"cell{i}"                   # fixed ids: the sources are byte-stable
    nbformat.write(nb, path)


def _env(root: Path, scratch: Path) -> dict:
    env = dict(os.environ, IBNN_OUTPUT_ROOT=str(root), IBNN_NOTEBOOKS_DIR=str(root / "notebooks"),
               PYTHONPATH=str(root), IBNN_SCRATCH_DIR=str(scratch))
    for k in ("IBNN_PROFILE", "IBNN_DEVICE", "MPLBACKEND", "IBNN_READ_ROOT", "IBNN_MANIFEST"):
        env.pop(k, None)
    return env


def _fresh(tmp_path: Path, nbs=(("01_a", SRC_A), ("02_b", SRC_B))):
    """A copy of the package (so a test may edit its parameters and modules) with tiny notebooks; the copy's
    repository root is the output root, as in a full-profile `make figures`."""
    root = tmp_path / "repo"
    shutil.copytree(io.PACKAGE_DIR, root / "ibnn", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "notebooks" / "profiles").mkdir(parents=True)
    (root / "notebooks" / "profiles" / "fast.toml").write_text("# no quick-profile values for the tiny notebooks\n")
    for name, src in nbs:
        make_nb(root / "notebooks" / f"{name}.ipynb", src)
    return root, _env(root, tmp_path / "scratch")


@pytest.fixture
def project(tmp_path):
    """A project that has not run yet (01_a, 02_b)."""
    return _fresh(tmp_path)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """One full-profile run of 01_a and 02_b (02_b reads a circuit constant), shared: each test gets a copy."""
    root, env = _fresh(tmp_path_factory.mktemp("built"))
    r = pipeline(env)
    assert r.returncode == 0, r.stderr
    return root, r


@pytest.fixture
def built(built_once, tmp_path):
    """A copy of the built project (its record, stamps and package), free to edit."""
    root = tmp_path / "repo"
    shutil.copytree(built_once[0], root, ignore=shutil.ignore_patterns("__pycache__", "*.lock"))
    return root, _env(root, tmp_path / "scratch")


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


def line_of(stdout: str, stem: str) -> str:
    return next(ln for ln in stdout.splitlines() if f" {stem}: " in ln)


def embedded_pngs(nb) -> int:
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


def absolute_paths(text: str, *roots: Path) -> list[str]:
    """Absolute machine paths in a committed output (a notebook's outputs or a result)."""
    hits = [str(r) for r in roots if str(r) in text]
    return hits + re.findall(r"PosixPath\('/[^']*'\)|(?<![\w.])/(?:home|root|tmp|work|Users)/[\w./-]+", text)


# -- 1. figures embedded, relative paths, clean output ------------------------------------------------------------

def test_first_run_embeds_its_figures_writes_relative_paths_and_prints_no_noise(built_once):
    root, r = built_once
    for noise in ("does not end in", "without encryption", "Traceback", "Warning", "KeyboardInterrupt"):
        assert noise not in r.stdout + r.stderr, (noise, r.stdout, r.stderr)
    assert "[ibnn] preflight (" in r.stdout and "1/2 01_a: running (full profile): no recorded run" in r.stdout
    assert "1/2 01_a: done in" in r.stdout and "[ibnn] ran 2 of 2 notebooks" in r.stdout, r.stdout
    a, b = (json.loads((root / "results" / f"{s}.json").read_text()) for s in ("01_a", "02_b"))
    assert b["twice"] == 2 * a["mean"]
    nb = nbformat.read(root / "notebooks" / "01_a.ipynb", as_version=4)
    fig_cell = next(c for c in nb.cells if "savefig" in c.source)       # executed in place, figure embedded
    assert embedded_pngs(nb) == 1 and any("image/png" in o.get("data", {}) for o in fig_cell.outputs)
    assert nb.metadata["ibnn"] == {"profile": "full"}
    for p in [*(root / "notebooks").glob("*.ipynb"), *(root / "results").rglob("*.json")]:
        text = p.read_text()
        assert not absolute_paths(text, root), (p, absolute_paths(text, root))
        if p.suffix == ".ipynb":
            for volatile in ("papermill", "iopub.", "start_time", "duration", "ibnn-manifest"):
                assert volatile not in text, (p, volatile)
    assert "RecordPath('results/01_a.json')" in (root / "notebooks" / "01_a.ipynb").read_text()


def test_a_figure_saved_but_not_shown_fails_and_records_nothing(tmp_path):
    """What the pipeline checks after a notebook ran (execute.check_figures, from its manifest): a figure written
    to figures/ but not shown in the notebook (saved with fig.savefig, not ibnn.repro.style.savefig) is refused."""
    from ibnn.repro.execute import NotebookFailed, check_figures
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "01_hidden.png").write_bytes(PNG_MAGIC)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig.savefig(...)")])
    with pytest.raises(NotebookFailed, match=r"^01_a saved figures/01_hidden\.png without showing it in the notebook "
                       r"\(0 image\(s\) embedded for 1 saved\): save figures with ibnn\.repro\.style\.savefig, "
                       r"which also shows them; nothing was recorded$"):
        check_figures("01_a", tmp_path, {}, nb)
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    check_figures("01_a", tmp_path, {"figures/01_hidden.png": True}, nb)       # shown: accepted


def test_savefig_shows_what_it_saves_and_records_it(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ibnn.repro import style
    monkeypatch.setenv("IBNN_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setattr(style, "kernel_shell", lambda: None)         # outside a kernel nothing can be shown
    fig, _ = plt.subplots()
    assert repr(style.savefig(fig, "01_x")) == "RecordPath('figures/01_x.png')"
    assert style.shown()["figures/01_x.png"] is False and (tmp_path / "figures" / "01_x.png").exists()
    plt.close(fig)


def test_the_committed_record_embeds_its_figures_and_holds_no_absolute_path():
    """Done when: every notebook that saves a figure embeds it; no absolute machine path in committed outputs."""
    from ibnn.repro import stamps as st
    stamps = st.load(io.REPO_ROOT)
    current = {k: e for k, e in stamps.items() if not e.get("legacy")}
    if not current:
        pytest.skip("results/pipeline_stamps.json predates the pipeline's stamp format: regenerate the record "
                    "(make figures FORCE=1)")
    for stem, e in sorted(current.items()):
        nb = nbformat.read(io.REPO_ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        figs = [rel for rel in e["outputs"] if rel.startswith("figures/")]
        assert embedded_pngs(nb) >= len(figs), f"{stem} saves {len(figs)} figures, embeds {embedded_pngs(nb)}"
        assert nb.metadata.get("ibnn", {}).get("profile") == "full", f"{stem}: not a full-profile run"
        for rel in [f"notebooks/{stem}.ipynb", *(r for r in e["outputs"] if r.endswith(".json"))]:
            hits = absolute_paths((io.REPO_ROOT / rel).read_text(), io.REPO_ROOT)
            assert not hits, f"{rel} holds absolute paths {hits[:3]}"


# -- 2. the record is written only by a full-profile make figures ---------------------------------------------------

def test_up_to_date_means_the_recorded_files_and_a_rerun_is_byte_identical(built):
    root, env = built
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

    make_nb(root / "notebooks" / "02_b.ipynb", SRC_B[:-1] + [("provenance.write_results('02_b', {'twice': 3})", [])])
    r = pipeline(env, "--dry-run")                     # DRY=1: what would rerun, and nothing runs
    assert "01_a: up to date" in r.stdout and "02_b: would run: its source changed" in r.stdout, r.stdout



def test_a_rerun_that_changes_only_printed_run_times_keeps_the_notebook_byte_identical():
    """Notebooks print their wall and CPU times, and how stdout is split into outputs depends on timing: neither
    may make a rerun that changed nothing show up as a modified notebook."""
    from ibnn.repro import stamps as st
    from ibnn.repro.execute import coalesce_streams
    split = [nbformat.v4.new_output("stream", name="stdout", text="a\n"),
             nbformat.v4.new_output("stream", name="stdout", text="b\n"),
             nbformat.v4.new_output("stream", name="stderr", text="w\n")]
    assert [(o["name"], o["text"]) for o in coalesce_streams(split)] == [("stdout", "a\nb\n"), ("stderr", "w\n")]
    assert st.same_but_durations('"notebook ran in 6.5 s wall, 3.2 s CPU"', '"notebook ran in 5.5 s wall, 2.6 s CPU"')
    assert st.same_but_durations("[12 s] 3 ms, 1.5 min", "[9 s] 4 ms, 2.0 min")
    assert not st.same_but_durations("accuracy 0.91, 81 rows", "accuracy 0.92, 81 rows")
    assert not st.same_but_durations("2 samples", "3 samples") and not st.same_but_durations("1.2 V", "1.3 V")

def test_hand_edited_result_truncated_checkpoint_and_foreign_figure_are_refused_by_name(built):
    root, env = built
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
    r = pipeline(env, "--force", "01_a", "--dry-run")             # the fix it names is accepted
    assert r.returncode == 0 and "01_a: would run: forced" in r.stdout, r.stderr

    (root / "figures" / "01_extra.png").write_bytes(PNG_MAGIC)
    r = pipeline(env, "--force", "01_a")
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "ibnn: preflight: figures/01_extra.png: not written by make figures (no notebook recorded it); remove it or "
        "move it out of figures/"), r.stderr


def test_a_quick_run_writes_into_scratch_drops_injected_parameters_and_is_marked(built):
    """FAST=1 leaves the record alone; a papermill-injected parameters cell saved into a notebook (a hand run written
    in place) never reaches a pipeline run: the quick run drops it, and the record's copy reruns to lose it."""
    root, env = built
    src = root / "notebooks" / "01_a.ipynb"
    nb = nbformat.read(src, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell("# Parameters\nn = 7\n", metadata={"tags": ["injected-parameters"]}))
    nb.cells[1].id = "injected"
    nbformat.write(nb, src)
    before = snapshot(root)
    env = {k: v for k, v in env.items() if k != "IBNN_OUTPUT_ROOT"}
    r = pipeline(env, "--fast", "--only", "01_a")
    assert r.returncode == 0, r.stderr
    fast = Path(env["IBNN_SCRATCH_DIR"]) / "fast"
    res = json.loads((fast / "results" / "01_a.json").read_text())
    assert res["_provenance"]["profile"] == "fast" and res["n"] == 200        # the notebook's default, not 7
    out = nbformat.read(fast / "notebooks" / "01_a.ipynb", as_version=4)
    assert out.metadata["ibnn"] == {"profile": "fast"} and embedded_pngs(out) == 1
    assert not [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert (fast / "figures" / "01_hist.png").exists() and snapshot(root) == before
    r = pipeline(env, "--dry-run")                                 # the record's own notebook reruns without it
    assert "01_a: would run: notebooks/01_a.ipynb holds papermill-injected parameters" in r.stdout, r.stdout


@pytest.mark.parametrize("sig, jobs", [(signal.SIGINT, "1"), (signal.SIGINT, "2"), (signal.SIGKILL, "2")])
def test_interrupt_leaves_no_half_written_output(built, sig, jobs):
    root, env = built                      # jobs 1: in the main process; 2 (the default): in a worker process
    make_nb(root / "notebooks" / "01_a.ipynb", [(SRC_A[0][0].replace("0.0", "0.5"), ["parameters"])] + SRC_A[1:])
    proc = subprocess.Popen([sys.executable, "-m", "ibnn.repro.pipeline", "--only", "01_a", "--jobs", jobs], env=env,
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # not inherited ignored
    time.sleep(random.Random(1234 + int(sig)).uniform(0.5, 4.0))
    os.killpg(proc.pid, sig)               # the whole group: papermill and its kernel
    proc.communicate(timeout=60)
    outputs_intact(root)
    r = pipeline(env, "--dry-run")         # cleans what a killed run left; the record verifies
    assert r.returncode == 0, r.stderr
    assert not list(root.rglob(".*.tmp*")) and not list((root / ".cache" / "staging").glob("*"))


# -- 3. preflight: bad input refused before any work, in one line -------------------------------------------------

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


def test_every_notebook_honours_the_device_setting():
    """No notebook pins a device: the chips and networks go where IBNN_DEVICE (ibnn.repro.device) says."""
    pinned = re.compile(r"device\s*=\s*[\"'](?:cpu|cuda)[\"']|\.to\([\"'](?:cpu|cuda)[\"']\)|\.cuda\(\)")
    for p in sorted((io.REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = [c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code"]
        hits = [m.group(0) for src in code for m in pinned.finditer(src)]
        assert not hits, f"{p.name} pins a device: {hits}"


# -- 4. reruns keyed on what each notebook read -----------------------------------------------------------------------

def test_a_circuit_constant_reruns_only_its_readers_and_a_module_edit_only_its_importers(built):
    root, env = built
    stamps = json.loads((root / "results" / "pipeline_stamps.json").read_text())["notebooks"]
    assert list(stamps["02_b"]["deps"]["params"]) == ["comp_offset_sigma"] and not stamps["01_a"]["deps"]["params"]
    assert "ibnn/params.py" not in stamps["01_a"]["deps"]["modules"]

    edit(root / "ibnn" / "params_data" / "circuit.toml", "[comp_offset_sigma]\nvalue = 0.010",
         "[comp_offset_sigma]\nvalue = 0.012")
    before = snapshot(root)
    r = pipeline(env, "--dry-run")             # DRY=1 decides as a run does (stamps.stale_reasons), running nothing
    assert r.returncode == 0 and snapshot(root) == before, r.stderr
    assert "02_b: would run: parameter comp_offset_sigma changed" in r.stdout, r.stdout
    assert "01_a: up to date" in r.stdout, r.stdout             # as the data (01) and training (03) notebooks

    edit(root / "ibnn" / "params_data" / "circuit.toml", "value = 0.012", "value = 0.010")     # back: up to date
    with open(root / "ibnn" / "published.py", "a") as fh:             # of the two, only 01_a imports it
        fh.write("\n# an edit that changes no output\n")
    r = pipeline(env, "--dry-run")
    assert "01_a: would run: ibnn/published.py changed" in r.stdout, r.stdout
    assert "would run" not in line_of(r.stdout, "02_b"), r.stdout

    # A parameter a notebook reads must stay defined (a renamed entry fails in preflight, not minutes later).
    edit(root / "ibnn" / "params_data" / "circuit.toml", "[comp_offset_sigma]\n", "[comp_ofset_sigma]\n")
    r = pipeline(env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("ibnn: preflight: ibnn/params_data/*.toml: [comp_offset_sigma] is not defined, but "
                                "notebook 02_b reads it (did you mean [comp_ofset_sigma]?); accepted: restore the "
                                "entry [comp_offset_sigma] (value, unit, kind, source)"), r.stderr


def test_a_half_renamed_notebook_is_named_before_any_work(tmp_path, monkeypatch):
    """Renumbering a notebook renames its stem in three places; one left behind is one line, before any work."""
    from ibnn.repro import nb, preflight
    fast = tmp_path / "fast.toml"
    fast.write_text("[08_jssc_prototype]\nn = 1\n[10_jssc_prototype]\nn = 1\n")
    assert preflight.check_profile_tables({"08_jssc_prototype", "10_claims"}, fast) == [
        f"{fast}: [10_jssc_prototype] names no notebook (did you mean [08_jssc_prototype]?); accepted: the "
        f"notebooks' names, ['08_jssc_prototype', '10_claims']"]
    monkeypatch.setenv("IBNN_NOTEBOOK", "08_jssc_prototype")
    with pytest.raises(ValueError, match=r"^notebook 08_jssc_prototype\.ipynb calls nb\.start with stem "
                                         r"'10_jssc_prototype': a renamed notebook's stem"):
        nb.start({"profile": "full"}, "10_jssc_prototype")


def test_notebooks_are_found_by_their_numbers_in_order(tmp_path, monkeypatch):
    """No notebook stem is written into the pipeline: renumbering (10_x -> 08_x) needs no code change."""
    from ibnn.repro import pipeline as pl
    for name in ("10_claims", "08_jssc_prototype", "09_joint_fit", "01_data", "notes", "1_bad"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    monkeypatch.setenv("IBNN_NOTEBOOKS_DIR", str(tmp_path))
    assert [p.stem for p in pl.notebooks()] == ["01_data", "08_jssc_prototype", "09_joint_fit", "10_claims"]
    for mod in ("pipeline", "preflight", "stamps", "execute", "manifest"):
        text = (io.PACKAGE_DIR / "repro" / f"{mod}.py").read_text()
        assert not re.search(r"[\"']\d\d_[a-z]", text), f"ibnn/repro/{mod}.py names a notebook"


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


def test_bad_or_misspelled_papermill_parameter_fails_before_work():
    """What the kernel runs first with papermill's injected globals (the hand run below shows they reach it)."""
    from ibnn.repro import nb
    rules = dict(n=nb.Int(1, 10_000), pause=nb.Real(0, 5))
    with pytest.raises(ValueError, match=r"n=0 is out of range"):
        nb.start({"profile": "full", "n": 0, "pause": 0.0}, "01_a", **rules)
    with pytest.raises(ValueError, match=r"^unknown parameter\(s\) \['nn'\] for notebook 01_a "
                                         r"\(did you mean nn -> n\?\); accepted: \['n', 'pause', 'profile'\]$"):
        nb.start({"profile": "full", "n": 3, "nn": 3, "pause": 0.0}, "01_a", **rules)


def _git_status() -> str | None:
    if shutil.which("git") is None or not (io.REPO_ROOT / ".git").exists():
        return None
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=io.REPO_ROOT,
                          capture_output=True, text=True).stdout


def test_hand_papermill_run_writes_into_the_scratch_root_and_leaves_git_status_alone(project, hand_env):
    root, env = project
    before, status = snapshot(io.REPO_ROOT), _git_status()
    hand_run(root, hand_env / "out.ipynb", n=50)
    assert json.loads((hand_env / "scratch" / "full" / "results" / "01_a.json").read_text())["n"] == 50
    assert (hand_env / "scratch" / "full" / "figures" / "01_hist.png").exists()
    assert snapshot(io.REPO_ROOT) == before and _git_status() == status


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
    rows = [{"section": claims.PAPER_SECTION, "id": "x", "claim": "c", "paper": 1.0, "reproduced": 1.0, "unit": "%",
             "ci95": None, "tolerance": 0.1, "holds": True, "vs": None, "source": "s:x", "assumptions": "a",
             "fit": None}]
    io.atomic_write_json(tmp_path / "results" / "claims.json", rows)
    readme = tmp_path / "README.md"
    readme.write_text(f"{claims.README_START}\n{claims.markdown_table(rows)}\n{claims.README_END}\n")
    monkeypatch.setattr(io, "REPO_ROOT", tmp_path)
    assert st._readme_reason(tmp_path, "results/claims.json") is None
    readme.write_text(f"{claims.README_START}\n| edited by hand |\n{claims.README_END}\n")
    assert "README claims table differs" in st._readme_reason(tmp_path, "results/claims.json")
    assert st._readme_reason(tmp_path / "scratch", "results/claims.json") is None      # only the record's README


def test_a_renamed_notebook_retires_its_old_stamp_and_outputs_before_any_run(built):
    root, env = built
    (root / "notebooks" / "02_b.ipynb").rename(root / "notebooks" / "04_b.ipynb")      # as git mv would
    r = pipeline(env, "--dry-run")
    assert "[ibnn] 02_b: no such notebook any more: would remove its stamp and outputs results/02_b.json" in r.stdout
    assert "04_b: would run: no recorded run" in r.stdout and (root / "results" / "02_b.json").exists(), r.stdout
    r = pipeline(env, "--only", "01_a")                            # 01_a is up to date: nothing runs
    assert r.returncode == 0 and "02_b: no such notebook any more: removed" in r.stdout, r.stderr
    assert not (root / "results" / "02_b.json").exists() and "04_b: stale, skipped (--only)" in r.stdout
    assert "02_b" not in json.loads((root / "results" / "pipeline_stamps.json").read_text())["notebooks"]
    for p in (root / "notebooks").glob("*.ipynb"):                # an empty folder is refused, nothing retired
        p.unlink()
    r = pipeline(env)
    assert r.returncode == 2 and "ibnn: no notebooks NN_*.ipynb in " in r.stderr
    assert (root / "results" / "01_a.json").exists()


# -- 5, 6. make test, make lab, README -----------------------------------------------------------------------------

def test_make_labels_its_test_stages_and_lab_works_as_root():
    text = (io.REPO_ROOT / "Makefile").read_text()
    assert "make test, stage 1 of 2" in text and "make test, stage 2 of 2" in text
    assert re.search(r"ROOT_FLAG := \$\(if \$\(filter 0,\$\(shell id -u\)\),--allow-root\)", text)
    assert "$(ROOT_FLAG)" in text.split("\nlab:")[1].split("\n\n")[0]


def test_readme_says_what_reruns_how_to_force_and_how_to_leave_a_cited_range():
    text = (io.REPO_ROOT / "README.md").read_text()
    for needle in ("FORCE=1", "DRY=1", "FAST=1", "override", "scratch/"):
        assert needle in text, f"README does not mention {needle}"
    assert "about 6 minutes" not in text and "make figures` reruns every notebook" not in text


def test_readme_run_times_are_written_by_the_pipeline(tmp_path):
    """README's measured times come from the pipeline's own timings, between markers; no markers, no change. The
    schedule reads them back where the checkout has no timings of its own."""
    from ibnn.repro import pipeline as pl

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{pl.TIMES_START}\nold\n{pl.TIMES_END}\nrest\n")
    timings = {"01_data": {"seconds": 10.0, "profile": "full"}, "05_x": {"seconds": 150.0, "profile": "full"},
               "06_y": {"seconds": 3.0, "profile": "fast"}}
    assert pl.record_times(tmp_path, ["01_data", "05_x", "06_y"], timings)
    text = readme.read_text()
    assert "| `01_data` | 10 s |" in text and "| `05_x` | 2.5 min |" in text and "06_y" not in text
    assert "| all | 2.7 min |" in text and "old" not in text and text.endswith("rest\n")
    assert not pl.record_times(tmp_path, ["01_data", "05_x"], timings)           # unchanged
    assert pl.recorded_times(tmp_path) == {"01_data": 10.0, "05_x": 150.0}      # read back: a fresh clone's estimates
    (tmp_path / "README.md").write_text("no markers\n")
    assert not pl.record_times(tmp_path, ["01_data"], timings) and pl.recorded_times(tmp_path) == {}


def test_the_runners_skip_rfc3987_syntax_and_still_validate_notebooks():
    """ibnn.repro.lean (imported before papermill, by nbval's pytest and first in the workers' forkserver) keeps
    jsonschema from loading rfc3987_syntax; nbformat still validates a notebook, and a broken one still fails."""
    code = ("import sys, ibnn.repro.lean, nbformat; nb = nbformat.v4.new_notebook(); nbformat.validate(nb); "
            "nb.cells = [{'cell_type': 'bogus'}]\n"
            "try:\n    nbformat.validate(nb)\nexcept nbformat.ValidationError:\n    print('refused')\n"
            "print(sys.modules.get('rfc3987_syntax') is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["refused", "True"]
    # the notebooks' workers: their forkserver loaded lean first
    w = schedule.Workers(eval, lambda i: ("repr(__import__('sys').modules.get('rfc3987_syntax', 'absent'))",))
    w.start(0)
    assert w.wait() == (0, "None", None)
