"""Choosing the compute device and the precision that pays on it, with the reason recorded.

Why measure instead of assume: bf16 autocast on a CPU was ~2x faster on a machine with native bf16
(AVX512-BF16 / AMX) and ~17x slower on an AVX2-only one. Why measure with care: timed once under load,
the same machine answered 0.28x, 0.59x, 1.5x and 0.62x in four runs. So `compare_precisions` warms
both modes up, interleaves repeated timings (fp32 and bf16 alternate, so a load spike hits both), takes
medians and picks bf16 only with a clear margin (>= 1.2x). Training measures a real step of the model
being trained and stores the choice with the model (the trainer re-measures only when asked); the
micro-kernel probe below is only the default for inference and `doctor`. On CUDA, bf16 where the card
supports it, else fp16 with a grad scaler.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

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


# bf16 must be at least this much faster than fp32 to be chosen: a smaller gain is within the noise of
# a shared machine, and a wrong bf16 choice can cost 17x. (It was 1.3: the cpu preset's step probed at
# 1.28x on a quiet AVX-512-BF16 machine and was left in fp32, while it then trained at 1.6x in bf16;
# the medians of interleaved runs already absorb the load noise the margin was for.)
BF16_MARGIN = 1.2
PRECISIONS = {"fp32": "fp32", "float32": "fp32", "bf16": "bfloat16", "bfloat16": "bfloat16",
              "fp16": "float16", "float16": "float16"}


@dataclass(frozen=True)
class PrecisionChoice:
    """Which precision a model trains in and why; stored with the model so a resume keeps it."""

    precision: str  # "fp32", "bfloat16" or "float16"
    reason: str
    device_type: str  # "cpu", "cuda", "mps": a choice holds only on the kind of device it was made for
    ratio: float | None = None  # measured fp32 time / bf16 time, when measured
    measured_at: float | None = None  # unix time of the measurement

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "PrecisionChoice | None":
        try:
            return cls(str(data["precision"]), str(data["reason"]), str(data["device_type"]),
                       None if data.get("ratio") is None else float(data["ratio"]),
                       None if data.get("measured_at") is None else float(data["measured_at"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def normalise_precision(name: str | None) -> str | None:
    """"auto"/None -> None; fp32|bf16|fp16 (or the long names) -> "fp32"|"bfloat16"|"float16"."""
    if name is None or str(name).lower() == "auto":
        return None
    try:
        return PRECISIONS[str(name).lower()]
    except KeyError:
        raise FacecastError(f"precision {name!r}: choose auto, fp32, bf16 or fp16") from None


def compare_precisions(step: Callable[[bool], Any], repeats: int = 3, margin: float = BF16_MARGIN
                       ) -> tuple[bool, str, float]:
    """Time `step(bf16)` both ways: (use_bf16, reason, fp32/bf16 speed ratio).

    One warm-up each (allocations, kernel selection), then `repeats` rounds whose order alternates
    (fp32 first, then bf16 first), so a load change during the measurement hits both modes; the
    medians decide. A bf16 warm-up over 3x slower than fp32's ends the measurement early (an AVX2-only
    CPU, where each bf16 step can cost many seconds)."""

    def timed(bf16: bool) -> float:
        start = time.perf_counter()
        step(bf16)
        return time.perf_counter() - start

    warm32, warm16 = timed(False), timed(True)
    if warm16 > 3 * warm32:
        ratio = warm32 / warm16
        return False, f"bf16 measured {ratio:.2f}x of fp32 speed at warm-up (far slower): fp32", ratio
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for bf16 in ((False, True) if r % 2 == 0 else (True, False)):
            times[bf16].append(timed(bf16))
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    ratio = fp32 / bf16 if bf16 > 0 else 0.0
    detail = f"median of {repeats} interleaved runs: fp32 {fp32 * 1000:.0f} ms, bf16 {bf16 * 1000:.0f} ms"
    if ratio >= margin:
        return True, f"bf16 measured {ratio:.2f}x faster than fp32 ({detail}): bf16", ratio
    return False, f"bf16 measured {ratio:.2f}x of fp32 speed, below the {margin:g}x needed ({detail}): fp32", ratio


@functools.lru_cache(maxsize=1)
def cpu_bf16_pays() -> tuple[bool, str]:
    """A small conv forward+backward timed both ways (inference's and doctor's default; training
    measures its own model instead, see the module docstring)."""
    torch = _torch()
    try:
        conv = torch.nn.Sequential(
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.LeakyReLU(0.1), torch.nn.Conv2d(64, 32, 3, padding=1)
        )
        x = torch.randn(4, 32, 48, 48)

        def step(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = conv(x).float().mean()
            y.backward()

        use, why, _ = compare_precisions(step, repeats=3)
    except Exception as exc:  # an exotic CPU build without bf16 kernels
        return False, f"bf16 probe failed ({type(exc).__name__}); fp32"
    return use, f"CPU micro-probe: {why}"
