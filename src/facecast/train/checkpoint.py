"""Atomic, consistent checkpoints in safetensors (no pickle: a model folder may come from anyone).

A save writes `model.safetensors`, `optimizer.safetensors`, `state.json` and `options.json` together.
Each file alone could be made atomic by temp + rename, but a kill between two renames would leave a
new model with an old optimizer. So a save is a small journal:

1. write all files into `.pending/`, fsync each file and the folder;
2. rename `.pending/` -> `.commit/` (one atomic rename: from here on the save counts as done);
3. move each file from `.commit/` into the model folder (atomic renames), fsync the folder;
4. remove `.commit/`.

`recover()` runs before every load: a `.commit/` is rolled forward (step 3 again), a `.pending/` is
an unfinished save and is deleted. So after a kill -9 at any moment the folder holds exactly the last
completed save.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from facecast.errors import FacecastError

FILES = ("model.safetensors", "optimizer.safetensors", "state.json", "options.json")
PENDING, COMMIT = ".pending", ".commit"

# Called with the phase name ("pending-written", "committed") during a save; tests use it to kill -9
# a save mid-way. A no-op in normal runs.
_phase_hook: Callable[[str], None] = lambda phase: None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms without directory fds (Windows): rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def recover(model_dir: Path) -> str | None:
    """Finish or discard an interrupted save; returns what was done (for the log) or None."""
    model_dir = Path(model_dir)
    commit, pending = model_dir / COMMIT, model_dir / PENDING
    done = None
    if commit.is_dir():
        for name in FILES:
            if (commit / name).exists():
                os.replace(commit / name, model_dir / name)
        _fsync_dir(model_dir)
        shutil.rmtree(commit, ignore_errors=True)
        done = "rolled forward an interrupted save"
    if pending.exists():
        shutil.rmtree(pending, ignore_errors=True)
        done = done or "discarded an unfinished save"
    return done


def save_checkpoint(model_dir: Path, weights: dict[str, torch.Tensor], optim: dict[str, torch.Tensor],
                    optim_meta: dict[str, str], state: dict[str, Any], options_json: str) -> None:
    """Write one consistent checkpoint (see the module docstring for the protocol)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    recover(model_dir)
    pending = model_dir / PENDING
    pending.mkdir()
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, pending / FILES[0])
        save_file({k: v.detach().contiguous().cpu() for k, v in optim.items()}, pending / FILES[1], metadata=optim_meta)
        (pending / FILES[2]).write_text(json.dumps(state, indent=2))
        (pending / FILES[3]).write_text(options_json)
        for name in FILES:
            _fsync_file(pending / name)
        _fsync_dir(pending)
    except OSError as err:
        shutil.rmtree(pending, ignore_errors=True)
        raise FacecastError(f"cannot save model to {model_dir}: {err.strerror}") from None
    _phase_hook("pending-written")
    os.replace(pending, model_dir / COMMIT)
    _fsync_dir(model_dir)
    _phase_hook("committed")
    recover(model_dir)


def has_checkpoint(model_dir: Path, repair: bool = True) -> bool:
    """Whether a completed save exists (a committed-but-unmoved save counts; `repair` finishes it)."""
    model_dir = Path(model_dir)
    if repair and model_dir.is_dir():
        recover(model_dir)
    if (model_dir / COMMIT / FILES[0]).exists():
        return True
    return (model_dir / FILES[0]).exists() and (model_dir / FILES[2]).exists()


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise FacecastError(f"{path}: not found") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise FacecastError(f"{path}: not a readable safetensors file ({err}); restore a backup from backups/") from None


def read_state(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / FILES[2]
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FacecastError(f"{path}: corrupt state file; restore a backup from backups/") from None
    numbers = {"iteration": int, "rollbacks": int, "lr_scale": (int, float)}
    if not isinstance(state, dict) or any(
        k in state and (not isinstance(state[k], t) or isinstance(state[k], bool) or state[k] < 0) for k, t in numbers.items()
    ):
        raise FacecastError(f"{path}: malformed state file (iteration, rollbacks, lr_scale); restore a backup from backups/")
    return state


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
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError) as err:
        raise FacecastError(f"{path}: not a readable safetensors file ({err}); restore a backup from backups/") from None
    return tensors, meta


def backup(model_dir: Path, iteration: int, keep: int) -> Path:
    """Copy the committed checkpoint to backups/<iter>/ and keep only the newest `keep` backups."""
    model_dir = Path(model_dir)
    root = model_dir / "backups"
    dest = root / f"{iteration:08d}"
    tmp = root / f".{iteration:08d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in FILES:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    olds = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in olds[: max(0, len(olds) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)
    return dest
