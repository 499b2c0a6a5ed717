"""Training the segmenter: `xseg_pretrain` (no labels) and `xseg_train` (fine-tune on hand labels).

Why two phases: hand labels are the expensive part of XSeg. Pretraining needs none: the target is the
landmark hull of each aligned face (with a forehead extension) minus synthetic occluders pasted over it,
so the model learns "face skin, not the thing in front of it" from the workspace's own faces. Hand labels
(src and dst together) then fine-tune it to the user's idea of the face edge and to the real obstructions
of their footage; the summary says how many labelled faces it used and the held-out IoU before/after.

Both phases share one model folder (`model/<name>/`), are resumable (iterations per phase in state.json),
save atomically, log loss/IoU to history.jsonl, write preview grids, and on Ctrl-C save and stop cleanly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from facecast.compute import choose_device
from facecast.errors import FacecastError
from facecast.faces.facetype import get_face_type
from facecast.faces.aligned import list_aligned, read_aligned, read_meta
from facecast.imaging.hull import hull_mask
from facecast.masks.occluders import OccluderSettings, TexturePool, default_pool, occlude
from facecast.masks.polygons import rasterize, scale_polygons
from facecast.masks.xseg import store
from facecast.masks.xseg.augment import AugmentSettings, augment
from facecast.masks.xseg.model import XSegNet, XSegOptions, build_model, init_prior, preset_options
from facecast.media.images import write_image
from facecast.workspace import SIDES, Workspace

FOREHEAD = 0.3  # hull extension above the brows, x brow-to-chin distance (pretraining target)
# Occluder pixels are a few percent of a face but the whole point of the model: weight their BCE up.
OCCLUDER_WEIGHT = 4.0


@dataclass
class XSegTrainSettings:
    """Loop settings (architecture lives in XSegOptions)."""

    batch_size: int = 8
    lr: float = 1e-3
    save_every: int = 250
    preview_every: int = 250
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    heldout_max: int = 16
    augment: AugmentSettings = field(default_factory=AugmentSettings)


@dataclass
class FaceItem:
    path: Path
    image: np.ndarray  # R x R x 3 uint8 at the model resolution
    hull: np.ndarray  # R x R float32, hull + forehead
    label: np.ndarray | None  # R x R float32 from the hand-drawn polygons


# -- data ------------------------------------------------------------------------------------------------
def face_paths(ws: Workspace) -> list[Path]:
    out: list[Path] = []
    for side in SIDES:
        if ws.aligned(side).is_dir():
            out += list_aligned(ws.aligned(side))
    return out


def load_faces(paths: list[Path], opts: XSegOptions, labelled_only: bool) -> list[FaceItem]:
    """Read faces at the model's resolution; a face of another face type is one clear error."""
    r = opts.resolution
    items = []
    for p in paths:
        face = read_aligned(p)
        meta = face.meta
        if labelled_only and not meta.mask_polygons:
            continue
        if meta.face_type != opts.face_type:
            raise FacecastError(
                f"{p}: face type {meta.face_type} but the xseg model is for {opts.face_type}; "
                f"use a model for {meta.face_type} (--face-type {meta.face_type} with a new --model name)"
            )
        k = r / meta.size
        img = face.image if meta.size == r else cv2.resize(face.image, (r, r), interpolation=cv2.INTER_AREA)
        hull = hull_mask(meta.landmarks_array * k, r, forehead=FOREHEAD)
        label = rasterize(scale_polygons(meta.mask_polygons, k), r) if meta.mask_polygons else None
        items.append(FaceItem(p, np.ascontiguousarray(img), (hull > 0.5).astype(np.float32), label))
    return items


def _batches(items: list[FaceItem], use_labels: bool, batch: int, seed: int, pool: TexturePool,
             aug: AugmentSettings) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Endless augmented batches, produced on a background thread (OpenCV releases the GIL, so
    augmentation overlaps the training step instead of stalling it)."""
    q: queue.Queue = queue.Queue(maxsize=3)
    stop = threading.Event()

    def work() -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                idx = rng.integers(len(items), size=batch)
                xs, ys, ws = [], [], []
                for i in idx:
                    it = items[int(i)]
                    target = it.label if (use_labels and it.label is not None) else it.hull
                    x, y, occ = augment(it.image, target, rng, pool, aug)
                    xs.append(x)
                    ys.append(y)
                    ws.append(1.0 + OCCLUDER_WEIGHT * occ)
                _put((np.stack(xs), np.stack(ys), np.stack(ws)))
        except BaseException as exc:  # hand any failure to the training loop instead of hanging it
            _put(exc)

    def _put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def heldout_set(items: list[FaceItem], use_labels: bool, pool: TexturePool, seed: int = 1234
                ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed evaluation pairs: each face clean and with a fixed synthetic occluder pasted on it."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for it in items:
        target = it.label if (use_labels and it.label is not None) else it.hull
        xs.append(it.image)
        ys.append(target)
        occ = occlude(it.image, target, rng, pool, OccluderSettings(max_count=1), force=True)
        xs.append(occ.image)
        ys.append(occ.target)
    return np.stack(xs), np.stack(ys)


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean per-face IoU of masks thresholded at 0.5 (a face with both empty counts as 1)."""
    p, t = np.asarray(pred) > 0.5, np.asarray(target) > 0.5
    axes = tuple(range(1, p.ndim)) if p.ndim > 2 else None
    inter = (p & t).sum(axis=axes)
    union = (p | t).sum(axis=axes)
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))


# -- model -----------------------------------------------------------------------------------------------
def _to_tensor(x: np.ndarray, device: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).float()
    return t.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict(model: XSegNet, faces: np.ndarray, device: str = "cpu", batch: int = 16,
            amp_dtype: str | None = None) -> np.ndarray:
    """N x R x R x 3 uint8 -> N x R x R float32 probabilities."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(faces), batch):
        x = _to_tensor(faces[i : i + batch], device)
        with torch.autocast(device.split(":")[0], dtype=getattr(torch, amp_dtype), enabled=amp_dtype is not None) \
                if amp_dtype else _nullctx():
            logits = model(x)
        out.append(torch.sigmoid(logits.float())[:, 0].cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,) + faces.shape[1:3], np.float32)


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted BCE per pixel + soft Dice for the overlap (Dice keeps the face shape honest)."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


def open_model(model_dir: Path, preset: str | None, resolution: int | None, face_type: str | None,
               default_face_type: str, device: str) -> tuple[XSegNet, XSegOptions, store.XSegState, bool]:
    """Load an existing model (checking that explicit options agree) or build a new one."""
    if store.exists(model_dir):
        model, opts, state = store.load_model(model_dir, device)
        wanted = {"preset": preset, "resolution": resolution,
                  "face_type": get_face_type(face_type).name if face_type else None}
        bad = [f"{k} {getattr(opts, k)} (asked {v})" for k, v in wanted.items() if v is not None and getattr(opts, k) != v]
        if bad:
            raise FacecastError(
                f"{model_dir}: existing xseg model differs: {', '.join(bad)}; drop those options to resume "
                "or choose another --model name"
            )
        return model, opts, state, True
    opts = preset_options(preset or "default", resolution, face_type or default_face_type)
    return build_model(opts).to(device), opts, store.XSegState(), False


def _preview(path: Path, faces: np.ndarray, preds: np.ndarray, targets: np.ndarray, n: int = 4) -> None:
    """Rows of (face, predicted mask overlay, label) so a glance tells whether hands are cut out."""
    rows = []
    for f, p, t in list(zip(faces, preds, targets))[:n]:
        keep = (p > 0.5)[..., None]
        tint = f.astype(np.float32) * 0.35 + np.array([160, 0, 0], np.float32) * 0.65
        overlay = np.where(keep, f.astype(np.float32), tint).astype(np.uint8)
        label = np.repeat((t[..., None] * 255).astype(np.uint8), 3, 2)
        rows.append(np.hstack([f, overlay, label]))
    if rows:
        write_image(path, np.vstack(rows))


class _Display:
    """The live status line block (rich), same look as `facecast train`; silent when quiet."""

    def __init__(self, title: str, target: int, quiet: bool) -> None:
        self.title, self.target, self.quiet = title, target, quiet
        self.live = None

    def __enter__(self) -> "_Display":
        if not self.quiet:
            from rich.live import Live

            from facecast.console import err_console

            self.live = Live(console=err_console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def update(self, **fields: Any) -> None:
        if self.live is None:
            return
        from rich.table import Table

        table = Table(title=self.title, show_header=False)
        for k, v in fields.items():
            table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
        self.live.update(table)

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)


# -- the loop --------------------------------------------------------------------------------------------
def _run(ws: Workspace, model_name: str, phase: str, preset: str | None, target_iter: int,
         resolution: int | None, face_type: str | None, settings: XSegTrainSettings, quiet: bool,
         progress_cb: Any = None) -> dict[str, Any]:
    if target_iter < 0:
        raise FacecastError("--target-iter must be >= 0")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    dev = choose_device(settings.device)
    device = dev.device
    paths = face_paths(ws)
    if not paths:
        raise FacecastError(f"{ws.root}: no aligned faces in data_src/aligned or data_dst/aligned; run `facecast extract` first")
    metas = [(p, read_meta(p)) for p in paths]
    labelled = [p for p, m in metas if m.mask_polygons]
    if phase == "train" and not labelled:
        raise FacecastError(
            f"{ws.root}: no labelled faces in data_src/aligned or data_dst/aligned; label some (`facecast xseg labels "
            "export/import`) or train without labels with `facecast xseg pretrain`"
        )
    common = Counter(m.face_type for _, m in metas).most_common(1)[0][0]
    model_dir = ws.model(model_name)
    model, opts, state, resumed = open_model(model_dir, preset, resolution, face_type, common, device)
    use_labels = phase == "train"
    items = load_faces(labelled if use_labels else paths, opts, labelled_only=use_labels)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(items))
    n_hold = max(1, min(settings.heldout_max, len(items) // 5)) if len(items) >= 5 else 0
    hold = [items[i] for i in order[:n_hold]]
    train_items = [items[i] for i in order[n_hold:]]
    heldout_kind = "held-out faces" if n_hold else "occluded variants of the training faces (fewer than 5 faces)"
    hold = hold or train_items[: settings.heldout_max]
    if not resumed:  # a new model starts from the mean face mask of its training faces
        init_prior(model, np.mean([it.label if (use_labels and it.label is not None) else it.hull
                                   for it in train_items], axis=0))
    pool = default_pool()
    hx, hy = heldout_set(hold, use_labels, pool)
    hull_iou = iou(np.stack([it.hull for it in hold for _ in (0, 1)]), hy)

    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr if phase == "pretrain" else settings.lr * 0.5,
                                  weight_decay=1e-4)
    store.load_optimizer(model_dir, optimizer, phase)
    amp = dev.amp_dtype
    iou_before = iou(predict(model, hx, device, amp_dtype=amp), hy) if (resumed or phase == "train") else None
    start_iter = state.iterations.get(phase, 0)
    state.iterations.setdefault(phase, 0)
    if use_labels:
        state.labelled_faces = len(items)
    it = start_iter
    t0 = time.perf_counter()
    ema = None
    interrupted = False
    last_iou = iou_before
    batches = _batches(train_items, use_labels, settings.batch_size, settings.seed + start_iter, pool, settings.augment)
    (model_dir / "previews").mkdir(parents=True, exist_ok=True)

    def checkpoint(final: bool = False) -> float:
        preds = predict(model, hx, device, amp_dtype=amp)
        score = iou(preds, hy)
        state.heldout_iou[phase] = score
        store.save_checkpoint(model_dir, model, opts, state, optimizer, phase)
        store.append_history(model_dir, {"phase": phase, "iter": it, "heldout_iou": score, "time": time.time()})
        _preview(model_dir / "previews" / f"{phase}_{it:06d}.png", hx[1::2], preds[1::2], hy[1::2])
        _preview(model_dir / "previews" / "latest.png", hx[1::2], preds[1::2], hy[1::2])
        return score

    title = f"xseg {phase}: {model_name} ({opts.preset}, {opts.resolution}px {opts.face_type}, {device})"
    try:
        with _Display(title, target_iter, quiet) as display:
            model.train()
            while it < target_iter:
                xb, yb, wb = next(batches)
                x = _to_tensor(xb, device)
                y = torch.from_numpy(yb).to(device)[:, None]
                wt = torch.from_numpy(wb).to(device)[:, None]
                with torch.autocast(device.split(":")[0], dtype=getattr(torch, amp), enabled=True) if amp else _nullctx():
                    logits = model(x)
                loss = _loss(logits, y, wt)
                if not torch.isfinite(loss):
                    raise FacecastError(f"xseg {phase}: loss became NaN/inf at iteration {it}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                it += 1
                state.iterations[phase] = it
                value = float(loss.detach())
                ema = value if ema is None else 0.95 * ema + 0.05 * value
                if it % settings.log_every == 0:
                    store.append_history(model_dir, {"phase": phase, "iter": it, "loss": value, "time": time.time()})
                if it % settings.save_every == 0 and it < target_iter:
                    last_iou = checkpoint()
                rate = (it - start_iter) / max(1e-9, time.perf_counter() - t0)
                display.update(iteration=f"{it}/{target_iter}", loss=ema, heldout_iou=last_iou if last_iou is not None else "-",
                               it_per_s=rate, eta_s=int((target_iter - it) / max(rate, 1e-9)))
                if progress_cb is not None:
                    progress_cb(it, value)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        batches.close()
    elapsed = time.perf_counter() - t0
    iou_after = checkpoint(final=True)
    return {
        "model": model_name,
        "phase": phase,
        "model_dir": str(model_dir),
        "preset": opts.preset,
        "resolution": opts.resolution,
        "face_type": opts.face_type,
        "device": device,
        "iterations": it,
        "trained_now": it - start_iter,
        "target_iter": target_iter,
        "resumed": resumed,
        "interrupted": interrupted,
        "faces": len(paths),
        "labelled_faces": len(items) if use_labels else 0,
        "trained_on": len(train_items),
        "heldout": f"{len(hold)} {heldout_kind}",
        "heldout_iou_hull": round(hull_iou, 4),
        "heldout_iou_before": None if iou_before is None else round(iou_before, 4),
        "heldout_iou_after": round(iou_after, 4),
        "it_per_s": round((it - start_iter) / elapsed, 3) if elapsed > 0 and it > start_iter else None,
        "seconds": round(elapsed, 1),
    }


def xseg_pretrain(ws: Workspace, model_name: str = "xseg", preset: str | None = None, target_iter: int = 2000,
                  resolution: int | None = None, face_type: str | None = None,
                  settings: XSegTrainSettings | None = None, quiet: bool = False,
                  on_step: Any = None) -> dict[str, Any]:
    """No-label pretraining on every aligned face of src and dst: target = hull + forehead - occluders.

    `on_step(iteration, loss)` is called after every step (the UI's hook; raising KeyboardInterrupt
    from it stops training the way Ctrl-C does)."""
    return _run(ws, model_name, "pretrain", preset, target_iter, resolution, face_type,
                settings or XSegTrainSettings(), quiet, on_step)


def xseg_train(ws: Workspace, model_name: str = "xseg", preset: str | None = None, target_iter: int = 500,
               resolution: int | None = None, face_type: str | None = None,
               settings: XSegTrainSettings | None = None, quiet: bool = False,
               on_step: Any = None) -> dict[str, Any]:
    """Fine-tune (or train from scratch) on the hand-labelled faces of src and dst together."""
    return _run(ws, model_name, "train", preset, target_iter, resolution, face_type,
                settings or XSegTrainSettings(), quiet, on_step)
