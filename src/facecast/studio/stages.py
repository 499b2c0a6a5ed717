"""The studio's view of a workspace and its stage jobs: thin wiring over the functions the CLI calls.

Each `*_job` returns a job target `fn(ctx)` that calls the stage function with the same arguments the
matching command uses (no second implementation), with quiet output and the job's progress/stop hooks.
`workspace_status` reads every stage's state for the Workspace page.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.studio.jobs import JobContext
from facecast.workspace import Workspace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_SCAN_LIMIT = 3000  # reading every face's metadata is the cost of the mask count: cap it


# -- status -----------------------------------------------------------------------------------------
def _count_images(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_MASK_CACHE: dict[str, tuple[int, dict[str, int]]] = {}


def _masks(folder: Path) -> dict[str, int]:
    """Faces with drawn polygons / XSeg masks (cached until the folder changes: saves are renames)."""
    from facecast.faces.aligned import list_aligned, read_meta

    out = {"polygons": 0, "xseg": 0, "scanned": 0}
    if not folder.is_dir():
        return out
    stamp = folder.stat().st_mtime_ns
    cached = _MASK_CACHE.get(str(folder))
    if cached and cached[0] == stamp:
        return dict(cached[1])
    for path in list_aligned(folder)[:MASK_SCAN_LIMIT]:
        try:
            meta = read_meta(path)
        except FacecastError:
            continue
        out["scanned"] += 1
        out["polygons"] += bool(getattr(meta, "mask_polygons", None))
        out["xseg"] += bool(getattr(meta, "xseg_mask", None))
    _MASK_CACHE[str(folder)] = (stamp, dict(out))
    return out


def list_models(ws: Workspace) -> list[dict[str, Any]]:
    """Swap models (folders with options.json) with their iteration, target and merge progress."""
    out = []
    if not ws.models.is_dir():
        return out
    for d in sorted(p for p in ws.models.iterdir() if p.is_dir()):
        options = _read_json(d / "options.json")
        if not options or "arch" not in options:
            continue
        state = _read_json(d / "state.json") or {}
        session = _read_json(d / "merge_session.json") or {}
        out.append({
            "name": d.name, "arch": options.get("arch"), "resolution": options.get("resolution"),
            "face_type": options.get("face_type"), "iteration": state.get("iteration", 0),
            "target_iter": options.get("target_iter", 0), "saved_at": state.get("saved_at"),
            "merge_progress": session.get("progress"), "has_preview": (d / "previews" / "preview.png").is_file(),
        })
    return out


def workspace_status(ws: Workspace) -> dict[str, Any]:
    from facecast.provenance.consent import list_consents, src_identity

    sides = {}
    for side in ("src", "dst"):
        report = _read_json(ws.data(side) / "extract_report.json") or {}
        sides[side] = {
            "video": ws.video(side).name if ws.video(side).is_file() else None,
            "frames": _count_images(ws.data(side)),
            "aligned": _count_images(ws.aligned(side)),
            "extract": {k: report.get(k) for k in ("frames", "faces_written", "frames_without_face",
                                                    "interpolated_frames", "manual_frames", "multi_face_frames")}
            if report else None,
            "masks": _masks(ws.aligned(side)),
        }
    consents = [{"id": r.id, "identity": r.identity, "status": r.status(), "signed_by": r.signed_by,
                 "expires": r.expires, "created": r.created} for r in list_consents(ws)]
    models = list_models(ws)
    result = ws.result
    status = {
        "root": str(ws.root), "sides": sides, "consents": consents, "src_identity": src_identity(ws),
        "models": models, "merged": _count_images(ws.merged),
        "result": {"path": result.name, "bytes": result.stat().st_size, "mtime": result.stat().st_mtime}
        if result.is_file() else None,
    }
    status["next"] = next_step(status)
    return status


def next_step(s: dict[str, Any]) -> dict[str, str]:
    """The first thing the workspace still lacks, as a sentence and the action/page that does it."""
    src, dst = s["sides"]["src"], s["sides"]["dst"]
    if not any(c["status"] == "valid" for c in s["consents"]):
        return {"text": "Record the source person's consent: facecast consent add -w WS --identity NAME "
                        "--statement ... --signed-by ... (nothing is extracted, trained or merged without it)",
                "action": ""}
    for side, info in (("src", src), ("dst", dst)):
        if not info["frames"]:
            if info["video"]:
                return {"text": f"Cut {side} frames from {info['video']}", "action": f"frames:{side}"}
            return {"text": f"Put data_{side}.mp4 (or frames in data_{side}/) into the workspace", "action": ""}
    for side, info in (("src", src), ("dst", dst)):
        if not info["aligned"]:
            return {"text": f"Extract {side} faces", "action": f"extract:{side}"}
    models = s["models"]
    if not models or not any(m["iteration"] for m in models):
        return {"text": "Train a model on the Train page", "action": "page:train"}
    best = max(models, key=lambda m: m["iteration"])
    if s["merged"] < dst["frames"]:
        return {"text": f"Merge with model {best['name']} on the Merge page (tune, then merge all)",
                "action": "page:merge"}
    if not s["result"]:
        return {"text": "Make the video from the merged frames", "action": "video"}
    return {"text": "Done: play result.mp4 on the Merge page, check it on the Verify page", "action": "page:verify"}


# -- jobs -------------------------------------------------------------------------------------------
def frames_job(ws: Workspace, side: str):
    """`facecast frames data_<side>.mp4 -w WS` (async stop: frames() has no progress callback)."""
    from facecast.media.video import frames

    def target(ctx: JobContext):
        src = ws.video(side)
        if not src.is_file():
            raise FacecastError(f"{src.name} is not in the workspace: put the {side} video there first")
        ctx.progress(0, None, f"decoding {src.name}")
        res = frames(src, ws.data(side), quiet=True)
        ctx.log(f"frames: {json.dumps(_plain(res))[:400]}")
        return _plain(res)

    return target


def extract_job(ws: Workspace, side: str, workers: int = 2):
    """`facecast extract SIDE -w WS` (progress polled from extract_progress.json; async stop)."""
    from facecast.faces.extract import PROGRESS_FILE, extract

    def target(ctx: JobContext):
        total = _count_images(ws.data(side))
        stop_poll = _poll(ctx, lambda: len((_read_json(ws.data(side) / PROGRESS_FILE) or {}).get("frames", {})),
                          total, f"detecting {side} faces")
        try:
            report = extract(ws, side, workers=workers, quiet=True)
        finally:
            stop_poll()
        ctx.progress(total, total, f"{report['faces_written']} faces, {report['frames_without_face']} frames without")
        ctx.log(f"extract {side}: {report['faces_written']} faces from {report['frames']} frames, "
                f"{report['frames_without_face']} without a face, {report['interpolated_frames']} interpolated")
        return {k: v for k, v in report.items() if not isinstance(v, list)}

    return target


def _poll(ctx: JobContext, count, total: int, message: str):
    """Report `count()` as progress every second from a helper thread; returns the stop function."""
    import threading

    done = threading.Event()

    def loop():
        while not done.wait(1.0):
            try:
                ctx.job.done, ctx.job.total, ctx.job.message = int(count()), total, message
                ctx._runner._emit("job", ctx.job.to_dict())
            except Exception:  # noqa: BLE001 - a half-written progress file is read again next second
                pass

    threading.Thread(target=loop, daemon=True, name=f"job-{ctx.job.id}-poll").start()
    return done.set


def train_job(ws: Workspace, model: str, preset: str | None, overrides: dict[str, Any],
              target_iter: int | None = None, max_iters: int | None = None, device: str = "auto"):
    """`facecast train -w WS -m MODEL ...` with the CLI's quality evaluators; Stop = Ctrl-C (saved)."""
    from facecast.quality.guidance import quality_evaluators, summary_fields, training_guidance
    from facecast.train.trainer import train

    def target(ctx: JobContext):
        evaluators = quality_evaluators(ws.root, model, preset, overrides)
        ema: dict[str, float] = {}
        total = target_iter or _target_of(ws, model) or None

        def on_step(it: int, info: dict[str, float]) -> None:
            ms = info["ms"]
            ema["ms"] = ms if "ms" not in ema else 0.9 * ema["ms"] + 0.1 * ms
            ctx.job.extra.update({"iteration": it, "ms_per_iter": round(ema["ms"], 1),
                                  "src_loss": round(info["src_loss"], 5), "dst_loss": round(info["dst_loss"], 5)})
            ctx.progress(it, total, f"{ema['ms']:.0f} ms/it, src {info['src_loss']:.4f} dst {info['dst_loss']:.4f}")

        res = train(ws, model, preset_name=preset, overrides=overrides, device=device, target_iter=target_iter,
                    max_iters=max_iters, evaluators=evaluators, quiet=True, on_step=on_step)
        data = asdict(res)
        data.pop("events", None)
        guide = training_guidance(Path(res.model_dir), res.ms_per_iter)
        data.update(summary_fields(guide))
        ctx.log(f"trained to iteration {res.iteration} ({res.stopped or 'end'}); identity: {guide['identity']}; "
                f"plateau: {guide['plateau']}")
        return data

    return target


def _target_of(ws: Workspace, model: str) -> int:
    return int((_read_json(ws.model(model) / "options.json") or {}).get("target_iter") or 0)


def merge_job(ws: Workspace, model: str, workers: int = 2, device: str = "auto", xseg_model: str | None = None):
    """`facecast merge -w WS -m MODEL` with the session's stored settings and overrides; Stop = Ctrl-C."""
    from facecast.merge.merger import merge

    def target(ctx: JobContext):
        predictor, segmenter = load_merge_models(ws, model, device, xseg_model)
        ctx.progress(0, None, "merging")
        report = merge(ws, model, None, predictor, segmenter=segmenter, workers=workers, quiet=True,
                       progress=ctx.progress_hook("merging"))
        ctx.log(f"merged {report.merged} frames ({report.skipped} already up to date, "
                f"{len(report.passthrough)} without a face) at {report.fps:.1f} frames/s")
        return report.to_dict()

    return target


def load_merge_models(ws: Workspace, model: str, device: str = "auto", xseg_model: str | None = None):
    """The predictor and, when the session's mask modes need one, the XSeg segmenter (as `merge` loads)."""
    from facecast.merge.session import Session
    from facecast.train.predict import load_predictor

    predictor = load_predictor(ws.model(model), device=device)
    session = Session.load(ws.model(model), model)
    modes = {session.settings.mask_mode, *(session.effective(f).mask_mode for f in session.overrides)}
    segmenter = None
    if any("xseg" in m for m in modes):
        name = xseg_model or "xseg"
        if ws.model(name).is_dir():
            from facecast.masks.xseg.apply import load_segmenter

            segmenter = load_segmenter(ws.model(name))
    return predictor, segmenter


def video_job(ws: Workspace):
    """`facecast video -w WS`: data_dst/merged -> result.mp4 with data_dst.mp4's audio (signed)."""
    from facecast.media.video import video

    def target(ctx: JobContext):
        if not _count_images(ws.merged):
            raise FacecastError("nothing merged yet: merge first")
        ctx.progress(0, None, "encoding result.mp4")
        audio = ws.video("dst") if ws.video("dst").is_file() else None
        res = video(ws.merged, ws.result, audio_from=audio, quiet=True)
        ctx.log(f"wrote {ws.result.name}")
        return _plain(res)

    return target


def _plain(obj: Any) -> Any:
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    try:
        return asdict(obj)
    except TypeError:
        return str(obj)
