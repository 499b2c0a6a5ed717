"""Training previews: the PNG grid (src, src->src, dst, dst->dst, dst->src) and the loss plot.

Kept apart from the loop so the UI can render the same grid from an `EvalBatch` it gets elsewhere.
The grid shows synthetic faces (reconstructions and swaps), so it carries the invisible watermark of the
model's workspace like every merged frame (`label_byproduct`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.provenance import label_byproduct


@dataclass
class EvalBatch:
    """A fixed held-out batch and the model's outputs on it, uint8 N x R x R x 3 RGB each."""

    src: np.ndarray
    dst: np.ndarray
    src_recon: np.ndarray
    dst_recon: np.ndarray
    swap: np.ndarray  # dst -> src
    iteration: int = 0


def to_u8(t: torch.Tensor) -> np.ndarray:
    return (t.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def write_preview(model_dir: Path, keep_history: bool, batch: EvalBatch) -> None:
    """PNG grid: one row per face, columns src, src->src, dst, dst->dst, dst->src; and the loss plot."""
    from facecast.media.images import write_image

    rows = [np.concatenate([batch.src[i], batch.src_recon[i], batch.dst[i], batch.dst_recon[i], batch.swap[i]], 1)
            for i in range(len(batch.src))]
    grid = label_byproduct(np.concatenate(rows, 0), near=model_dir)
    prev = model_dir / "previews"
    write_image(prev / "preview.png", grid)
    if keep_history:
        write_image(prev / "history" / f"{batch.iteration:08d}.png", grid)
    plot_losses(model_dir / "history.jsonl", prev / "loss.png")


def plot_losses(history: Path, out: Path) -> None:
    if not history.exists():
        return
    its, sl, dl = [], [], []
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        values = [row.get(k) for k in ("iter", "src_loss", "dst_loss")] if isinstance(row, dict) else [None]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):  # skip malformed lines
            its.append(values[0])
            sl.append(values[1])
            dl.append(values[2])
    if not its:
        return
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from facecast.media.images import atomic_write_with

    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.plot(its, sl, label="src", lw=0.8)
    ax.plot(its, dl, label="dst", lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    atomic_write_with(out, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
