"""Atomic writes, results provenance and stale-input detection."""
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
    monkeypatch.setattr(provenance, "_PROFILE", [])
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
