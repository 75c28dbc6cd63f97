"""The committed record (results/, figures/, notebooks/) is what a full-profile `make figures` wrote: every file has
the sha256 its stamp recorded and no file is unrecorded, every saved figure is embedded in its notebook, no output
holds an absolute machine path, no volatile metadata, and the recorded dependencies say that a circuit constant
does not rerun the data (01) or the training (03).

The root checked is IBNN_OUTPUT_ROOT (a pipeline-built scratch root) or the repository."""
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from ibnn import params
from ibnn.repro import io, pipeline
from ibnn.repro import stamps as st

ROOT = Path(os.environ.get("IBNN_OUTPUT_ROOT") or io.REPO_ROOT).resolve()
# An absolute path of some machine: /home/..., /tmp/..., /Users/..., C:\..., or this checkout's own location.
MACHINE_PATH = re.compile(r"""(?<![\w.~])(/(home|tmp|work|Users|root|mnt|var|opt|srv|private)/[\w.-]+|[A-Z]:\\\\)""")


@pytest.fixture(scope="module")
def stamps():
    path = st.path(ROOT)
    data = json.loads(path.read_text()) if path.exists() else {}
    if data.get("format") != st.FORMAT:
        pytest.skip(f"{path} is not from this make figures (stamp format {st.FORMAT}): the record predates it; "
                    f"rerun make figures")
    return data["notebooks"]


def test_every_notebook_is_recorded_in_the_full_profile(stamps):
    assert sorted(stamps) == [p.stem for p in pipeline.notebooks()]
    for stem, e in stamps.items():
        assert e["profile"] == "full" and not e.get("committing"), stem


def test_record_files_have_their_recorded_hashes(stamps):
    owned = {}
    for stem, e in stamps.items():
        for rel, digest in e["outputs"].items():
            assert (ROOT / rel).is_file(), f"{rel} ({stem}) is missing"
            assert io.sha256_file(ROOT / rel) == digest, f"{rel} is not the file {stem} wrote"
            owned[rel] = stem
    foreign = [rel for rel in st.list_files(ROOT) if rel not in owned]
    assert not foreign, f"files in the record that no notebook wrote: {foreign}"


def test_every_saved_figure_is_embedded_in_its_notebook(stamps):
    """A notebook that saves a figure it does not show fails (the pipeline refuses it too, see test_pipeline)."""
    for stem, e in stamps.items():
        n_saved = sum(1 for rel in e["outputs"] if rel.startswith("figures/"))
        nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        n_shown = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
        assert n_shown >= n_saved, f"{stem} saves {n_saved} figures but shows {n_shown}"
        for c in nb.cells:
            if c.cell_type == "code" and "savefig(" in c.source:
                shown = sum(1 for o in c.outputs if "image/png" in o.get("data", {}))
                assert shown >= c.source.count("savefig("), f"{stem}: a cell saves a figure it does not show"


def test_committed_outputs_hold_no_absolute_machine_path(stamps):
    files = [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "results").rglob("*.json")]
    assert files
    for p in files:
        text = p.read_text()
        assert str(io.REPO_ROOT) not in text and str(ROOT) not in text, f"{p.name} holds an absolute path"
        found = MACHINE_PATH.findall(text)
        assert not found and "PosixPath('/" not in text, f"{p.name} holds absolute paths: {found[:3]}"


def test_committed_notebooks_have_no_volatile_metadata(stamps):
    for p in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(p.read_text())
        assert "papermill" not in nb["metadata"], p.name
        for c in nb["cells"]:
            assert not {"papermill", "execution"} & set(c["metadata"]), p.name


def test_a_circuit_constant_does_not_rerun_data_or_training(stamps):
    """Notebook 01 (data) reads no parameter entry and 03 (training) only the array's geometry, to check that a
    topology fits: changing any other circuit constant (a_vt, an offset, a capacitance) leaves both up to date,
    while the notebooks that read it rerun."""
    P = params.load()
    circuit = set(P.names("circuit")) | {"@all", "@section:circuit"}
    geometry = {"array_rows", "array_cols", "input_bits"}
    assert not set(stamps["01_data"]["deps"]["params"])
    assert set(stamps["03_train_bnn"]["deps"]["params"]) & circuit <= geometry
    for stem in ("01_data", "03_train_bnn"):
        assert not any(m.startswith("ibnn/circuit/") for m in stamps[stem]["deps"]["modules"]), stem
    assert "a_vt" in stamps["02_circuit_models"]["deps"]["params"]
