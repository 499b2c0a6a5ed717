"""Shipped demo weights: where they live, how they are installed into a workspace and exported.

The asset folder `facecast/assets/demo_model/` holds `model.safetensors` (float16, to stay under the
20 MB package budget), `options.json`, `state.json` (iteration count) and `training.json` (how they
were made). Installing converts the weights back to float32 and writes a normal model folder without
optimizer state: the trainer then resumes at the shipped iteration with a fresh optimizer (it logs an
"optimizer-reset" event), which is what a short live fine-tune wants anyway.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.media.images import atomic_write_bytes, atomic_write_with

ASSET_FILES = ("model.safetensors", "options.json", "state.json")
MAX_BYTES = 20 * 1024 * 1024


def asset_dir() -> Path:
    return Path(str(resources.files("facecast") / "assets" / "demo_model"))


def shipped_weights() -> Path | None:
    """The asset folder when it holds a complete set of weights, else None."""
    folder = asset_dir()
    return folder if all((folder / f).is_file() for f in ASSET_FILES) else None


def install(model_dir: Path, source: Path | None = None) -> dict[str, Any]:
    """Copy shipped weights into `model_dir` as float32 (replacing any model there); returns state.json."""
    from safetensors.torch import load_file, save_file

    source = source or shipped_weights()
    if source is None:
        raise FacecastError(f"no demo weights in {asset_dir()}: run scripts/train_demo_weights.py or use --from-scratch")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(source / "model.safetensors")).items()}
    atomic_write_with(model_dir / "model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    for name in ("options.json", "state.json"):
        atomic_write_bytes(model_dir / name, (source / name).read_bytes())
    return json.loads((source / "state.json").read_text())


def export(model_dir: Path, dest: Path, training: dict[str, Any]) -> int:
    """Write a trained model folder's weights (float16), options and state to `dest`; returns bytes."""
    from safetensors.torch import load_file, save_file

    dest.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(model_dir / "model.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items() if k.startswith("model.")}
    atomic_write_with(dest / "model.safetensors", lambda tmp: save_file(half, str(tmp)))
    state = json.loads((model_dir / "state.json").read_text())
    keep = {k: state[k] for k in ("iteration", "lr_scale", "rollbacks", "pretrain") if k in state}
    atomic_write_bytes(dest / "state.json", json.dumps(keep, indent=2).encode())
    atomic_write_bytes(dest / "options.json", (model_dir / "options.json").read_bytes())
    atomic_write_bytes(dest / "training.json", json.dumps(training, indent=2).encode())
    for name in (*ASSET_FILES, "training.json"):
        (dest / name).chmod(0o644)  # package data: readable by everyone (temp files are created 0600)
    size = (dest / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        raise FacecastError(f"{dest / 'model.safetensors'} is {size / 1e6:.1f} MB, over the 20 MB budget: use smaller dims")
    return size
