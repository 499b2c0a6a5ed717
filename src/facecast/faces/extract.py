"""`facecast extract src|dst`: frames -> aligned faces with metadata, debug frames and a report.

Three phases, so that the expensive part is parallel and resumable:
1. detection + 68 points per frame in worker processes; results go to `extract_progress.json` in
   data_<side>/ (saved every few seconds and on Ctrl-C, atomically), so a re-run skips finished frames;
2. tracking in this process (track.py: identities, kept person, gap filling, smoothing; it re-reads a
   frame only where an appearance descriptor is needed);
3. alignment + writing in worker processes (`<frame>_0.jpg` in aligned/, `aligned_debug/<frame>.jpg` for
   dst). A frame whose output exists and whose face did not change is not rewritten.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.track import Obs, TrackResult, track_faces
from facecast.media.images import atomic_write_bytes, list_images, read_image
from facecast.workspace import Workspace

PROGRESS_FILE = "extract_progress.json"
REPORT_FILE = "extract_report.json"
SAVE_EVERY_S = 3.0


@dataclass
class ExtractSettings:
    """What decides the written faces; a change of any of these rewrites every output."""

    face_type: str = "whole_face"
    size: int = 512
    jpeg_quality: int = 95
    reference: list[str] = field(default_factory=list)
    smooth: bool = False
    landmarks_file: str | None = None
    min_score: float = 0.5


# -- responsible-use hooks (the lead wires these in) ---------------------------------------------------
def _responsible_checks(ws: Workspace, side: str) -> Any:
    """Responsible-use checks that run before any frame is read; none can be switched off.

    Extracting `src` builds material for rendering a person, so it needs that person's consent record
    (provenance/consent.py); the per-frame explicit-content gate runs in `_gate_frame`. Loading the gate
    here too verifies its model hash once, before workers start, so a tampered install fails fast."""
    from facecast.provenance import content_gate, require_consent

    record = require_consent(ws) if side == "src" else None
    content_gate()
    return record


def _gate_frame(image: np.ndarray, name: str) -> None:
    """Explicit-content gate on every frame, where it is loaded (in the workers): raises ContentRefused.

    Every frame, not a sample: extraction is the one pass that sees every frame of both sides, and a
    frame refused here never reaches training or merge. Costs ~15-30 ms per frame on 2 cores."""
    from facecast.provenance import check_content

    check_content(image, name)


# -- phase 1: detection (runs in workers) --------------------------------------------------------------
def _init_worker() -> None:
    cv2.setNumThreads(1)


def _detect_one(path: str, min_score: float) -> dict[str, Any]:
    from facecast.faces.detect import detect_faces

    image = read_image(path)
    _gate_frame(image, Path(path).name)
    faces = detect_faces(image, min_score=min_score)
    return {
        "size": [int(image.shape[1]), int(image.shape[0])],
        "faces": [{"rect": [float(v) for v in f.rect], "score": f.score, "landmarks": f.landmarks.round(3).tolist()}
                  for f in faces],
    }


MIN_FRAMES_PER_WORKER = 24  # below this many frames per extra worker a pool costs more than it saves


def _workers_for(workers: int, n_frames: int) -> int:
    """Fewer workers for short jobs. Models load once per process either way (mediapipe, dlib's 100 MB
    predictor, the content gate: ~3 s of CPU), but a pool adds process start-up and loads them twice on
    the same 2 cores (~1-2 s more wall time) while saving half of the ~80-140 ms CPU per 720p frame, so
    it pays off only from a few dozen frames (estimate; the machine was too loaded to time the crossover)."""
    return max(1, min(workers, n_frames // MIN_FRAMES_PER_WORKER))


def _pool(workers: int) -> ProcessPoolExecutor | None:
    """One pool for both parallel phases.

    Spawn, not fork: the parent has already built the content gate's onnxruntime session (and, with
    --reference, mediapipe graphs), whose thread pools do not survive a fork; a forked worker calling
    them can hang. Measured start-up of a 2-worker pool until both workers had loaded their models:
    spawn 7.4 s, fork 7.2 s, forkserver (imports preloaded) 7.6 s on the loaded machine; the loading, not
    the process start, is the cost. Forking before the gate loads, with dlib's predictor preloaded in the
    parent, could save its ~1.5 s load per worker, but would move worker start before the consent check."""
    if workers <= 1:
        return None
    import multiprocessing as mp

    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)


def _map(fn, jobs: list[tuple], pool: ProcessPoolExecutor | None, progress, task) -> Any:
    """Yield (job, result) as jobs finish; in-process without a pool (tests, tiny jobs)."""
    if pool is None or len(jobs) <= 1:
        for job in jobs:
            yield job, fn(*job)
            progress.advance(task)
        return
    from concurrent.futures import as_completed

    futures = {pool.submit(fn, *job): job for job in jobs}
    try:
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
            progress.advance(task)
    finally:
        for fut in futures:
            fut.cancel()


# -- phase 3: writing (runs in workers) ----------------------------------------------------------------
def sharpness(face: np.ndarray) -> float:
    """Variance of the Laplacian on the aligned face at 256 px (size-independent blur measure)."""
    gray = cv2.cvtColor(cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _write_one(frame_path: str, face: dict[str, Any], settings: dict[str, Any], out_path: str,
               debug_path: str | None, detector: dict[str, str]) -> None:
    from facecast.faces.align import align_face
    from facecast.faces.aligned import AlignedMeta, SourceInfo, write_aligned
    from facecast.faces.pose import estimate_pose

    image = read_image(frame_path)
    lm = np.asarray(face["landmarks"], dtype=np.float64)
    aligned, mat, lm_aligned = align_face(image, lm, settings["face_type"], settings["size"])
    meta = AlignedMeta(
        face_type=settings["face_type"], size=settings["size"], landmarks=lm_aligned.tolist(),
        source=SourceInfo(Path(frame_path).name, (image.shape[1], image.shape[0]), tuple(face["rect"]), lm.tolist()),
        image_to_face=mat.tolist(), face_index=0, identity=face["identity"], pose=estimate_pose(lm),
        sharpness=sharpness(aligned), interpolated=face["interpolated"], detector=detector,
        extra={"score": face["score"], "manual": face["manual"]},
    )
    from facecast.provenance import gate_verdict  # the frame this face is cut from, as it is now (train needs it)

    meta.content_gate = gate_verdict(image, Path(frame_path).name)
    write_aligned(out_path, aligned, meta, jpeg_quality=settings["jpeg_quality"])
    if debug_path:
        atomic_write_bytes(debug_path, _debug_jpeg(image, face, mat, settings))


def _debug_jpeg(image: np.ndarray, face: dict[str, Any], mat: np.ndarray, settings: dict[str, Any]) -> bytes:
    """The frame with the detector box (green, yellow when interpolated), landmarks and face-type square."""
    from facecast.faces.align import invert, transform_points
    from facecast.media.images import encode_image

    out = image.copy()
    th = max(1, round(max(image.shape[:2]) / 500))
    color = (255, 220, 0) if face["interpolated"] else (0, 255, 0)
    x0, y0, x1, y1 = (int(round(v)) for v in face["rect"])
    cv2.rectangle(out, (x0, y0), (x1, y1), color, th)
    for x, y in face["landmarks"]:
        cv2.circle(out, (int(round(x)), int(round(y))), th + 1, (255, 0, 0), -1)
    s = settings["size"]
    square = transform_points(np.array([[0, 0], [s, 0], [s, s], [0, s]], float), invert(mat))
    cv2.polylines(out, [square.round().astype(np.int32)], True, (0, 160, 255), th)
    return encode_image(out, ".jpg", jpeg_quality=90)


# -- the stage ------------------------------------------------------------------------------------------
def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _load_manual(path: str | None, names: dict[str, int]) -> dict[int, Obs]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise FacecastError(f"{path}: cannot read the landmarks file ({err.strerror})") from None
    except ValueError:
        raise FacecastError(f"{path}: not valid JSON; expected {{\"frame_name\": [[x, y] * 68], ...}}") from None
    if not isinstance(data, dict):
        raise FacecastError(f"{path}: expected a JSON object {{\"frame_name\": [[x, y] * 68], ...}}")
    manual = {}
    for name, pts in data.items():
        if name not in names:
            raise FacecastError(f"{path}: frame {name!r} is not among the frames of this side")
        arr = np.asarray(pts, dtype=np.float64) if isinstance(pts, list) else np.zeros(0)
        if arr.shape != (68, 2) or not np.isfinite(arr).all():
            raise FacecastError(f"{path}: frame {name!r} needs 68 [x, y] pairs, got shape {arr.shape}")
        lo, hi = arr.min(0), arr.max(0)
        manual[names[name]] = Obs(names[name], (lo[0], lo[1], hi[0], hi[1]), 1.0, arr, manual=True)
    return manual


def extract(
    ws: Workspace, side: str, face_type: str = "whole_face", size: int = 512, jpeg_quality: int = 95,
    reference: list[str | Path] | None = None, smooth: bool = False, redo_deleted: bool = False,
    landmarks_file: str | Path | None = None, workers: int = 2, quiet: bool = False, min_score: float = 0.5,
) -> dict[str, Any]:
    """Extract aligned faces of one side; returns the report (also written to extract_report.json)."""
    from facecast.faces.facetype import get_face_type

    self_checks = _responsible_checks(ws, side)  # noqa: F841  (responsible-use hook, see its docstring)
    face_type = get_face_type(face_type).name
    if not 64 <= size <= 2048:
        raise FacecastError(f"--size {size} is out of range: use 64..2048")
    if not 1 <= jpeg_quality <= 100:
        raise FacecastError(f"--jpeg-quality {jpeg_quality} is out of range: use 1..100")
    data_dir, out_dir = ws.data(side), ws.aligned(side)
    frames = list_images(data_dir) if data_dir.is_dir() else []
    if not frames:
        raise FacecastError(f"no frames in {data_dir}: run `facecast frames {side} -w {ws.root}` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    debug_dir = ws.aligned_debug if side == "dst" else None
    if debug_dir:
        debug_dir.mkdir(parents=True, exist_ok=True)
    names = {p.name: i for i, p in enumerate(frames)}
    settings = ExtractSettings(face_type, size, jpeg_quality, [str(r) for r in reference or []], smooth,
                               str(landmarks_file) if landmarks_file else None, min_score)
    manual = _load_manual(settings.landmarks_file, names)
    ref_desc = _reference_descriptors(settings.reference)

    progress_path = data_dir / PROGRESS_FILE
    state = _load_json(progress_path)
    done: dict[str, Any] = state.get("frames", {}) if state.get("min_score") == min_score else {}
    written: dict[str, Any] = state.get("written", {}) if state.get("settings") == asdict(settings) else {}
    if redo_deleted and debug_dir:
        for name in list(done):
            if name in names and not (debug_dir / f"{Path(name).stem}.jpg").exists():
                done.pop(name)
                written.pop(name, None)
    elif redo_deleted:
        raise FacecastError("--redo-deleted works on dst only (src has no aligned_debug images)")

    def save() -> None:
        atomic_write_bytes(progress_path, json.dumps(
            {"min_score": min_score, "frames": done, "settings": asdict(settings), "written": written}).encode())

    todo = [(str(p), min_score) for p in frames if p.name not in done]
    last_save = time.monotonic()
    pending_writes = len(frames) - len(written)
    pool = _pool(_workers_for(workers, max(len(todo), pending_writes)))
    try:
        report = _run(ws, side, frames, names, settings, manual, ref_desc, done, written, todo, save, pool,
                      quiet, out_dir, debug_dir)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    atomic_write_bytes(data_dir / REPORT_FILE, json.dumps(report, indent=2).encode())
    return report


def _run(ws, side, frames, names, settings, manual, ref_desc, done, written, todo, save, pool, quiet,
         out_dir, debug_dir) -> dict[str, Any]:
    """Phases 1-3 of `extract` (see the module docstring); `save` persists the progress file."""
    from facecast.console import make_progress

    data_dir = ws.data(side)
    last_save = time.monotonic()
    with make_progress(quiet) as progress:
        task = progress.add_task(f"detect {side}", total=len(todo))
        try:
            for (path, _), result in _map(_detect_one, todo, pool, progress, task):
                done[Path(path).name] = result
                if time.monotonic() - last_save > SAVE_EVERY_S:
                    save()
                    last_save = time.monotonic()
        finally:
            save()

        obs = [[Obs(i, tuple(f["rect"]), f["score"], np.asarray(f["landmarks"], np.float64))
                for f in done[p.name]["faces"]] for i, p in enumerate(frames)]
        cache: dict[int, np.ndarray] = {}

        def describe(i: int, lm: np.ndarray) -> np.ndarray:
            from facecast.faces.identity import face_descriptor

            if i not in cache:
                cache.clear()
                cache[i] = read_image(frames[i])
            return face_descriptor(cache[i], lm)

        if not any(obs) and not manual:
            raise FacecastError(
                f"no face found in any of the {len(frames)} frames in {data_dir}: check the frames, or place "
                "landmarks by hand with --landmarks FILE.json")
        result = track_faces(obs, describe, reference=ref_desc, manual=manual, smooth=settings.smooth)

        from facecast.faces.detect import DEFAULT_BACKEND, get_detector

        detector = {"name": DEFAULT_BACKEND, "version": get_detector(DEFAULT_BACKEND).version()}
        jobs, keep_names = [], set()
        for i, face in result.kept.items():
            name = frames[i].name
            keep_names.add(name)
            payload = {"rect": [float(v) for v in face.rect], "score": float(face.score),
                       "landmarks": np.asarray(face.landmarks).round(3).tolist(), "identity": face.identity,
                       "interpolated": face.interpolated, "manual": face.manual}
            out = out_dir / f"{frames[i].stem}_0.jpg"
            dbg = debug_dir / f"{frames[i].stem}.jpg" if debug_dir else None
            if written.get(name) == payload and out.exists() and (dbg is None or dbg.exists()):
                continue
            d = dict(detector, name="manual") if face.manual else detector
            jobs.append((str(frames[i]), payload, asdict(settings), str(out), str(dbg) if dbg else None, d))
        # faces no longer kept (another --reference, a redo) must not linger in the faceset
        for name in set(written) - keep_names:
            (out_dir / f"{Path(name).stem}_0.jpg").unlink(missing_ok=True)
            written.pop(name)
        task2 = progress.add_task(f"write {side}", total=len(jobs))
        try:
            for job, _ in _map(_write_one, jobs, pool, progress, task2):
                written[Path(job[0]).name] = job[1]
        finally:
            save()
    return _report(side, frames, done, result, len(todo), len(jobs))


def _reference_descriptors(paths: list[str]) -> list[np.ndarray] | None:
    """One descriptor per reference photo (its best-scored face)."""
    if not paths:
        return None
    from facecast.faces.detect import detect_faces
    from facecast.faces.identity import face_descriptor

    out = []
    for p in paths:
        image = read_image(p)
        faces = detect_faces(image, min_score=0.3)
        if not faces:
            raise FacecastError(f"{p}: no face found in this --reference photo; use a clear, frontal photo")
        out.append(face_descriptor(image, faces[0].landmarks))
    return out


def _report(side: str, frames: list[Path], done: dict[str, Any], result: TrackResult, detected_now: int,
            written_now: int) -> dict[str, Any]:
    kept = result.kept
    without = [p.name for i, p in enumerate(frames) if i not in kept]
    return {
        "side": side,
        "frames": len(frames),
        "faces_detected": sum(len(done[p.name]["faces"]) for p in frames),
        "faces_written": len(kept),
        "frames_without_face": len(without),
        "multi_face_frames": len(result.multi_face_frames),
        "interpolated_frames": sum(1 for k in kept.values() if k.interpolated),
        "manual_frames": sum(1 for k in kept.values() if k.manual),
        "identities_found": len(result.identities),
        "kept_identity": result.kept_identity,
        "frames_per_identity": {str(k): v for k, v in result.identities.items()},
        "frames_detected_this_run": detected_now,
        "faces_written_this_run": written_now,
        "descriptors_computed": result.descriptors_computed,
        "frames_without_face_list": without,
    }
