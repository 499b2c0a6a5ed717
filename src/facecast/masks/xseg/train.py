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
from facecast.trainloop import Budget, Display, Loop, LoopStats, StepOut
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
    max_seconds: float | None = None  # wall-time budget of one run (set-up included), as `facecast train`'s
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


@dataclass
class _Session:
    """Everything one xseg training run works on, set up by `_prepare`."""

    model_dir: Path
    model: XSegNet
    opts: XSegOptions
    state: store.XSegState
    resumed: bool
    device: str
    amp: str | None
    phase: str
    use_labels: bool
    faces: int
    items: list[FaceItem]
    train_items: list[FaceItem]
    hold: list[FaceItem]
    heldout_kind: str
    hx: np.ndarray
    hy: np.ndarray
    hull_iou: float
    optimizer: torch.optim.Optimizer | None = None


def _select_faces(ws: Workspace, phase: str) -> tuple[list[Path], list[Path], str]:
    """(all face paths, labelled ones, the most common face type), or one clear error."""
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
    return paths, labelled, Counter(m.face_type for _, m in metas).most_common(1)[0][0]


def _prepare(ws: Workspace, model_name: str, phase: str, preset: str | None, resolution: int | None,
             face_type: str | None, settings: XSegTrainSettings) -> _Session:
    """Open or create the model, read the faces, split off held-out faces, build the optimizer."""
    dev = choose_device(settings.device)
    # a new model's initial weights (and any torch randomness in training) follow the run's seed, not
    # whatever the process drew before: the same faces and settings train the same segmenter
    torch.manual_seed(settings.seed)
    paths, labelled, common = _select_faces(ws, phase)
    model_dir = ws.model(model_name)
    model, opts, state, resumed = open_model(model_dir, preset, resolution, face_type, common, dev.device)
    use_labels = phase == "train"
    items = load_faces(labelled if use_labels else paths, opts, labelled_only=use_labels)
    order = np.random.default_rng(settings.seed).permutation(len(items))
    n_hold = max(1, min(settings.heldout_max, len(items) // 5)) if len(items) >= 5 else 0
    hold = [items[i] for i in order[:n_hold]]
    train_items = [items[i] for i in order[n_hold:]]
    heldout_kind = "held-out faces" if n_hold else "occluded variants of the training faces (fewer than 5 faces)"
    hold = hold or train_items[: settings.heldout_max]
    if not resumed:  # a new model starts from the mean face mask of its training faces
        init_prior(model, np.mean([it.label if (use_labels and it.label is not None) else it.hull
                                   for it in train_items], axis=0))
    hx, hy = heldout_set(hold, use_labels, default_pool())
    hull_iou = iou(np.stack([it.hull for it in hold for _ in (0, 1)]), hy)
    if dev.device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    s = _Session(model_dir, model, opts, state, resumed, dev.device, dev.amp_dtype, phase, use_labels, len(paths),
                 items, train_items, hold, heldout_kind, hx, hy, hull_iou)
    s.optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr if phase == "pretrain" else settings.lr * 0.5,
                                    weight_decay=1e-4)
    store.load_optimizer(model_dir, s.optimizer, phase)
    return s


class _Steps:
    """XSeg's step for the loop skeleton: augmented batches from a background thread, weighted BCE + Dice."""

    def __init__(self, s: _Session, settings: XSegTrainSettings, start_iter: int) -> None:
        self.s = s
        self.batches = _batches(s.train_items, s.use_labels, settings.batch_size, settings.seed + start_iter,
                                default_pool(), settings.augment)

    def step(self) -> StepOut:
        s = self.s
        t0 = time.perf_counter()
        xb, yb, wb = next(self.batches)
        t1 = time.perf_counter()
        x = _to_tensor(xb, s.device)
        y = torch.from_numpy(yb).to(s.device)[:, None]
        wt = torch.from_numpy(wb).to(s.device)[:, None]
        with torch.autocast(s.device.split(":")[0], dtype=getattr(torch, s.amp), enabled=True) if s.amp else _nullctx():
            logits = s.model(x)
        loss = _loss(logits, y, wt)
        if not torch.isfinite(loss):
            raise FacecastError(f"xseg {s.phase}: loss became NaN/inf at iteration "
                                f"{s.state.iterations[s.phase]}; lower the learning rate")
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        return StepOut({"loss": float(loss.detach())}, len(xb), time.perf_counter() - t0, t1 - t0)

    def close(self) -> None:
        self.batches.close()


def _checkpoint(s: _Session, it: int) -> float:
    """Held-out IoU, an atomic save, a history line and preview grids; returns the IoU."""
    preds = predict(s.model, s.hx, s.device, amp_dtype=s.amp)
    score = iou(preds, s.hy)
    s.state.heldout_iou[s.phase] = score
    store.save_checkpoint(s.model_dir, s.model, s.opts, s.state, s.optimizer, s.phase)
    store.append_history(s.model_dir, {"phase": s.phase, "iter": it, "heldout_iou": score, "time": time.time()})
    _preview(s.model_dir / "previews" / f"{s.phase}_{it:06d}.png", s.hx[1::2], preds[1::2], s.hy[1::2])
    _preview(s.model_dir / "previews" / "latest.png", s.hx[1::2], preds[1::2], s.hy[1::2])
    return score


def _make_loop(s: _Session, steps: _Steps, settings: XSegTrainSettings, budget: Budget, title: str,
               quiet: bool, progress_cb: Any) -> Loop:
    """The skeleton with XSeg's hooks: history every log_every, checkpoint every save_every, the UI hook."""
    start = s.state.iterations[s.phase]
    loop = Loop(steps.step, start, budget, Display(title, budget.target_iter, quiet))
    ema: list[float] = []

    def on_iteration(it: int, out: StepOut) -> None:
        s.state.iterations[s.phase] = it
        value = out.losses["loss"]
        ema[:] = [value if not ema else 0.95 * ema[0] + 0.05 * value]
        loop.status["ema"] = ema[0]
        if it % settings.log_every == 0:
            store.append_history(s.model_dir, {"phase": s.phase, "iter": it, "loss": value, "time": time.time()})
        if progress_cb is not None:
            progress_cb(it, value)

    def save(it: int) -> None:
        if it < budget.target_iter:  # the final checkpoint follows the loop anyway
            loop.status["heldout_iou"] = _checkpoint(s, it)

    loop.on_iteration = on_iteration
    loop.every("save", save, iters=settings.save_every)
    return loop


# -- the run ---------------------------------------------------------------------------------------------
def _run(ws: Workspace, model_name: str, phase: str, preset: str | None, target_iter: int,
         resolution: int | None, face_type: str | None, settings: XSegTrainSettings, quiet: bool,
         progress_cb: Any = None) -> dict[str, Any]:
    if target_iter < 0:
        raise FacecastError("--target-iter must be >= 0")
    # target 0 trains nothing here (the skeleton's 0 means "no target"); a time budget may end it sooner
    budget = Budget(target_iter=target_iter, max_iters=0 if target_iter == 0 else None,
                    max_seconds=settings.max_seconds)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    s = _prepare(ws, model_name, phase, preset, resolution, face_type, settings)
    iou_before = iou(predict(s.model, s.hx, s.device, amp_dtype=s.amp), s.hy) if (s.resumed or phase == "train") else None
    start_iter = s.state.iterations.setdefault(phase, 0)
    if s.use_labels:
        s.state.labelled_faces = len(s.items)
    (s.model_dir / "previews").mkdir(parents=True, exist_ok=True)
    title = f"xseg {phase}: {model_name} ({s.opts.preset}, {s.opts.resolution}px {s.opts.face_type}, {s.device})"
    steps = _Steps(s, settings, start_iter)
    t0 = time.perf_counter()
    s.model.train()
    try:
        stats = _make_loop(s, steps, settings, budget, title, quiet, progress_cb).run()
    finally:
        steps.close()
    elapsed = time.perf_counter() - t0
    return _summary(s, model_name, stats, start_iter, target_iter, iou_before, _checkpoint(s, stats.iteration), elapsed)


def _summary(s: _Session, model_name: str, stats: LoopStats, start_iter: int, target_iter: int,
             iou_before: float | None, iou_after: float, elapsed: float) -> dict[str, Any]:
    it = stats.iteration
    return {
        "model": model_name,
        "phase": s.phase,
        "model_dir": str(s.model_dir),
        "preset": s.opts.preset,
        "resolution": s.opts.resolution,
        "face_type": s.opts.face_type,
        "device": s.device,
        "iterations": it,
        "trained_now": it - start_iter,
        "target_iter": target_iter,
        "stopped": stats.stopped,
        "resumed": s.resumed,
        "interrupted": stats.stopped == "interrupted",
        "faces": s.faces,
        "labelled_faces": len(s.items) if s.use_labels else 0,
        "trained_on": len(s.train_items),
        "heldout": f"{len(s.hold)} {s.heldout_kind}",
        "heldout_iou_hull": round(s.hull_iou, 4),
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
