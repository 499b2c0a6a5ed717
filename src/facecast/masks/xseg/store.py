"""What an XSeg model folder holds: options.json, model.safetensors, optimizer.safetensors, state.json,
history.jsonl, previews/.

The folder itself (one atomic commit of all files, recovery after a kill, a sha256 per weight file
checked on load, backups) is `facecast.modelstore`, the same store as the SAEHD trainer's; this module
only says which tensors and which state go in. No pickle anywhere: weights and optimizer moments are
safetensors, everything else JSON.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from facecast import modelstore
from facecast.errors import FacecastError
from facecast.masks.xseg.model import XSegNet, XSegOptions, build_model

OPTIONS = "options.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
STATE = "state.json"
HISTORY = "history.jsonl"


@dataclass
class XSegState:
    """Progress of a model: iterations per phase ("pretrain", "train"), and an id that names this
    model's weights so `xseg apply` can tell masks it already wrote from masks of other weights."""

    model_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    iterations: dict[str, int] = field(default_factory=lambda: {"pretrain": 0, "train": 0})
    labelled_faces: int = 0
    heldout_iou: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.iterations.values())

    @property
    def version(self) -> str:
        return f"{self.model_id}:{self.total}"


def exists(model_dir: Path) -> bool:
    return modelstore.exists(model_dir, OPTIONS) and modelstore.exists(model_dir, WEIGHTS)


def read_options(model_dir: Path) -> XSegOptions:
    path = model_dir / OPTIONS
    if not path.is_file():
        raise FacecastError(f"{model_dir}: no xseg model here; train one with `facecast xseg pretrain`")
    try:
        return XSegOptions.from_dict(json.loads(path.read_text()), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FacecastError(f"{path}: corrupt options file; delete the model folder and train again") from None


def read_state(model_dir: Path) -> XSegState:
    path = model_dir / STATE
    if not path.is_file():
        return XSegState()
    try:
        data = json.loads(path.read_text())
        return XSegState(
            model_id=str(data["model_id"]),
            iterations={k: int(v) for k, v in data["iterations"].items()},
            labelled_faces=int(data.get("labelled_faces", 0)),
            heldout_iou={k: float(v) for k, v in data.get("heldout_iou", {}).items()},
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise FacecastError(f"{path}: corrupt state file; delete it to restart the iteration count") from None


def load_model(model_dir: Path, device: str = "cpu") -> tuple[XSegNet, XSegOptions, XSegState]:
    """Build the network from options.json and load its weights; a mismatch is one clear line."""
    modelstore.recover(model_dir)
    opts = read_options(model_dir)
    model = build_model(opts)
    path = model_dir / WEIGHTS
    if not path.is_file():
        raise FacecastError(f"{model_dir}: no weights ({WEIGHTS}); train the model first")
    try:
        tensors = st_load(modelstore.read_verified(model_dir, WEIGHTS))
    except (SafetensorError, ValueError) as err:
        raise FacecastError(f"{path}: unreadable weights ({err}); restore a backup or train again") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad_shape = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or bad_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise FacecastError(f"{path}: weights do not match options.json ({'; '.join(parts)})")
    model.load_state_dict(tensors)
    return model.to(device), opts, read_state(model_dir)


def save_checkpoint(model_dir: Path, model: XSegNet, opts: XSegOptions, state: XSegState,
                    optimizer: torch.optim.Optimizer | None = None, phase: str = "") -> None:
    """One atomic save of options, weights, optimizer moments (when given) and state."""
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    files = {OPTIONS: json.dumps(opts.to_dict(), indent=2).encode(),
             WEIGHTS: st_save(weights, metadata={"format": "pt"})}
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer)
        meta["phase"] = phase
        files[OPTIMIZER] = st_save(tensors, metadata=meta)
    data = {"model_id": state.model_id, "iterations": state.iterations, "labelled_faces": state.labelled_faces,
            "heldout_iou": state.heldout_iou}
    files[STATE] = json.dumps(data, indent=2).encode()
    modelstore.commit(model_dir, files)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{idx}.{key}"] = t.detach().to("cpu").contiguous()
    return tensors, {"param_groups": json.dumps(sd["param_groups"])}


def load_optimizer(model_dir: Path, optimizer: torch.optim.Optimizer, phase: str) -> bool:
    """Restore optimizer moments saved in the same phase; False (fresh optimizer) otherwise."""
    if not (model_dir / OPTIMIZER).is_file():
        return False
    data = modelstore.read_verified(model_dir, OPTIMIZER)  # a damaged file is an error, not a silent reset
    meta = modelstore.safetensors_metadata(data)
    if meta.get("phase") != phase:
        return False
    try:
        state: dict[int, dict[str, Any]] = {}
        for key, value in st_load(data).items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    except (SafetensorError, KeyError, ValueError, json.JSONDecodeError):
        return False  # optimizer moments are a speed-up, not a must: start them fresh
    return True


def append_history(model_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line per logged step (see `modelstore.append_history`)."""
    modelstore.append_history(model_dir, record)
