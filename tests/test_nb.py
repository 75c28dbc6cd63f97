"""Notebook set-up (`nb.start`): every parameter checked (a misspelled one is an error with a did-you-mean), the
quick profile applied, the device request checked before any work; the run's manifest (recorded dependencies);
progress bars that go to the pipeline's terminal, never into a notebook."""
import json

import pytest

from ibnn import params
from ibnn.repro import device, io, manifest, nb, progress


@pytest.fixture
def ns(monkeypatch, tmp_path):
    monkeypatch.delenv("IBNN_PROFILE", raising=False)
    monkeypatch.delenv("IBNN_DEVICE", raising=False)
    monkeypatch.setenv("IBNN_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setattr(io, "_PROFILE", [])
    return {"profile": "full", "n_chips": 20, "seed": 0}


RULES = dict(n_chips=nb.Int(2, 1000), seed=nb.Int(0))


def test_start_checks_and_writes_back_the_parameters(ns):
    assert nb.start(ns, "02_circuit_models", **RULES) == "full" and io.current_profile() == "full"
    ns["n_chips"] = 1
    with pytest.raises(ValueError, match=r"n_chips=1 is out of range"):
        nb.start(ns, "02_circuit_models", **RULES)


def test_misspelled_parameter_is_an_error_with_a_hint(ns):
    ns["n_chip"] = 2                              # papermill -p n_chip 2 injects a global the notebook lacks
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['n_chip'\] for notebook 02_circuit_models "
                                         r"\(did you mean n_chip -> n_chips\?\); accepted: \['n_chips', 'profile', "
                                         r"'seed'\]"):
        nb.start(ns, "02_circuit_models", **RULES)


def test_quick_profile_applies_the_declared_overrides(ns, monkeypatch):
    monkeypatch.setenv("IBNN_PROFILE", "fast")
    ns = {"profile": "full", "n_images": 10000}
    assert nb.start(ns, "04_map_to_array", n_images=nb.Int(1, 10000)) == "fast"
    assert ns["n_images"] == 2000 and ns["profile"] == "fast"          # notebooks/profiles/fast.toml


def test_device_request_is_checked_in_start(ns, monkeypatch):
    monkeypatch.setenv("IBNN_DEVICE", "tpu")
    with pytest.raises(device.DeviceError, match=r"IBNN_DEVICE='tpu' is not accepted; accepted: 'cpu', 'cuda'"):
        nb.start(ns, "02_circuit_models", **RULES)
    monkeypatch.setenv("IBNN_DEVICE", "cpu")
    assert device.check_request() == "cpu"
    monkeypatch.delenv("IBNN_DEVICE")
    assert device.check_request() is None


def test_cuda_request_on_a_cpu_build_fails_without_importing_torch(monkeypatch):
    if device._torch_cuda_build() is not None:
        pytest.skip("torch here is a CUDA build")
    monkeypatch.setenv("IBNN_DEVICE", "cuda")
    with pytest.raises(device.DeviceError, match="CPU-only build"):
        device.check_request()


def test_manifest_records_modules_parameters_and_package_data(tmp_path):
    from ibnn.cost import macros
    manifest.watch()
    params.reset_used()
    P = params.load()
    P["vdd"]
    macros.load_macros()
    m = manifest.manifest()
    assert "ibnn/repro/nb.py" in m["modules"] and "ibnn/cost/macros.py" in m["modules"]
    assert m["params"] == ["vdd"] and "ibnn/data_tables/imc_macros.csv" in m["package_data"]
    assert not any(p.startswith("ibnn/params_data") for p in m["package_data"])    # recorded per entry instead
    manifest.write(str(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text())["params"] == ["vdd"]


def test_progress_goes_to_the_pipeline_terminal(tmp_path, monkeypatch):
    target = tmp_path / "tty"
    monkeypatch.setenv("IBNN_PROGRESS_TO", str(target))
    monkeypatch.setenv("IBNN_NOTEBOOK", "03_train_bnn")
    monkeypatch.setenv("PAPERMILL_EXECUTION", "1")
    monkeypatch.setattr(progress, "_TARGET", {})
    for _ in progress.progress(range(3), desc="train [128] digital", mininterval=0):
        pass
    text = target.read_text()
    assert "03_train_bnn: train [128] digital" in text and "3/3" in text
    assert not progress.progress(range(3), disable=True).n               # disable=True: never a bar
    monkeypatch.delenv("IBNN_PROGRESS_TO")
    assert progress.quiet()                    # under papermill without a terminal: no bars
