"""Using a trained segmenter: masks into aligned-face metadata, removal, overlays, and the callable
merge codes against.

THE CONTRACT for merge (and anything else that wants masks at run time):
    seg = load_segmenter(model_dir, device="auto")
    seg.resolution, seg.face_type          # what to cut the faces as
    masks = seg(faces)                     # N x R x R x 3 uint8 RGB -> N x R x R float32 in [0, 1]
Faces of another size are refused with one clear line (cut them at `seg.resolution` as `seg.face_type`).

`xseg_apply` is resumable: each face records which weights made its mask (`extra["xseg"]["version"]`,
model id + iteration), so a rerun skips faces already done by the same weights and redoes the rest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from facecast.compute import choose_device
from facecast.console import track
from facecast.errors import FacecastError
from facecast.faces.aligned import list_aligned, read_aligned, read_meta, update_meta
from facecast.masks.xseg import store
from facecast.masks.xseg.train import predict
from facecast.media.images import write_image
from facecast.workspace import Workspace


class Segmenter:
    """A loaded XSeg model as a plain function of face batches."""

    def __init__(self, model: torch.nn.Module, opts: Any, state: store.XSegState, device: str,
                 amp_dtype: str | None, batch_size: int = 16, name: str = "") -> None:
        self.model = model.eval()
        self.options = opts
        self.resolution: int = opts.resolution
        self.face_type: str = opts.face_type
        self.version: str = state.version
        self.device = device
        self.amp_dtype = amp_dtype
        self.batch_size = batch_size
        self.name = name

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        r = self.resolution
        if faces.ndim != 4 or faces.shape[1:] != (r, r, 3):
            raise FacecastError(
                f"xseg model {self.name or ''} takes {r}x{r} RGB {self.face_type} faces, got an array of shape "
                f"{tuple(faces.shape)}; cut the faces at {r}px as {self.face_type}"
            )
        if faces.dtype != np.uint8:
            faces = np.clip(faces, 0, 255).astype(np.uint8)
        return predict(self.model, faces, self.device, self.batch_size, self.amp_dtype)


def load_segmenter(model_dir: str | Path, device: str = "auto", batch_size: int = 16) -> Segmenter:
    """Load `model/<name>/` for inference (see the module docstring for the contract)."""
    model_dir = Path(model_dir)
    dev = choose_device(device)
    model, opts, state = store.load_model(model_dir, dev.device)
    if dev.device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    # fp32 on CPU: the CPU bf16 choice is a timing that can differ between processes, and merge needs the
    # same mask for the same face in every run (see train/predict.py)
    amp = None if dev.device == "cpu" else dev.amp_dtype
    return Segmenter(model, opts, state, dev.device, amp, batch_size, model_dir.name)


def _check_faces(paths: list[Path], seg: Segmenter, resize: bool | None) -> list[Any]:
    """Validate every face before writing any (nothing half-applied on a bad faceset).

    A face of another size is scaled to the segmenter's (`resize` None or True): a mask is
    low-frequency, so a 64 px segmenter's mask scaled up to a 512 px face loses nothing a mask needs.
    Only `resize=False` (`--no-resize`) refuses, for a user who wants every mask at full resolution."""
    metas = []
    for p in paths:
        meta = read_meta(p)
        if meta.face_type != seg.face_type:
            raise FacecastError(
                f"{p}: face type {meta.face_type}, but xseg model {seg.name} was trained for {seg.face_type}; "
                f"train one for {meta.face_type} (`facecast xseg pretrain --face-type {meta.face_type} --model NAME`)"
            )
        if meta.size != seg.resolution and resize is False:
            raise FacecastError(
                f"{p}: face is {meta.size}px, but xseg model {seg.name} was trained at {seg.resolution}px; "
                f"drop --no-resize to scale faces to the model, or train with --resolution {meta.size}"
            )
        metas.append(meta)
    return metas


def xseg_apply(ws: Workspace, side: str, model_name: str = "xseg", batch_size: int = 16, force: bool = False,
               resize: bool | None = None, device: str = "auto", quiet: bool = False,
               faces: list[str] | None = None) -> dict[str, Any]:
    """Write each face's XSeg mask into its metadata (compressed PNG), batched and resumable.

    `resize`: None (default) scales faces of another size to the segmenter's and says so in the
    summary; True forces that; False refuses such faces (see `_check_faces`). `faces` (aligned file
    names) limits the run to those faces: one shard of a cluster run."""
    folder = ws.aligned(side)
    paths = list_aligned(folder)
    if not paths:
        raise FacecastError(f"{folder}: no aligned faces; run `facecast extract` first")
    if faces is not None:
        wanted = set(faces)
        paths = [p for p in paths if p.name in wanted]
    seg = load_segmenter(ws.model(model_name), device, batch_size)
    metas = _check_faces(paths, seg, resize)
    todo = [p for p, m in zip(paths, metas)
            if force or not m.xseg_mask or (m.extra.get("xseg") or {}).get("version") != seg.version]
    r = seg.resolution
    t0 = time.perf_counter()
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    done = 0
    for chunk in track(chunks, total=len(chunks), description=f"xseg apply {side}", quiet=quiet):
        faces = [read_aligned(p) for p in chunk]
        imgs = np.stack([f.image if f.meta.size == r else cv2.resize(f.image, (r, r), interpolation=cv2.INTER_AREA)
                         for f in faces])
        masks = seg(imgs)
        for face, mask in zip(faces, masks):
            face.meta.set_xseg_mask(mask)
            face.meta.extra["xseg"] = {"model": model_name, "version": seg.version, "resolution": r}
            update_meta(face.path, face.meta)
            done += 1
    elapsed = time.perf_counter() - t0
    return {"side": side, "model": model_name, "faces": len(paths), "applied": done,
            "skipped": len(paths) - len(todo), "faces_per_s": round(done / elapsed, 1) if done and elapsed > 0 else None,
            "device": seg.device, "resized": _resize_note(metas, seg)}


def _resize_note(metas: list[Any], seg: Segmenter) -> str:
    sizes = sorted({m.size for m in metas if m.size != seg.resolution})
    if not sizes:
        return f"no: faces are {seg.resolution}px like the segmenter"
    n = sum(1 for m in metas if m.size != seg.resolution)
    return (f"yes: {n} face(s) of {', '.join(f'{s}px' for s in sizes)} scaled to the segmenter's "
            f"{seg.resolution}px; each mask is read back at its face's size (a mask is low-frequency; "
            "--no-resize refuses instead)")


def xseg_remove(ws: Workspace, side: str, quiet: bool = False) -> dict[str, Any]:
    """Drop the XSeg masks of a side (labels are kept)."""
    paths = list_aligned(ws.aligned(side))
    removed = 0
    for p in track(paths, description=f"xseg remove {side}", quiet=quiet):
        meta = read_meta(p)
        if meta.xseg_mask or "xseg" in meta.extra:
            meta.set_xseg_mask(None)
            meta.extra.pop("xseg", None)
            update_meta(p, meta)
            removed += 1
    return {"side": side, "faces": len(paths), "removed": removed}


def overlay(face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Face with the masked-out part tinted red and the mask edge drawn: what is kept is obvious."""
    keep = (mask > 0.5)[..., None]
    tint = face.astype(np.float32) * 0.35 + np.array([160, 0, 0], np.float32) * 0.65
    out = np.where(keep, face.astype(np.float32), tint).astype(np.uint8)
    contours, _ = cv2.findContours((mask > 0.5).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def xseg_preview(ws: Workspace, side: str, out: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Write face | overlay images for every face that has an XSeg mask."""
    paths = list_aligned(ws.aligned(side))
    out = Path(out) if out else ws.data(side) / "xseg_preview"
    written = 0
    for p in track(paths, description=f"xseg preview {side}", quiet=quiet):
        face = read_aligned(p)
        mask = face.meta.get_xseg_mask()
        if mask is None:
            continue
        write_image(out / f"{p.stem}.jpg", np.hstack([face.image, overlay(face.image, mask)]), jpeg_quality=90)
        written += 1
    if not written:
        raise FacecastError(f"{ws.aligned(side)}: no face has an xseg mask; run `facecast xseg apply -w {ws.root} {side}`")
    return {"side": side, "faces": len(paths), "written": written, "out": str(out)}
