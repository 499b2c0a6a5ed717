"""SAEHD checkpoints in a model folder: which tensors and state go into a save, and back.

The folder itself (atomic multi-file commit, recovery after a kill, sha256 per weight file, backups)
is `facecast.modelstore`, shared with the XSeg segmenter. A save writes `model.safetensors`,
`optimizer.safetensors`, `state.json` and `options.json` together, so a kill can never leave a new
model with an old optimizer. No pickle: a model folder may come from anyone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from facecast import modelstore
from facecast.compute import PrecisionChoice
from facecast.errors import FacecastError
from facecast.modelstore import COMMIT, PENDING, recover  # noqa: F401  (the folder protocol, re-exported)

FILES = ("model.safetensors", "optimizer.safetensors", "state.json", "options.json")

# Called with the phase name ("pending-written", "committed") during a save; tests use it to kill -9
# a save mid-way. A no-op in normal runs.
_phase_hook: Callable[[str], None] = lambda phase: None


def _tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def save_checkpoint(model_dir: Path, weights: dict[str, torch.Tensor], optim: dict[str, torch.Tensor],
                    optim_meta: dict[str, str], state: dict[str, Any], options_json: str) -> None:
    """Write one consistent checkpoint (see `facecast.modelstore` for the protocol)."""
    files = {
        FILES[0]: _tensor_bytes(weights),
        FILES[1]: _tensor_bytes(optim, optim_meta or None),
        FILES[2]: json.dumps(state, indent=2).encode(),
        FILES[3]: options_json.encode(),
    }
    modelstore.commit(Path(model_dir), files, lambda phase: _phase_hook(phase))


def has_checkpoint(model_dir: Path, repair: bool = True) -> bool:
    """Whether a completed save exists (a committed-but-unmoved save counts; `repair` finishes it)."""
    model_dir = Path(model_dir)
    if repair and model_dir.is_dir():
        recover(model_dir)
    if (model_dir / COMMIT / FILES[0]).exists():
        return True
    return (model_dir / FILES[0]).exists() and (model_dir / FILES[2]).exists()


def _parse(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise FacecastError(f"{path}: not a readable safetensors file ({err}); "
                            f"{modelstore._restore_advice(path.parent)}") from None


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file in a model folder, after checking its recorded sha256."""
    path = Path(path)
    if not path.exists():
        raise FacecastError(f"{path}: not found")
    return _parse(modelstore.read_verified(path.parent, path.name), path)


def read_state(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / FILES[2]
    state = modelstore.read_json(model_dir, FILES[2])
    if state is None:
        return {}
    numbers = {"iteration": int, "rollbacks": int, "lr_scale": (int, float)}
    if not isinstance(state, dict) or any(
        k in state and (not isinstance(state[k], t) or isinstance(state[k], bool) or state[k] < 0) for k, t in numbers.items()
    ):
        raise FacecastError(f"{path}: malformed state file (iteration, rollbacks, lr_scale); restore a backup from backups/")
    return state


def stored_precision(model_dir: Path) -> PrecisionChoice | None:
    """The precision the model trains in and why (decided at its first run, see train/precision.py)."""
    data = read_state(model_dir).get("precision")
    return PrecisionChoice.from_dict(data) if data else None


def load_weights_into(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with one clear line naming missing, unexpected and wrongly-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shaped = sorted(k for k in set(own) & set(weights) if tuple(own[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or shaped:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = []
        if shaped:
            k = shaped[0]
            parts.append(f"{len(shaped)} shape mismatch(es) e.g. {k} {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}: {few(shaped)}")
        if missing:
            parts.append(f"{len(missing)} missing: {few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {few(unexpected)}")
        raise FacecastError(
            f"{source} does not fit this architecture ({'; '.join(parts)}); "
            "it was saved with other arch/dims options: keep its options.json or train a new model name"
        )
    module.load_state_dict(weights, strict=True)


# -- optimizer state <-> flat tensors ------------------------------------------------------------------
def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.state.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    meta = {f"{prefix}.param_groups": json.dumps(groups), f"{prefix}.scalars": json.dumps(scalars)}
    return tensors, meta


def unflatten_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor],
                        meta: dict[str, str]) -> bool:
    """Restore optimizer state saved by flatten_optimizer; False when nothing was saved for `prefix`."""
    if f"{prefix}.param_groups" not in meta:
        return False
    groups = json.loads(meta[f"{prefix}.param_groups"])
    scalars = json.loads(meta.get(f"{prefix}.scalars", "{}"))
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for name, value in tensors.items():
        if name.startswith(head):
            idx, key = name[len(head):].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for name, value in scalars.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    current = opt.state_dict()
    if len(groups) != len(current["param_groups"]) or any(
        len(a["params"]) != len(b["params"]) for a, b in zip(groups, current["param_groups"])
    ):
        return False  # optimizer changed between runs (e.g. another optimizer option): start it fresh
    for g, cur in zip(groups, current["param_groups"]):
        g["params"] = cur["params"]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError):
        return False
    return True


def read_optimizer_file(model_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(model_dir) / FILES[1]
    if not path.exists():
        return {}, {}
    data = modelstore.read_verified(path.parent, path.name)
    return _parse(data, path), modelstore.safetensors_metadata(data)


def backup(model_dir: Path, iteration: int, keep: int) -> Path:
    """Copy the committed checkpoint to backups/<iter>/ and keep only the newest `keep` backups."""
    return modelstore.backup(model_dir, iteration, keep)
