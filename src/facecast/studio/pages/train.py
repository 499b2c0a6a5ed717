"""Train page API: start/stop/resume a model (the `facecast train` function), its options, previews and
curves from the model folder (history.jsonl, previews/preview.png), the identity verdict ("recognisable /
not yet / getting worse", with its ETA) and the plateau line of `quality.guidance`, speed and ETA.

Only the options `facecast train-options` calls "changeable on resume" are offered for an existing
model; the trainer itself refuses the others (one line), so the page cannot get around that rule.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel

from facecast.errors import FacecastError
from facecast.quality import guidance
from facecast.studio import stages
from facecast.train.options import ARCH_FIXED, PRESETS, ModelOptions, option_help, preset

router = APIRouter()
MAX_POINTS = 400  # curve points sent to the page (evenly thinned)


class StartRequest(BaseModel):
    model: str
    preset: str | None = None  # only for a new model
    options: dict[str, Any] = {}
    target_iter: int | None = None
    max_iters: int | None = None
    device: str = "auto"


def _model_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith(".") or len(name) > 64:
        raise FacecastError(f"model name {name!r} must be a plain folder name")
    return name


def read_history(model_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(all rows, loss rows, eval rows, events) of the model's history.jsonl, read once, through
    `quality.guidance`'s reader (lines cut by a kill are skipped)."""
    rows = guidance.read_history(model_dir)
    losses = [r for r in rows if "src_loss" in r]
    evals = [{"iter": r.get("iter"), **r["eval"]} for r in rows if "src_loss" not in r and isinstance(r.get("eval"), dict)]
    events = [r for r in rows if "src_loss" not in r and "eval" not in r and "event" in r]
    return rows, losses, evals, events


def _thin(rows: list[dict[str, Any]], n: int = MAX_POINTS) -> list[dict[str, Any]]:
    if len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)] + [rows[-1]]


def model_state(app, model: str) -> dict[str, Any]:
    ws, jobs = app.state.workspace, app.state.jobs
    d = ws.model(model)
    exists = (d / "options.json").is_file()
    out: dict[str, Any] = {"model": model, "exists": exists}
    running = jobs.active(exclusive_key=f"train:{model}")
    out["job"] = running[-1].to_dict() if running else None
    if not exists:
        return out
    options = ModelOptions.load(d / "options.json")
    state = stages._read_json(d / "state.json") or {}
    rows, losses, evals, events = read_history(d)
    it = int(state.get("iteration", 0))
    job = out["job"]
    if job and job["extra"].get("iteration"):
        it = max(it, int(job["extra"]["iteration"]))
    ms = job["extra"].get("ms_per_iter") if job else None
    if ms is None and losses:
        recent = [r["ms"] for r in losses[-50:] if "ms" in r]
        ms = sum(recent) / len(recent) if recent else None
    target = int(options.target_iter or 0)
    preview = d / "previews" / "preview.png"
    out.update(
        options=asdict(options), iteration=it, target_iter=target, ms_per_iter=ms,
        its_per_s=(1000.0 / ms) if ms else None,
        eta_s=((target - it) * ms / 1000.0) if (ms and target and target > it) else None,
        losses=_thin([{"iter": r["iter"], "src": r["src_loss"], "dst": r["dst_loss"]} for r in losses]),
        evals=_thin(evals), events=events[-20:],
        **guidance.summary_fields(guidance.guidance_from_records(rows, ms, options.eval_every or None)),
        preview=f"/api/train/preview?model={model}" if preview.is_file() else None,
        preview_mtime=preview.stat().st_mtime if preview.is_file() else None,
        saved_at=state.get("saved_at"),
    )
    return out


@router.get("/api/train/state")
def state(request: Request, model: str | None = None) -> dict[str, Any]:
    ws = request.app.state.workspace
    models = stages.list_models(ws)
    if model is None and models:
        model = max(models, key=lambda m: m["iteration"])["name"]
    kinds = option_help()
    return {
        "models": models, "presets": list(PRESETS), "recommended_preset": recommended_preset(),
        "option_kinds": kinds, "fixed": list(ARCH_FIXED),
        "state": model_state(request.app, _model_name(model)) if model else None,
    }


@router.get("/api/train/preview")
def preview_image(request: Request, model: str) -> Response:
    """The trainer's preview grid (src, src->src, dst, dst->dst, dst->src) with the invisible watermark:
    its swap column is synthetic, and every synthetic image the studio serves carries the mark."""
    from facecast.media.images import encode_image, read_image
    from facecast.provenance import watermark_frame

    ws = request.app.state.workspace
    path = ws.model(_model_name(model)) / "previews" / "preview.png"
    if not path.is_file():
        raise HTTPException(404, f"model {model} has no preview yet")
    key = (str(path), path.stat().st_mtime_ns)
    cache = request.app.state.caches.setdefault("train.preview", {})
    if cache.get("key") != key:
        cache.update(key=key, data=encode_image(watermark_frame(ws, read_image(path)), ".png", png_compression=1))
    return Response(cache["data"], media_type="image/png", headers={"Cache-Control": "no-store"})


def faceset_face_type(ws) -> str | None:
    """The face type the src faces were extracted with (a new model must train on the same)."""
    from facecast.faces.aligned import list_aligned, read_meta

    folder = ws.aligned("src")
    files = list_aligned(folder) if folder.is_dir() else []
    if not files:
        return None
    try:
        return read_meta(files[0]).face_type
    except FacecastError:
        return None


@router.get("/api/train/preset")
def preset_options(request: Request, name: str = "cpu") -> dict[str, Any]:
    """A preset's options; its face type is kept when the workspace's faces cover it (the trainer crops
    them, e.g. whole_face faces for the cpu preset's full), else it becomes the faces' own type."""
    from facecast.faces.facetype import covers

    options = asdict(preset(name))
    have = faceset_face_type(request.app.state.workspace)
    if have and not covers(have, options["face_type"]):
        options["face_type"] = have
    return options


@lru_cache(maxsize=1)
def recommended_preset() -> str:
    """saehd where a GPU trains, cpu elsewhere (what the README recommends). Cached per process: the
    train page's state, polled every few seconds, asks for it, and the device does not change."""
    from facecast.compute import choose_device

    return "saehd" if choose_device("auto").device.startswith("cuda") else "cpu"


@router.post("/api/train/start")
def start(request: Request, body: StartRequest) -> dict[str, Any]:
    """Start or resume training as a job (no two trainings of one model: exclusive key train:<model>)."""
    from facecast.provenance import require_consent

    ws, jobs = request.app.state.workspace, request.app.state.jobs
    model = _model_name(body.model)
    require_consent(ws)  # the trainer checks again; checking here answers in the page, not in a log
    exists = (ws.model(model) / "options.json").is_file()
    options = {k: v for k, v in body.options.items() if v is not None and v != ""}
    if exists:
        saved = ModelOptions.load(ws.model(model) / "options.json")
        fixed = [k for k in options if k in ARCH_FIXED and options[k] != getattr(saved, k)]
        if fixed:
            raise FacecastError(f"model {model}: {', '.join(fixed)} cannot change after creation; "
                                "train under a new model name to change them")
        options = {k: v for k, v in options.items() if k not in ARCH_FIXED}
    elif "face_type" not in options and faceset_face_type(ws):
        options["face_type"] = faceset_face_type(ws)
    target = stages.train_job(ws, model, None if exists else (body.preset or "saehd"), options,
                              target_iter=body.target_iter, max_iters=body.max_iters, device=body.device)
    job = jobs.submit("train", target, exclusive_key=f"train:{model}", queue=None,
                      title=f"{'resume' if exists else 'create'} training {model}")
    return job.to_dict()
