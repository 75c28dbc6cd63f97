"""Atomic writes, output roots (scratch by default, reads falling back to the committed record), relative paths,
results provenance and stale-input detection."""
import json
import math

import numpy as np
import pytest

from ibnn.repro import io, nb, provenance


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("IBNN_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.delenv("IBNN_PROFILE", raising=False)
    monkeypatch.setattr(provenance, "_INPUTS", {})
    monkeypatch.setattr(io, "_PROFILE", [])
    return tmp_path


def test_atomic_path_leaves_old_file_on_error(root):
    target = root / "results" / "a.json"
    io.atomic_write_json(target, {"x": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_json_converts_numpy_and_rejects_nan(root):
    text = io.dumps({"a": np.float32(0.5), "b": np.arange(3), "c": (1, 2)})
    assert json.loads(text) == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2]}
    with pytest.raises(ValueError, match="not finite"):
        io.dumps({"a": math.nan})


def test_results_record_profile_and_inputs(root):
    nb.resolve_profile("fast")
    provenance.write_results("01_up", {"v": 1})
    up = provenance.load_results("01_up")
    assert up["_provenance"]["profile"] == "fast"
    provenance.write_results("02_down", {"w": 2})
    down = json.loads((root / "results" / "02_down.json").read_text())
    assert list(down["_provenance"]["inputs"]) == ["results/01_up.json"]


def test_stale_upstream_is_detected(root):
    nb.resolve_profile("full")
    provenance.write_results("01_up", {"v": 1})
    provenance.load_results("01_up")
    provenance.write_results("02_down", {"w": 2})
    provenance._INPUTS.clear()
    provenance.write_results("01_up", {"v": 999})          # upstream recomputed differently
    with pytest.raises(provenance.StaleResultError, match="01_up.json changed"):
        provenance.load_results("02_down")


def test_foreign_checkpoint_is_detected(root):
    ckpt = root / "results" / "checkpoints" / "bnn.pt"
    io.atomic_write_bytes(ckpt, b"weights A")
    nb.resolve_profile("full")
    provenance.record_input(ckpt)
    provenance.write_results("04_map", {"ok": True})
    io.atomic_write_bytes(ckpt, b"weights B")       # someone swapped the checkpoint
    with pytest.raises(provenance.StaleResultError, match="bnn.pt changed"):
        provenance.load_results("04_map")


def test_profile_mismatch_is_detected(root):
    nb.resolve_profile("fast")
    provenance.write_results("01_up", {"v": 1})
    nb.resolve_profile("full")
    with pytest.raises(provenance.StaleResultError, match="profile 'fast'"):
        provenance.load_results("01_up")


def test_results_without_provenance_are_rejected(root):
    io.atomic_write_json(root / "results" / "01_old.json", {"v": 1})
    with pytest.raises(provenance.StaleResultError, match="no _provenance"):
        provenance.load_results("01_old")


def test_reserved_key_and_non_dict(root):
    with pytest.raises(ValueError, match="_provenance"):
        provenance.write_results("x", {"_provenance": 1})
    with pytest.raises(ValueError, match="must be a dict"):
        provenance.write_results("x", [1, 2])


def test_profile_validation(monkeypatch):
    monkeypatch.delenv("IBNN_PROFILE", raising=False)
    monkeypatch.setattr(io, "_PROFILE", [])          # resolve_profile sets the process's profile: keep it local
    with pytest.raises(ValueError, match=r"profile='slow'.*\['full', 'fast'\]"):
        nb.resolve_profile("slow")
    monkeypatch.setenv("IBNN_PROFILE", "fast")
    assert nb.resolve_profile("full") == "fast"
    monkeypatch.setenv("IBNN_PROFILE", "turbo")
    with pytest.raises(ValueError, match="IBNN_PROFILE='turbo'"):
        nb.resolve_profile("full")


def test_torch_checkpoint_bytes_do_not_depend_on_the_file_name(root):
    import torch
    obj = {"w": torch.arange(6).reshape(2, 3), "meta": {"seed": 1}}
    a = io.atomic_torch_save(obj, root / "a.pt")
    b = io.atomic_torch_save(obj, root / "sub" / "other_name.pt")
    assert a.read_bytes() == b.read_bytes()
    back = torch.load(b, weights_only=True)
    assert torch.equal(back["w"], obj["w"]) and back["meta"] == {"seed": 1}


def test_atomic_files_get_ordinary_permissions(root):
    import os
    p = io.atomic_write_text(root / "x.txt", "hi")
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_paths_shown_are_relative(root):
    p = provenance.write_results("01_up", {"where": root / "figures" / "x.png",
                                           "code": io.REPO_ROOT / "ibnn" / "repro" / "io.py"})
    assert repr(p) == "RecordPath('results/01_up.json')"
    data = json.loads(p.read_text())
    assert data["where"] == "figures/x.png" and data["code"] == "ibnn/repro/io.py"


@pytest.fixture
def hand_run(tmp_path, monkeypatch):
    """A hand run: no IBNN_OUTPUT_ROOT, the scratch root in tmp."""
    for k in ("IBNN_OUTPUT_ROOT", "IBNN_READ_ROOT", "IBNN_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("IBNN_SCRATCH_DIR", str(tmp_path))
    monkeypatch.setattr(io, "_PROFILE", [])
    monkeypatch.setattr(provenance, "_INPUTS", {})
    return tmp_path


def test_default_root_is_scratch_and_full_reads_fall_back_to_the_committed_record(hand_run, monkeypatch):
    io.set_profile("full")
    assert io.output_root() == hand_run / "full" and not io.writes_record()
    committed = io.REPO_ROOT / "results" / "pipeline_stamps.json"
    assert io.input_path("results/pipeline_stamps.json") == committed            # read from the record
    mine = io.atomic_write_text(hand_run / "full" / "results" / "pipeline_stamps.json", "{}")
    assert io.input_path("results/pipeline_stamps.json") == mine                  # the scratch root's own first
    io.set_profile("fast")                                                        # fast: never the full record
    assert io.output_root() == hand_run / "fast"
    assert io.input_path("results/03_train_bnn.json") == hand_run / "fast" / "results" / "03_train_bnn.json"


def test_staged_reads_fall_back_to_the_root_being_built(tmp_path, monkeypatch):
    stage, built = tmp_path / "stage", tmp_path / "built"
    monkeypatch.setenv("IBNN_OUTPUT_ROOT", str(stage))
    monkeypatch.setenv("IBNN_READ_ROOT", str(built))
    monkeypatch.setattr(io, "_PROFILE", ["full"])
    monkeypatch.setattr(provenance, "_INPUTS", {})
    io.atomic_write_json(built / "results" / "01_up.json", {"v": 1, "_provenance": {"profile": "full"}})
    assert provenance.load_results("01_up")["v"] == 1
    assert provenance.inputs() == {"results/01_up.json": io.sha256_file(built / "results" / "01_up.json")}
    assert io.target_root() == built and not io.writes_record()
    monkeypatch.setenv("IBNN_READ_ROOT", str(io.REPO_ROOT))
    assert io.writes_record()


def test_written_files_are_remembered_relative(root, monkeypatch):
    monkeypatch.setattr(io, "_WRITTEN", {})
    io.atomic_write_text(root / "figures" / "a.txt", "x")
    assert io.written() == ["figures/a.txt"]
