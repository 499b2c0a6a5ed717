"""The contract merge codes against: load a trained model folder and swap batches of aligned dst faces.

    predictor = load_predictor(ws.model("alice"), device="auto")
    out = predictor.predict(faces)        # faces: N x R x R x 3 uint8 RGB, R = predictor.resolution
    out.face      # N,R,R,3 float32 [0,1]  dst->src swap
    out.src_mask  # N,R,R   float32 [0,1]  learned mask of the predicted face ("learned-prd")
    out.dst_mask  # N,R,R   float32 [0,1]  learned mask of the dst face ("learned-dst")

Faces must be aligned with the model's `face_type` at its `resolution`; anything else is refused with
one line (a silent resize would hand merge a wrongly framed face).

Deterministic by construction, so a resumed merge writes exactly the frames an uninterrupted one would,
in any process (measured before: the same frame differed by up to 63/255 between two runs):
- Precision is fixed, never measured: fp32 on CPU. Training picks bf16 on CPU by *timing* it
  (compute.cpu_bf16_pays), and under load that timing flips between processes; bf16 and fp32 swaps of a
  trained model differ visibly. GPUs keep their bf16/fp16 autocast (a capability, not a timing).
- Batch composition does not matter: every forward pass has exactly `batch_size` faces (the last chunk
  is padded with zeros), because oneDNN/cuDNN pick kernels by batch size and different kernels round
  differently (measured ~6e-8 between a face alone and in a batch of 9; bitwise equal at a fixed size,
  whatever the face's position in the batch).
- Fixed intra-op threads while predicting (PREDICT_THREADS), deterministic algorithms (cuDNN benchmark
  off, deterministic kernels), eval mode, no random state: the model's swap path draws no random numbers.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.errors import FacecastError
from facecast.train import checkpoint
from facecast.train.archs.base import SwapModel
from facecast.train.archs.registry import build_model
from facecast.train.options import ModelOptions

WEIGHT_PREFIX = "model."
PREDICT_THREADS = max(1, min(8, os.cpu_count() or 1))
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (read at CUDA start)
CPU_BATCH = 8  # merge predicts 8 frames per chunk: one fixed-size pass per chunk on CPU, little padding


@contextmanager
def deterministic(threads: int = PREDICT_THREADS):
    """Fixed threads and deterministic kernels for the duration of a prediction; restores the caller's."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_cudnn_det = torch.backends.cudnn.deterministic
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_cudnn_det


@dataclass
class PredictOutput:
    face: np.ndarray  # N,R,R,3 float32 [0,1]
    src_mask: np.ndarray  # N,R,R float32 [0,1]
    dst_mask: np.ndarray  # N,R,R float32 [0,1]


def load_swap_model(model_dir: Path) -> tuple[SwapModel, ModelOptions, dict]:
    """Build the model an options.json describes and load its committed weights (CPU, eval mode)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FacecastError(f"model folder {model_dir} not found; train it first with `facecast train`")
    checkpoint.recover(model_dir)
    options = ModelOptions.load(model_dir / "options.json")
    if not (model_dir / "model.safetensors").exists():
        raise FacecastError(f"{model_dir}: no saved weights yet (model.safetensors); train it first")
    tensors = checkpoint.load_tensors(model_dir / "model.safetensors")
    weights = {k[len(WEIGHT_PREFIX):]: v for k, v in tensors.items() if k.startswith(WEIGHT_PREFIX)}
    model = build_model(options)
    checkpoint.load_weights_into(model, weights, str(model_dir / "model.safetensors"))
    model.eval()
    return model, options, checkpoint.read_state(model_dir)


class Predictor:
    """A loaded model ready to swap batches of aligned dst faces (no_grad, autocast where it pays)."""

    def __init__(self, model: SwapModel, options: ModelOptions, name: str, device: str = "auto",
                 batch_size: int | None = None) -> None:
        from facecast.compute import choose_device

        choice = choose_device(device)
        self.device = choice.device
        on_cpu = self.device.split(":")[0] == "cpu"
        # fp32 on CPU: the CPU bf16 choice is a timing and may differ between processes (module docstring)
        self.amp_dtype = getattr(torch, choice.amp_dtype) if choice.amp_dtype and not on_cpu else None
        self.precision = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32"
        self.model = model.to(self.device)
        if choice.is_cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.name = name
        self.resolution = options.resolution
        self.face_type = options.face_type
        self.arch = options.arch
        self.batch_size = int(batch_size or (CPU_BATCH if on_cpu else 16))

    def predict(self, faces: np.ndarray) -> PredictOutput:
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        r = self.resolution
        if faces.ndim != 4 or faces.shape[1:] != (r, r, 3):
            raise FacecastError(
                f"model {self.name} takes N x {r} x {r} x 3 aligned faces ({self.face_type}); got shape {faces.shape}"
            )
        if faces.dtype != np.uint8:
            raise FacecastError(f"model {self.name} takes uint8 RGB faces; got {faces.dtype}")
        outs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        dev_type = self.device.split(":")[0]
        amp = torch.autocast(dev_type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        n_batch = self.batch_size
        with deterministic(), torch.no_grad(), amp:
            for i in range(0, len(faces), n_batch):
                chunk = faces[i : i + n_batch]
                n = len(chunk)
                if n < n_batch:  # always the same batch size: per-face output independent of batching
                    chunk = np.concatenate([chunk, np.zeros((n_batch - n, *chunk.shape[1:]), np.uint8)])
                x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)
                x = x.permute(0, 3, 1, 2).float().div_(255.0)
                face, fmask, dmask = self.model.swap(x)
                outs.append((
                    face[:n].float().permute(0, 2, 3, 1).cpu().numpy(),
                    fmask[:n].float()[:, 0].cpu().numpy(),
                    dmask[:n].float()[:, 0].cpu().numpy(),
                ))
        if not outs:
            empty = np.zeros((0, r, r), np.float32)
            return PredictOutput(np.zeros((0, r, r, 3), np.float32), empty, empty.copy())
        face, sm, dm = (np.clip(np.concatenate(p), 0, 1).astype(np.float32) for p in zip(*outs))
        return PredictOutput(face, sm, dm)


def load_predictor(model_dir: Path, device: str = "auto") -> Predictor:
    """Load `model/<name>/` for inference (see the module docstring for the contract)."""
    model, options, _ = load_swap_model(Path(model_dir))
    return Predictor(model, options, Path(model_dir).name, device)
