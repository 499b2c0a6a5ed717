"""Fix-a-frame page API (DeepFaceLab's manual re-extract): the review queue, a frame with its face box
and 68 points, re-detection inside a user's box, the live aligned preview, and save.

All of it is `faces/manual.py`: the preview is extract's alignment of the points the user is dragging,
and save writes the aligned face, its metadata and the debug frame exactly as extract does, after the
same consent and content checks. Decoded frames are kept in a small LRU cache (keyed by path and
mtime): a drag sends a preview request every ~50 ms and a 1080p PNG decode costs ~30 ms.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from facecast.errors import FacecastError
from facecast.faces import manual
from facecast.media.images import encode_image, list_images, read_image
from facecast.studio.pages.faces import check_side, fail, plain_name, workspace

router = APIRouter(prefix="/api/fixframe", tags=["fixframe"])
FRAME_CACHE = 4


class _Frames:
    """The last few decoded frames (RGB), keyed by (path, mtime_ns)."""

    def __init__(self, size: int = FRAME_CACHE) -> None:
        self.size, self._lock, self._data = size, threading.Lock(), OrderedDict()

    def get(self, path: Path) -> np.ndarray:
        key = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        img = read_image(path)
        with self._lock:
            self._data[key] = img
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return img


FRAMES = _Frames()


def _frame(request: Request, side: str, name: str) -> Path:
    from facecast.studio.files import safe_path

    ws = workspace(request)
    check_side(side)
    rel = (ws.data(side) / plain_name(name)).relative_to(ws.root)
    path = safe_path(ws.root, str(rel))
    if not path.is_file():
        raise HTTPException(404, f"no frame {name!r}")
    return path


class BoxBody(BaseModel):
    frame: str
    rect: list[float]


class PointsBody(BaseModel):
    frame: str
    landmarks: list[list[float]]
    rect: list[float] | None = None


@router.get("/{side}/queue")
def queue(request: Request, side: str) -> dict[str, Any]:
    """Frames to review, worst first (missed, interpolated, low confidence, outlier landmarks)."""
    ws = workspace(request)
    entries = manual.review_queue(ws, check_side(side))
    return {"side": side, "entries": entries, "frames": len(list_images(ws.data(side))) if ws.data(side).is_dir() else 0}


@router.get("/{side}/frames")
def frames(request: Request, side: str) -> dict[str, Any]:
    ws = workspace(request)
    folder = ws.data(check_side(side))
    return {"side": side, "frames": [p.name for p in list_images(folder)] if folder.is_dir() else []}


@router.get("/{side}/frame/{name}")
def frame_image(request: Request, side: str, name: str) -> FileResponse:
    return FileResponse(_frame(request, side, name), headers={"Cache-Control": "no-cache"})


@router.get("/{side}/face/{name}")
def frame_face(request: Request, side: str, name: str) -> dict[str, Any]:
    """The frame's current face: box and 68 points in frame pixels (null when none was found)."""
    ws = workspace(request)
    path = _frame(request, side, name)
    found = manual.find_aligned(ws.aligned(side), name)
    settings = manual.face_settings(ws, side)
    h, w = FRAMES.get(path).shape[:2]
    out: dict[str, Any] = {"frame": name, "frame_size": [w, h], "face_type": settings.face_type,
                           "face_size": settings.size, "face": None, "rect": None, "landmarks": None,
                           "origin": "none", "interpolated": False}
    if found:
        p, meta = found
        out.update(face=p.name, rect=list(meta.source.rect), landmarks=meta.source.landmarks,
                   origin="manual" if meta.detector.get("name") == manual.MANUAL_DETECTOR else "extract",
                   interpolated=meta.interpolated, score=meta.extra.get("score"))
    return out


@router.post("/{side}/detect")
def detect(request: Request, side: str, body: BoxBody) -> dict[str, Any]:
    """Run the landmark model inside the user's box (accept a re-detection)."""
    image = FRAMES.get(_frame(request, side, body.frame))
    try:
        lm = manual.landmarks_in_box(image, body.rect)
    except FacecastError as err:
        raise fail(err) from None
    return {"frame": body.frame, "rect": body.rect, "landmarks": lm.round(3).tolist()}


@router.post("/{side}/preview")
def preview(request: Request, side: str, body: PointsBody) -> Response:
    """The aligned face these points give (JPEG), exactly as save would write it."""
    ws = workspace(request)
    image = FRAMES.get(_frame(request, side, body.frame))
    try:
        aligned, _mat, _lm = manual.align_preview(image, body.landmarks, manual.face_settings(ws, side))
    except FacecastError as err:
        raise fail(err) from None
    return Response(encode_image(aligned, ".jpg", jpeg_quality=90), media_type="image/jpeg",
                    headers={"Cache-Control": "no-store"})


@router.post("/{side}/save")
def save(request: Request, side: str, body: PointsBody) -> dict[str, Any]:
    """Write the aligned face + metadata (+ debug frame) as extract does; consent and content checked."""
    ws = workspace(request)
    _frame(request, side, body.frame)
    try:
        result = manual.save_manual_face(ws, side, body.frame, body.landmarks, rect=body.rect)
    except FacecastError as err:
        raise fail(err) from None
    result["face"] = Path(result.pop("path")).name
    return result
