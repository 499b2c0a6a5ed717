"""Choosing the compute device and the precision that pays on it.

Why probe instead of assume: bf16 autocast on a CPU was ~2x faster on a machine with native bf16
(AVX512-BF16 / AMX) and ~17x slower on an AVX2-only one. So on CPU we time a small conv both ways once
per process and use bf16 only when it wins clearly. On CUDA, bf16 where the card supports it, else fp16
with a grad scaler.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from facecast.errors import FacecastError


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # torch device string: "cpu", "cuda:0", "mps"
    reason: str  # why this device was chosen, for `doctor` and training logs
    amp_dtype: str | None  # "bfloat16" / "float16" / None (fp32)
    amp_reason: str

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def _torch():
    import torch

    return torch


def cuda_unavailable_reason() -> str:
    torch = _torch()
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} has CUDA {torch.version.cuda} but no usable GPU/driver"
    return ""


def choose_device(requested: str = "auto") -> DeviceChoice:
    """Resolve `auto|cpu|cuda|cuda:N|mps` to a device, or raise a one-line error if unusable."""
    torch = _torch()
    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return _cuda_choice("cuda:0", "CUDA GPU found")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return DeviceChoice("mps", "Apple MPS available", None, "fp32 on MPS")
        why = cuda_unavailable_reason() or "no GPU"
        return _cpu_choice(f"no GPU: {why}")
    if requested == "cpu":
        return _cpu_choice("requested")
    if requested.startswith("cuda"):
        why = cuda_unavailable_reason()
        if why:
            raise FacecastError(f"device {requested} is not usable: {why}")
        index = int(requested.split(":", 1)[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise FacecastError(
                f"device {requested} is not usable: only {torch.cuda.device_count()} GPU(s) visible"
            )
        return _cuda_choice(f"cuda:{index}", "requested")
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise FacecastError("device mps is not usable: this torch build or machine has no MPS")
        return DeviceChoice("mps", "requested", None, "fp32 on MPS")
    raise FacecastError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps")


def _cuda_choice(device: str, reason: str) -> DeviceChoice:
    torch = _torch()
    name = torch.cuda.get_device_name(device)
    if torch.cuda.is_bf16_supported():
        return DeviceChoice(device, f"{reason}: {name}", "bfloat16", "GPU supports bf16")
    return DeviceChoice(device, f"{reason}: {name}", "float16", "GPU lacks bf16; fp16 + grad scaling")


def _cpu_choice(reason: str) -> DeviceChoice:
    use, why = cpu_bf16_pays()
    return DeviceChoice("cpu", reason, "bfloat16" if use else None, why)


@functools.lru_cache(maxsize=1)
def cpu_bf16_pays() -> tuple[bool, str]:
    """Time a small conv forward+backward in fp32 and under bf16 autocast; bf16 only if >=1.3x faster."""
    torch = _torch()
    try:
        conv = torch.nn.Sequential(
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.LeakyReLU(0.1), torch.nn.Conv2d(64, 32, 3, padding=1)
        )
        x = torch.randn(4, 32, 48, 48)

        def run(bf16: bool) -> float:
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    y = conv(x).float().mean()
                y.backward()
                best = min(best, time.perf_counter() - start)
            return best

        run(False)
        fp32 = run(False)
        bf16 = run(True)
    except Exception as exc:  # an exotic CPU build without bf16 kernels
        return False, f"bf16 probe failed ({type(exc).__name__}); fp32"
    ratio = fp32 / bf16 if bf16 > 0 else 0.0
    if ratio >= 1.3:
        return True, f"CPU bf16 autocast measured {ratio:.1f}x faster than fp32"
    return False, f"CPU bf16 autocast measured {ratio:.2f}x of fp32 speed; using fp32"
