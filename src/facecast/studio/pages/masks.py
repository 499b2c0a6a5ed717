"""Masks page API (the XSeg editor): a face's include/exclude polygons, saving them into its metadata,
the current segmenter's mask as an overlay, and XSeg training started from the page as a studio job.

Everything goes through the masks stage: polygons are checked by `masks.polygons.validate_polygons`
(the format `xseg train` reads), masks come from `masks.xseg.apply.load_segmenter` (loaded once per
model version and kept in `app.state.caches`), training is `xseg_train` / `xseg_pretrain`, stopped the
Ctrl-C way (the stage saves its checkpoint and preview).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from facecast.errors import FacecastError
from facecast.faces.aligned import read_aligned, read_meta, update_meta
from facecast.masks.polygons import validate_polygons
from facecast.masks.xseg import store
from facecast.media.images import encode_image
from facecast.studio.pages.faces import LISTINGS, face_file, face_folder, fail, submit_job, workspace

router = APIRouter(prefix="/api/masks", tags=["masks"])
_LOCK = threading.Lock()  # read-modify-write of a face's metadata
_MODEL_LOCK = threading.Lock()  # loading a segmenter (a second request waits for the first load)


class PolygonsBody(BaseModel):
    name: str
    polygons: list[dict[str, Any]]


class TrainBody(BaseModel):
    model: str = "xseg"
    phase: str = "train"  # "train" (on the hand labels) or "pretrain" (no labels)
    target_iter: int = 500
    preset: str | None = None
    batch_size: int = 8
    save_every: int = 50  # checkpoint + preview every this many iterations (the page shows the preview)


def _model_dir(request: Request, name: str) -> Path:
    if not name or Path(name).name != name or name.startswith("."):
        raise HTTPException(403, f"{name!r} is not a model name")
    return workspace(request).model(name)


@router.get("/models")
def models(request: Request) -> dict[str, Any]:
    """XSeg models of the workspace (folders of model/ holding an xseg options.json)."""
    out = []
    root = workspace(request).models
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not store.exists(d):
            continue
        try:
            opts, state = store.read_options(d), store.read_state(d)
        except FacecastError:
            continue
        out.append({"name": d.name, "resolution": opts.resolution, "face_type": opts.face_type,
                    "iterations": state.iterations, "version": state.version,
                    "has_preview": (d / "previews" / "latest.png").is_file()})
    return {"models": out}


@router.get("/{side}/face/{name}")
def face(request: Request, side: str, name: str) -> dict[str, Any]:
    path = face_file(request, side, name)
    meta = read_meta(path)
    return {"name": path.name, "size": meta.size, "face_type": meta.face_type,
            "polygons": meta.mask_polygons or [], "has_xseg_mask": bool(meta.xseg_mask),
            "landmarks": meta.landmarks, "version": path.stat().st_mtime_ns}


@router.post("/{side}/save")
def save(request: Request, side: str, body: PolygonsBody) -> dict[str, Any]:
    """Store the face's polygons (in drawing order) in its metadata; an empty list removes them."""
    path = face_file(request, side, body.name)
    try:
        polys = validate_polygons(body.polygons, body.name)
        with _LOCK:
            meta = read_meta(path)
            meta.mask_polygons = polys or None
            update_meta(path, meta)
    except FacecastError as err:
        raise fail(err) from None
    return {"name": path.name, "polygons": len(polys), "version": path.stat().st_mtime_ns}


class _Labelled:
    """name -> (mtime_ns, has polygons): re-reads only the faces that changed since the last call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[Path, dict[str, tuple[int, bool]]] = {}

    def names(self, folder: Path) -> list[str]:
        with self._lock:
            known = self._data.setdefault(folder, {})
        out = []
        for name in LISTINGS.names(folder):
            p = folder / name
            try:
                mtime = p.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            hit = known.get(name)
            if hit is None or hit[0] != mtime:
                try:
                    hit = (mtime, bool(read_meta(p).mask_polygons))
                except FacecastError:
                    hit = (mtime, False)
                known[name] = hit
            if hit[1]:
                out.append(name)
        return out


LABELLED = _Labelled()


@router.get("/{side}/labelled")
def labelled(request: Request, side: str) -> dict[str, Any]:
    folder = face_folder(request, side)
    names = LABELLED.names(folder)
    return {"side": side, "names": names, "count": len(names), "total": len(LISTINGS.names(folder))}


def _segmenter(request: Request, model: str) -> Any:
    from facecast.masks.xseg.apply import load_segmenter

    model_dir = _model_dir(request, model)
    if not store.exists(model_dir):
        raise HTTPException(404, f"no xseg model {model!r}: train one (Train XSeg below, or `facecast xseg pretrain`)")
    version = store.read_state(model_dir).version
    caches = request.app.state.caches
    key = ("xseg", str(model_dir))
    with _MODEL_LOCK:
        hit = caches.get(key)
        if hit is None or hit[0] != version:
            hit = (version, load_segmenter(model_dir, device="cpu", batch_size=1))
            caches[key] = hit
    return hit[1]


@router.get("/{side}/mask/{name}")
def mask(request: Request, side: str, name: str, model: str | None = None) -> Response:
    """The face's mask as a grayscale PNG at face size: predicted now by `model` when given, else the
    XSeg mask stored in the metadata (what `xseg apply` wrote)."""
    path = face_file(request, side, name)
    try:
        if model:
            seg = _segmenter(request, model)
            face_ = read_aligned(path)
            if face_.meta.face_type != seg.face_type:
                raise FacecastError(f"{name}: face type {face_.meta.face_type}, but xseg model {model} is for {seg.face_type}")
            r = seg.resolution
            img = face_.image if face_.meta.size == r else cv2.resize(face_.image, (r, r), interpolation=cv2.INTER_AREA)
            m = seg(img[None])[0]
            size = face_.meta.size
            if m.shape[0] != size:
                m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
        else:
            m = read_meta(path).get_xseg_mask()
            if m is None:
                raise HTTPException(404, f"{name} has no xseg mask; choose a model to predict one")
    except FacecastError as err:
        raise fail(err) from None
    png = encode_image(np.clip(m * 255.0 + 0.5, 0, 255).astype(np.uint8), ".png")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/train")
def train(request: Request, body: TrainBody) -> dict[str, Any]:
    """`facecast xseg train|pretrain` as a job; the preview is written every `save_every` iterations."""
    from facecast.masks.xseg.train import XSegTrainSettings, xseg_pretrain, xseg_train

    ws = workspace(request)
    model_dir = _model_dir(request, body.model)
    if body.phase not in ("train", "pretrain"):
        raise HTTPException(400, "phase must be 'train' or 'pretrain'")
    if not 1 <= body.target_iter <= 1_000_000:
        raise HTTPException(400, "target_iter must be 1..1000000")
    settings = XSegTrainSettings(batch_size=max(1, body.batch_size), save_every=max(1, body.save_every),
                                 preview_every=max(1, body.save_every))
    fn = xseg_train if body.phase == "train" else xseg_pretrain

    def run(ctx: Any) -> dict[str, Any]:
        ctx.log(f"xseg {body.phase}: model {model_dir.name}, to iteration {body.target_iter}")

        def on_step(it: int, loss: float) -> None:
            ctx.progress(it, body.target_iter, f"loss {loss:.4f}")  # raises JobStopped on Stop: Ctrl-C path

        result = fn(ws, body.model, body.preset, body.target_iter, settings=settings, quiet=True, on_step=on_step)
        ctx.log(f"held-out IoU {result.get('heldout_iou_after')}, {result['iterations']} iterations")
        return result

    return submit_job(request, f"xseg-{body.phase}", f"xseg {body.phase} {body.model}", run, f"model:{body.model}")


@router.get("/preview/{model}")
def preview(request: Request, model: str) -> FileResponse:
    """The training preview (faces | predicted overlay | label) the trainer last wrote."""
    path = _model_dir(request, model) / "previews" / "latest.png"
    if not path.is_file():
        raise HTTPException(404, f"no preview yet for {model!r}")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})


