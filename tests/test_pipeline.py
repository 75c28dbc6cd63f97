"""`make figures` machinery (ibnn.repro.pipeline) on two tiny notebooks: incremental reruns, interruption at random
points (SIGINT and SIGKILL) leaving no half-written output, determinism, and bad papermill parameters failing
before any work. The real notebooks run under nbval in `make test`."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import nbformat
import pytest

KERNEL = {"name": "ibnn", "display_name": "Python (ibnn)", "language": "python"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SRC_A = [
    ('profile = "full"\nn = 200', ["parameters"]),
    ("import time\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
     "import ibnn.repro.nb, ibnn.repro.provenance, ibnn.repro.style\n"
     "from ibnn.validate import check_int\nn = check_int('n', n, 1, 10_000)\n"
     "profile = ibnn.repro.nb.resolve_profile(profile)\nibnn.repro.nb.setup()", []),
    ("rng = np.random.default_rng(0)\nx = rng.normal(size=n)\ntime.sleep(0.5)", []),
    ("fig, ax = plt.subplots()\nax.hist(x, bins=20)\nax.set_xlabel('x (1)')\nax.set_ylabel('count')\n"
     "ibnn.repro.style.savefig(fig, '01_hist')\ntime.sleep(0.5)", []),
    ("ibnn.repro.provenance.write_results('01_a', {'mean': float(x.mean()), 'n': n})", []),
]
SRC_B = [
    ('profile = "full"', ["parameters"]),
    ("import time\nimport ibnn.repro.nb, ibnn.repro.provenance\nprofile = ibnn.repro.nb.resolve_profile(profile)", []),
    ("a = ibnn.repro.provenance.load_results('01_a')\ntime.sleep(0.5)", []),
    ("ibnn.repro.provenance.write_results('02_b', {'twice': 2 * a['mean']})", []),
]


def make_nb(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    make_nb(nbdir / "01_a.ipynb", SRC_A)
    make_nb(nbdir / "02_b.ipynb", SRC_B)
    env = dict(os.environ, IBNN_OUTPUT_ROOT=str(tmp_path), IBNN_NOTEBOOKS_DIR=str(nbdir), MPLBACKEND="Agg")
    env.pop("IBNN_PROFILE", None)
    return tmp_path, env


def pipeline(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "ibnn.repro.pipeline", *args], env=env, capture_output=True,
                          text=True, **kw)


def outputs_intact(root):
    """Every output that exists is complete: JSON parses, PNGs end with IEND, notebooks are valid."""
    for p in (root / "results").glob("*.json"):
        json.loads(p.read_text())
    for p in (root / "figures").glob("*.png"):
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"), p
    for p in (root / "notebooks").glob("*.ipynb"):
        nbformat.validate(nbformat.read(p, as_version=4))


def test_runs_then_is_incremental(project):
    root, env = project
    r = pipeline(env)
    assert r.returncode == 0, r.stderr
    assert (root / "figures" / "01_hist.png").exists()
    b = json.loads((root / "results" / "02_b.json").read_text())
    a = json.loads((root / "results" / "01_a.json").read_text())
    assert b["twice"] == 2 * a["mean"]
    nb = nbformat.read(root / "notebooks" / "01_a.ipynb", as_version=4)
    assert any(c.get("outputs") is not None for c in nb.cells)   # executed in place

    r = pipeline(env)
    assert r.stdout.count("up to date") == 2, r.stdout

    # Changing the downstream notebook reruns it alone; a missing figure reruns its notebook.
    changed = [("ibnn.repro.provenance.write_results('02_b', {'twice': 3})", [])]
    make_nb(root / "notebooks" / "02_b.ipynb", SRC_B[:-1] + changed)
    r = pipeline(env)
    assert "01_a: up to date" in r.stdout and "02_b: running" in r.stdout, r.stdout
    (root / "figures" / "01_hist.png").unlink()
    r = pipeline(env)
    # 01_a reruns; it is deterministic, so 02_b's inputs are unchanged and it stays up to date.
    assert "01_a: running" in r.stdout and "02_b: up to date" in r.stdout, r.stdout


def test_deterministic_results(project):
    root, env = project
    assert pipeline(env).returncode == 0
    first = {p.name: p.read_bytes() for p in (root / "results").glob("*.json")}
    assert pipeline(env, "--force").returncode == 0
    second = {p.name: p.read_bytes() for p in (root / "results").glob("*.json")}
    assert first == second and len(first) == 3          # two results + the stamps


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_leaves_no_half_written_output(project, sig):
    root, env = project
    rng = random.Random(1234 + int(sig))
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "ibnn.repro.pipeline", "--force"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(1.0, 5.0))
        os.killpg(proc.pid, sig)           # the whole group: papermill and its kernel
        proc.communicate(timeout=60)
        outputs_intact(root)
    r = pipeline(env)
    assert r.returncode == 0, r.stderr
    outputs_intact(root)
    assert not list(root.rglob(".*.tmp"))
    assert json.loads((root / "results" / "02_b.json").read_text())["twice"] is not None


def test_bad_parameter_fails_before_work(project):
    root, env = project
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match=r"n=0 is out of range"):
        pm.execute_notebook(str(root / "notebooks" / "01_a.ipynb"), str(root / "out.ipynb"),
                            parameters={"n": 0}, kernel_name="ibnn", progress_bar=False)
    assert not (root / "results" / "01_a.json").exists()
    assert not (root / "figures" / "01_hist.png").exists()


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
