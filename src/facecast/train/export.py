"""`facecast export --model NAME --format onnx`: the dst->src path as ONNX, checked against PyTorch.

Exports `SwapPath` (dst faces NCHW float [0,1] -> swapped face, its mask, dst's mask) with a dynamic
batch axis, then runs the same random batch through PyTorch and onnxruntime and refuses the file if
they differ by more than `tolerance` (default 1e-4). Uses torch's TorchScript-based exporter
(`dynamo=False`): the torch.export path needs `onnxscript`, which is not a dependency.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.errors import FacecastError
from facecast.media.images import atomic_write_bytes
from facecast.train.archs.base import SwapPath
from facecast.train.predict import load_swap_model

FORMATS = ("onnx",)


@dataclass
class ExportResult:
    path: str
    format: str
    resolution: int
    face_type: str
    arch: str
    max_abs_diff: float
    size_bytes: int


def export_model(model_dir: Path, fmt: str = "onnx", out: Path | None = None, tolerance: float = 1e-4,
                 opset: int = 17) -> ExportResult:
    """Write `<model_dir>/export/<name>.onnx` (or `out`) and verify it against PyTorch."""
    if fmt.lower() not in FORMATS:
        raise FacecastError(f"unknown export format {fmt!r}: choose {', '.join(FORMATS)}")
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
        import onnxruntime as ort
    except ImportError as err:
        raise FacecastError(f"ONNX export needs the `onnx` and `onnxruntime` packages ({err.name} missing): pip install onnx") from None
    model_dir = Path(model_dir)
    model, options, _ = load_swap_model(model_dir)
    model.float().eval()
    path = SwapPath(model).eval()
    r = options.resolution
    example = torch.rand(2, 3, r, r, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            path, (example,), buf, dynamo=False, opset_version=opset, input_names=["dst"],
            output_names=["face", "src_mask", "dst_mask"],
            dynamic_axes={n: {0: "batch"} for n in ("dst", "face", "src_mask", "dst_mask")},
        )
    data = buf.getvalue()
    check = torch.rand(3, 3, r, r, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = [t.numpy() for t in path(check)]
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"dst": check.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
    if not diff <= tolerance:
        raise FacecastError(f"ONNX export of {model_dir.name} differs from PyTorch by {diff:.2e} (> {tolerance:g}); not written")
    dest = Path(out) if out else model_dir / "export" / f"{model_dir.name}.onnx"
    atomic_write_bytes(dest, data, fsync=True)
    return ExportResult(str(dest), "onnx", r, options.face_type, options.arch, diff, len(data))
