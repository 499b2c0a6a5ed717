"""Merge page API: the interactive merger over `merge.merger.preview` and the merge session file.

- the frame is re-rendered in memory by `preview()` (the merge stage's own single-frame path) with the
  settings the page sends, watermarked with the provenance facade's `watermark_frame` like every frame
  `merge` writes, and sent as JPEG; nothing is written;
- settings are saved into the same `model/<name>/merge_session.json` that `facecast merge` reads
  (global settings, per-frame overrides, "apply from this frame on"), so the CLI sees the same state;
- consent is checked before any render, exactly as `merge()` does before any work.
"""

from __future__ import annotations

import threading
import time
from dataclasses import fields
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from facecast.errors import FacecastError
from facecast.media.images import encode_image, list_images, read_image
from facecast.merge.session import Session
from facecast.merge.settings import COLOR_TRANSFERS, MASK_MODES, MODES, RANGES, SHARPEN_MODES, MergeSettings
from facecast.provenance import require_consent, watermark_frame
from facecast.studio import stages
from facecast.studio.pages.workspace import submit_action

router = APIRouter()
VIEWS = ("after", "before", "mask", "split")
CHOICES = {"mode": MODES, "mask_mode": MASK_MODES, "color_transfer": COLOR_TRANSFERS, "sharpen_mode": SHARPEN_MODES}


class PreviewRequest(BaseModel):
    model: str
    frame: str
    settings: dict[str, Any] | None = None  # full or partial settings; None = the session's for this frame
    view: str = "after"
    quality: int = 88
    max_width: int | None = None  # the page asks for its display width: no point sending 1920 px to 700


class SettingsRequest(BaseModel):
    model: str
    settings: dict[str, Any]
    scope: str = "all"  # all | frame | from
    frame: str | None = None


class FrameRequest(BaseModel):
    model: str
    frame: str


class ModelRequest(BaseModel):
    model: str


def settings_schema() -> list[dict[str, Any]]:
    """Every merge setting with its kind and range/choices, for the page's controls."""
    out = []
    defaults = MergeSettings()
    for f in fields(MergeSettings):
        value = getattr(defaults, f.name)
        item: dict[str, Any] = {"name": f.name, "default": value}
        if f.name in CHOICES:
            item.update(kind="choice", choices=list(CHOICES[f.name]))
        elif isinstance(value, bool):
            item.update(kind="bool")
        else:
            lo, hi = RANGES[f.name]
            item.update(kind="int", min=lo, max=hi, step=2 if f.name == "temporal_window" else 1)
        out.append(item)
    return out


class CachedPredictor:
    """A predictor that remembers its outputs for the last few input batches.

    Why: a settings change (erode, colour, mode...) does not change what the model predicts for a frame,
    only how `merge_frame` composites it; `preview()` re-predicts on every call. Keyed by the exact
    bytes of the aligned crops `preview()` hands over, so any change of frame, landmarks or model gives
    a new key and a fresh prediction: the pixels are exactly those of an uncached preview."""

    def __init__(self, inner, size: int = 48) -> None:
        from collections import OrderedDict

        self._inner, self._size, self._cache = inner, size, OrderedDict()

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def predict(self, faces):
        import hashlib

        arr = np.ascontiguousarray(faces)
        key = (arr.shape, hashlib.sha1(arr.tobytes()).hexdigest())
        out = self._cache.get(key)
        if out is None:
            out = self._inner.predict(arr)
            self._cache[key] = out
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return out


class _Predictors:
    """Loaded predictors per model, reloaded when training saved a newer iteration; one lock each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, tuple[Any, Any, Any, threading.Lock]] = {}

    def get(self, ws, model: str):
        sig = (stages._read_json(ws.model(model) / "state.json") or {}).get("iteration"), \
            (ws.model(model) / "model.safetensors").stat().st_mtime if (ws.model(model) / "model.safetensors").exists() else None
        with self.lock:
            item = self.items.get(model)
            if item is None or item[0] != sig:
                predictor, segmenter = stages.load_merge_models(ws, model)
                item = (sig, CachedPredictor(predictor), segmenter, threading.Lock())
                self.items[model] = item
        return item[1], item[2], item[3]


def _predictors(app) -> _Predictors:
    return app.state.caches.setdefault("merge.predictors", _Predictors())


def _session(ws, model: str) -> Session:
    if not model or "/" in model or model.startswith(".") or not (ws.model(model) / "options.json").is_file():
        raise FacecastError(f"no trained model {model!r} in {ws.models}")
    return Session.load(ws.model(model), model)


def _frames(ws) -> list[str]:
    folder = ws.data("dst")
    return [p.name for p in list_images(folder)] if folder.is_dir() else []


def render_preview(app, model: str, frame: str, settings: MergeSettings, view: str = "after",
                   max_width: int | None = None) -> np.ndarray:
    """The frame as `merge` would write it (watermarked), or its before/mask/split view; RGB uint8."""
    from facecast.merge.merger import preview

    ws = app.state.workspace
    require_consent(ws)  # as merge(): no render of a face without the source person's consent
    if view not in VIEWS:
        raise FacecastError(f"view {view!r}: choose one of {', '.join(VIEWS)}")
    if frame not in _frames(ws):
        raise FacecastError(f"frame {frame!r} not found in {ws.data('dst')}")
    if view == "before":
        return read_image(ws.data("dst") / frame)
    predictor, segmenter, lock = _predictors(app).get(ws, model)
    with lock:
        result = preview(ws, frame, settings, predictor, segmenter)
    if view == "mask":
        m = np.clip(result.mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = np.repeat(m[..., None], 3, axis=2)
    elif view == "split":
        before = read_image(ws.data("dst") / frame)
        image = result.image.copy()
        half = image.shape[1] // 2
        image[:, :half] = before[:, :half]
        image[:, half - 1 : half + 1] = (255, 255, 255)
    else:
        image = result.image
    if max_width and image.shape[1] > max_width:
        import cv2

        h = round(image.shape[0] * max_width / image.shape[1])
        image = cv2.resize(image, (max_width, h), interpolation=cv2.INTER_AREA)
    return watermark_frame(ws, image)  # after any resize: the image served is the one that carries it


def _warm(app, model: str) -> None:
    try:
        _predictors(app).get(app.state.workspace, model)
    except Exception:  # noqa: BLE001 - the render request reports the same error properly
        pass


@router.get("/api/merge/state")
def state(request: Request, model: str | None = None) -> dict[str, Any]:
    ws = request.app.state.workspace
    models = [m for m in stages.list_models(ws) if (ws.model(m["name"]) / "model.safetensors").exists()]
    if model is None:
        model = max(models, key=lambda m: m["iteration"])["name"] if models else None
    out: dict[str, Any] = {"models": models, "model": model, "frames": _frames(ws), "schema": settings_schema(),
                           "result": ws.result.name if ws.result.is_file() else None}
    if model is None:
        return out
    session = _session(ws, model)
    # load the model now, in the background, so the first render does not pay for it
    threading.Thread(target=_warm, args=(request.app, model), daemon=True).start()
    merged = {p.stem for p in ws.merged.glob("*.png")} if ws.merged.is_dir() else set()
    out.update(settings=session.settings.to_dict(), overrides=session.overrides,
               merged=[f for f in out["frames"] if f.rsplit(".", 1)[0] in merged],
               progress={"done": sum(1 for r in session.frames.values() if r.get("hash")), "total": len(out["frames"])},
               running=[j.to_dict() for j in request.app.state.jobs.active(exclusive_key=f"merge:{model}")])
    return out


@router.post("/api/merge/preview")
def render(request: Request, body: PreviewRequest) -> Response:
    ws = request.app.state.workspace
    t0 = time.perf_counter()
    session = _session(ws, body.model)
    base = session.effective(body.frame)
    settings = base.with_overrides(body.settings, "preview settings") if body.settings else base
    image = render_preview(request.app, body.model, body.frame, settings, body.view,
                           max(320, body.max_width) if body.max_width else None)
    data = encode_image(image, ".jpg", jpeg_quality=max(50, min(95, body.quality)))
    ms = (time.perf_counter() - t0) * 1000
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Render-Ms": f"{ms:.1f}",
                                                            "X-Frame-Size": f"{image.shape[1]}x{image.shape[0]}"})


def _diff(settings: MergeSettings, base: MergeSettings) -> dict[str, Any]:
    a, b = settings.to_dict(), base.to_dict()
    return {k: v for k, v in a.items() if b[k] != v}


@router.post("/api/merge/settings")
def save_settings(request: Request, body: SettingsRequest) -> dict[str, Any]:
    """Store settings in the merge session: for all frames, for one frame, or from one frame on."""
    ws, jobs = request.app.state.workspace, request.app.state.jobs
    if jobs.active(exclusive_key=f"merge:{body.model}"):
        raise FacecastError(f"a merge of {body.model} is running and owns its session: stop it or wait, then change settings")
    session = _session(ws, body.model)
    frames = _frames(ws)
    if body.scope == "all":
        session.settings = session.settings.with_overrides(body.settings, "merge settings")
    elif body.scope in ("frame", "from"):
        if body.frame not in frames:
            raise FacecastError(f"frame {body.frame!r} not found in {ws.data('dst')}")
        wanted = session.effective(body.frame).with_overrides(body.settings, "merge settings")
        targets = [body.frame] if body.scope == "frame" else frames[frames.index(body.frame):]
        diff = _diff(wanted, session.settings)
        for f in targets:
            if diff:
                session.overrides[f] = diff
            else:
                session.overrides.pop(f, None)
    else:
        raise FacecastError(f"scope {body.scope!r}: choose all, frame or from")
    session.save()
    return {"settings": session.settings.to_dict(), "overrides": session.overrides}


@router.post("/api/merge/override/clear")
def clear_override(request: Request, body: FrameRequest) -> dict[str, Any]:
    ws = request.app.state.workspace
    if request.app.state.jobs.active(exclusive_key=f"merge:{body.model}"):
        raise FacecastError(f"a merge of {body.model} is running: stop it or wait")
    session = _session(ws, body.model)
    session.overrides.pop(body.frame, None)
    session.save()
    return {"settings": session.settings.to_dict(), "overrides": session.overrides}


@router.post("/api/merge/run")
def merge_all(request: Request, body: ModelRequest) -> dict[str, Any]:
    ws = request.app.state.workspace
    _session(ws, body.model)
    require_consent(ws)  # fail now, in the page, rather than in the job's log
    return submit_action(request.app, f"merge:{body.model}").to_dict()


@router.post("/api/merge/video")
def make_video(request: Request) -> dict[str, Any]:
    return submit_action(request.app, "video").to_dict()
