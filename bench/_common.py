"""Shared by every benchmark: machine info and writing bench/results/<name>.json.

Results carry the machine they were measured on, so two runs can be compared as ratios."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name")), "")
        flags = next((l.split(":", 1)[1].split() for l in cpu.splitlines() if l.startswith("flags")), [])
        info["cpu_model"] = model
        info["cpu_bf16"] = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        info["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parent
        ).stdout.strip()
    except OSError:
        pass
    return info


def write_results(name: str, results: dict) -> Path:
    """Write bench/results/<name>.json (with machine info) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), "results": results}, indent=2, default=str))
    return path


def print_table(rows: list[dict], title: str = "") -> None:
    """A plain fixed-width table on stdout."""
    if title:
        print(title)
    if not rows:
        print("(no rows)")
        return
    keys = list(rows[0])
    widths = {k: max(len(str(k)), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print("  ".join(str(k).ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(_fmt(r.get(k)).ljust(widths[k]) for k in keys))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
