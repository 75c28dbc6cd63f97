"""Checkpoints of trained networks: atomic, byte-reproducible, loaded with weights_only=True and checked against
the metadata the caller expects; the lookup of notebook 03's checkpoint for a profile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..repro import io, provenance
from .binary import BNN
from .folded import DigitalReadout, FoldedBNN, FoldedLayer, VoteReadout, fold

FORMAT = "ibnn-bnn-v1"


REQUIRED_META = ("topology", "size", "bits", "seed", "data_checksums", "readout")


def _plain(v):
    """Metadata as plain python (lists, not tuples/arrays) so that comparisons and weights_only loads work."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if torch.is_tensor(v) or isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_checkpoint(path, model, meta: dict | None = None):
    """Write a checkpoint atomically: the folded network, the trained state (if `model` is a BNN) and metadata.

    model: a trained `BNN` (folded here; its state_dict is kept too) or a `FoldedBNN`.
    meta must give (or `model` must carry) topology, size, bits, seed, data_checksums and readout.
    """
    path = Path(path)
    if isinstance(model, BNN):
        folded = fold(model, meta)
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        config = {"hidden": list(model.hidden), "readout": model.readout_kind, "n_in": model.n_in,
                  "bits": model.bits, "n_classes": model.n_classes}
    elif isinstance(model, FoldedBNN):
        folded = FoldedBNN(model.layers, model.readout, {**model.meta, **(meta or {})})
        trained, config = None, None
    else:
        raise ValueError(f"model of type {type(model).__name__} is not accepted; pass a BNN or a FoldedBNN")
    full_meta = _plain(folded.meta)
    missing = [k for k in REQUIRED_META if k not in full_meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}; required: {list(REQUIRED_META)}")
    ro = folded.readout
    readout = ({"kind": "digital", "weight": ro.weight.clone(), "bias": ro.bias.clone()}
               if isinstance(ro, DigitalReadout) else
               {"kind": "vote", "votes": int(ro.votes), "n_classes": int(ro.n_classes)})
    obj = {"format": FORMAT, "meta": full_meta,
           "layers": [{"weight": l.weight.clone(), "theta": l.theta.clone()} for l in folded.layers],
           "readout": readout, "trained": trained, "config": config}
    io.atomic_torch_save(obj, path)
    return path


def _load_raw(path, expect):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]      # torch's first sentence only
        raise ValueError(f"{io.relative(path)} is not a readable checkpoint ({type(exc).__name__}: {first}): it is "
                         f"truncated or corrupt; restore it (git checkout -- {io.relative(path)}) or rerun the "
                         f"notebook that wrote it (make figures FORCE=03_train_bnn)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not an ibnn BNN checkpoint (format "
                         f"{obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r}, "
                         f"expected {FORMAT!r})")
    meta = obj["meta"]
    for key, want in (expect or {}).items():
        if key not in meta:
            raise ValueError(f"{path}: checkpoint field {key!r} expected {_plain(want)!r}, found nothing "
                             f"(fields: {sorted(meta)})")
        if _plain(want) != meta[key]:
            raise ValueError(f"{path}: checkpoint field {key!r} expected {_plain(want)!r}, found {meta[key]!r}")
    return obj


def load_checkpoint(path, expect: dict | None = None) -> FoldedBNN:
    """The FoldedBNN in `path` (torch.load weights_only=True); every key of `expect` must equal its metadata."""
    obj = _load_raw(path, expect)
    layers = [FoldedLayer(l["weight"], l["theta"]) for l in obj["layers"]]
    ro = obj["readout"]
    readout = (DigitalReadout(ro["weight"], ro["bias"]) if ro["kind"] == "digital"
               else VoteReadout(ro["votes"], ro["n_classes"]))
    return FoldedBNN(layers, readout, obj["meta"])


def load_trained(path, expect: dict | None = None) -> BNN:
    """The trained torch `BNN` (eval mode) in `path`; ValueError if it holds only a folded network."""
    obj = _load_raw(path, expect)
    if obj.get("trained") is None:
        raise ValueError(f"{path}: holds only a folded network, no trained state")
    cfg = obj["config"]
    model = BNN(cfg["hidden"], cfg["readout"], n_in=cfg["n_in"], bits=cfg["bits"], n_classes=cfg["n_classes"])
    model.load_state_dict(obj["trained"])
    return model.eval()


def find_checkpoint(profile: str = "full", name: str | None = None):
    """Path of the trained BNN checkpoint in results/checkpoints: `name` if given, else bnn_<profile>.pt,
    bnn.pt (full) / bnn_fast.pt (fast), else the only bnn*.pt there. Read through `io.input_path` (a hand run
    finds the committed checkpoint). FileNotFoundError says what to run."""
    rel = Path("results/checkpoints")
    if name:
        p = Path(name) if str(name).startswith("/") else io.input_path(rel / name)
        if not p.exists():
            raise FileNotFoundError(f"checkpoint={name!r}: {io.relative(p)} does not exist; run notebook 03 first "
                                    f"(make figures)")
        return p
    order = [f"bnn_{profile}.pt"] + (["bnn_fast.pt", "bnn.pt"] if profile == "fast" else ["bnn.pt"])
    for n in order:
        if io.input_path(rel / n).exists():
            return io.input_path(rel / n)
    d = io.input_path(rel)
    cands = [p for p in sorted(d.glob("bnn*.pt"))] if d.exists() else []
    if profile != "fast":
        cands = [p for p in cands if "fast" not in p.name]
    if len(cands) == 1:
        return cands[0]
    raise FileNotFoundError(f"no trained checkpoint for profile {profile!r} in {io.relative(d)} (looked for "
                            f"{order}, found {[p.name for p in cands]}): run notebooks 01-03 first (make figures)")


def load_network(path, expect: dict | None = None):
    """The FoldedBNN in `path`, recorded as an input of the current notebook (provenance)."""
    folded = load_checkpoint(path, expect=expect)
    provenance.record_input(path)
    return folded
