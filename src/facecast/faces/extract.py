"""`facecast extract src|dst`: frames -> aligned faces with metadata, debug frames and a report.

Three phases, so that the expensive part is parallel and resumable:
1. the content gate, detection + 68 points over chunks of consecutive frames in worker processes (frames
   decoded in a thread; the gate samples frames by framegate.py's policy; each face's landmark search
   continues from the previous frame, detect.FaceFollower); results go to `extract_progress.json` in data_<side>/ (saved every few
   seconds and on Ctrl-C, atomically) with each frame's content hash and gate verdict, so a re-run skips
   finished frames whose file is unchanged;
2. tracking in this process (track.py: identities, kept person, gap filling, smoothing; it re-reads a
   frame only where an appearance descriptor is needed);
3. alignment + writing in worker processes (`<frame>_0.jpg` in aligned/, `aligned_debug/<frame>.jpg` for
   dst). A frame whose output exists and whose face did not change is not rewritten. Every frame read
   again here (or for a descriptor in phase 2) is hashed: only bytes identical to those the gate passed in
   phase 1 are used without scoring them again, so a frame swapped in before a resume is gated too.
Workers die with this process (`_watch_parent`): a `kill -9` of extract leaves no worker behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.framegate import POLICY
from facecast.faces.track import REFRESH, Obs, TrackResult, track_faces
from facecast.imaging.sharpness import face_sharpness
from facecast.media.images import atomic_write_bytes, decode_image, list_images, read_image
from facecast.workspace import Workspace

PROGRESS_FILE = "extract_progress.json"
REPORT_FILE = "extract_report.json"
SAVE_EVERY_S = 3.0
CHUNK = 48  # consecutive frames per worker job; each chunk starts with a scored frame and full placements


@dataclass
class ExtractSettings:
    """What decides the written faces; a change of any of these rewrites every output."""

    face_type: str = "whole_face"
    size: int = 512
    jpeg_quality: int = 95
    reference: list[str] = field(default_factory=list)
    smooth: bool = True
    landmarks_file: str | None = None
    min_score: float = 0.5


# -- responsible-use hooks (the lead wires these in) ---------------------------------------------------
def _responsible_checks(ws: Workspace, side: str) -> Any:
    """Responsible-use checks that run before any frame is read; none can be switched off.

    Extracting `src` builds material for rendering a person, so it needs that person's consent record
    (provenance/consent.py); the explicit-content gate runs on the frames in `_detect_chunk` (policy:
    framegate.py) and on every frame read again (`read_checked`). Loading the gate
    here too verifies its model hash once, before workers start, so a tampered install fails fast."""
    from facecast.provenance import content_gate, require_consent

    record = require_consent(ws) if side == "src" else None
    content_gate()
    return record


def _read_frame(path: str) -> tuple[dict[str, Any], np.ndarray]:
    """The frame's file identity (sha256 of its bytes, size, mtime) and its decoded RGB image."""
    p = Path(path)
    try:
        data = p.read_bytes()
        st = p.stat()
    except OSError as err:
        raise FacecastError(f"{path}: cannot read this frame ({err.strerror})") from None
    ident = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "mtime_ns": st.st_mtime_ns}
    return ident, decode_image(data, p.name)


def _unchanged(path: Path, ident: dict[str, Any] | None) -> bool:
    """Cheap resume check (size + mtime) that a detected frame's file was not replaced since."""
    if not ident:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == ident.get("bytes") and st.st_mtime_ns == ident.get("mtime_ns")


def read_checked(path: str | Path, record: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a frame that phase 1 saw, for any later use: (image, gate verdict record).

    The bytes must hash to what phase 1 recorded, whose gate verdict then covers them; anything else (a
    frame swapped in since, a progress file from an older version) is scored by the content gate now,
    which raises ContentRefused for explicit content."""
    from facecast.faces.framegate import gate_model_id
    from facecast.provenance import content_gate

    ident, image = _read_frame(str(path))
    gate_rec = record.get("gate")
    if gate_rec and ident["sha256"] == (record.get("file") or {}).get("sha256"):
        return image, gate_rec
    gate = content_gate()
    score = gate.check(image, Path(path).name)
    return image, {"model": gate_model_id(gate), "score": round(score, 5), "verdict": "ok",
                   "policy": "scored when read again (frame changed since detection)"}


# -- phase 1: content gate + detection over chunks of frames (runs in workers) -------------------------
def _watch_parent() -> None:
    """Exit this worker as soon as its parent process dies, whatever killed it (kill -9 included).

    ProcessPoolExecutor's workers otherwise wait forever on their call queue (each holds a copy of the
    pipe's write end, so it never reports end-of-file) and finish the job they hold: after a `kill -9` of
    extract they lived on at ~300 MB each. multiprocessing gives every spawned child a sentinel on its
    parent (a pipe end that becomes readable when the parent is gone, on every platform), so one daemon
    thread waits on it and ends the process."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="facecast-parent-watch", daemon=True).start()


def _init_worker() -> None:
    cv2.setNumThreads(1)
    _watch_parent()


def _face_record(f) -> dict[str, Any]:
    return {"rect": [float(v) for v in f.rect], "score": f.score, "landmarks": f.landmarks.round(3).tolist()}


def _detect_chunk(paths: list[str], min_score: float, indices: list[int] | None = None,
                  describe_every: int = 0) -> list[dict[str, Any]]:
    """Gate, detect and place landmarks on consecutive frames; one record per frame (see module docstring).

    Frames are decoded one ahead in a thread (OpenCV's decoder releases the GIL), so reading overlaps the
    models. A refused frame raises ContentRefused and the whole chunk's records are dropped.

    On frames whose index (`indices`, in the side's frame order) is a multiple of `describe_every`, each
    face also gets its 128-D identity descriptor: the tracker samples appearance on those frames
    (track.REFRESH), and at ~80 ms a face these were the serial part of a long extraction (11 s of an
    83 s, 2,000-frame 720p run in the parent process); here they are spread over the workers."""
    from facecast.faces.detect import FaceFollower
    from facecast.faces.framegate import SampledGate
    from facecast.faces.identity import face_descriptor
    from facecast.provenance import content_gate

    follower = FaceFollower(min_score)
    sampled = SampledGate(content_gate())
    out = []
    with ThreadPoolExecutor(1) as reader:
        ahead = deque(reader.submit(_read_frame, p) for p in paths[:2])
        for k, path in enumerate(paths):
            ident, image = ahead.popleft().result()
            if k + 2 < len(paths):
                ahead.append(reader.submit(_read_frame, paths[k + 2]))
            gate = sampled(Path(path).name, image)
            records = [_face_record(f) for f in follower(image)]
            if describe_every and indices is not None and indices[k] % describe_every == 0:
                for rec in records:  # from the rounded landmarks the tracker will ask with
                    rec["descriptor"] = face_descriptor(image, np.asarray(rec["landmarks"], np.float64)).round(6).tolist()
            out.append({"size": [int(image.shape[1]), int(image.shape[0])], "faces": records, "file": ident, "gate": gate})
    return out


def _chunks(paths: list[str], workers: int) -> list[list[str]]:
    size = max(1, min(CHUNK, -(-len(paths) // max(1, workers))))
    return [paths[i:i + size] for i in range(0, len(paths), size)]


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


def _map(fn, jobs: list[tuple], pool: ProcessPoolExecutor | None, progress, task, advance=None) -> Any:
    """Yield (job, result) as jobs finish; in-process without a pool (tests, tiny jobs).
    `advance(job[0])` is how far the progress bar moves per job (default 1)."""
    step = (lambda job: advance(job[0])) if advance else (lambda job: 1)
    if pool is None or len(jobs) <= 1:
        for job in jobs:
            yield job, fn(*job)
            progress.advance(task, step(job))
        return
    from concurrent.futures import as_completed

    futures = {pool.submit(fn, *job): job for job in jobs}
    try:
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
            progress.advance(task, step(futures[fut]))
    finally:
        for fut in futures:
            fut.cancel()


# -- phase 3: writing (runs in workers) ----------------------------------------------------------------
def _write_one(frame_path: str, face: dict[str, Any], settings: dict[str, Any], out_path: str,
               debug_path: str | None, detector: dict[str, str], record: dict[str, Any] | None = None) -> None:
    """Align, describe and write one face (+ its debug frame). `record` is the frame's phase-1 record
    (content hash + gate verdict); without one, or when the bytes differ, the frame is gated here."""
    from facecast.faces.align import align_face
    from facecast.faces.aligned import AlignedMeta, SourceInfo, write_aligned
    from facecast.faces.pose import estimate_pose

    image, gate = read_checked(frame_path, record or {})
    lm = np.asarray(face["landmarks"], dtype=np.float64)
    aligned, mat, lm_aligned = align_face(image, lm, settings["face_type"], settings["size"])
    meta = AlignedMeta(
        face_type=settings["face_type"], size=settings["size"], landmarks=lm_aligned.tolist(),
        source=SourceInfo(Path(frame_path).name, (image.shape[1], image.shape[0]), tuple(face["rect"]), lm.tolist()),
        image_to_face=mat.tolist(), face_index=0, identity=face["identity"], pose=estimate_pose(lm),
        sharpness=face_sharpness(aligned, lm_aligned), interpolated=face["interpolated"], detector=detector,
        extra={"score": face["score"], "manual": face["manual"]},
    )
    _set_gate(meta, gate)
    write_aligned(out_path, aligned, meta, jpeg_quality=settings["jpeg_quality"])
    if debug_path:
        atomic_write_bytes(debug_path, _debug_jpeg(image, face, mat, settings))


def _set_gate(meta: Any, gate: dict[str, Any]) -> None:
    """The frame's gate verdict as the metadata's `content_gate` record (train refuses faces without one)."""
    meta.content_gate = dict(gate)


def render_debug_frame(frame_path: str | Path, meta: Any) -> bytes:
    """An aligned_debug JPEG rendered on demand from a frame and its aligned face's metadata (the same
    picture extract writes to aligned_debug/), e.g. for the studio when the file was deleted or skipped."""
    from facecast.provenance import check_content

    image = read_image(frame_path)
    check_content(image, Path(frame_path).name)  # a read is a read: the gate sees it
    face = {"rect": list(meta.source.rect), "landmarks": meta.source.landmarks, "interpolated": bool(meta.interpolated)}
    return _debug_jpeg(image, face, np.asarray(meta.image_to_face, np.float64), {"size": meta.size})


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
    reference: list[str | Path] | None = None, smooth: bool = True, redo_deleted: bool = False,
    landmarks_file: str | Path | None = None, workers: int = 2, quiet: bool = False, min_score: float = 0.5,
    engine: Any = None,
) -> dict[str, Any]:
    """Extract aligned faces of one side; returns the report (also written to extract_report.json).

    `engine` (facecast.cluster.engine.RayEngine) runs phases 1 and 3 as cluster tasks instead of local
    workers: phase 1 in chunks of CHUNK frames, the chunking of a one-worker run (a chunk's records
    depend on where it starts: key frames, gate samples), so the output matches a single-process run;
    phase 2 (tracking across all frames) stays here, on the head."""
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
    # a frame replaced since it was detected (or recorded by a version without hashes and gate verdicts)
    # is detected and gated again
    for name in list(done):
        if name in names and not (done[name].get("gate") and _unchanged(frames[names[name]], done[name].get("file"))):
            done.pop(name)
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

    todo_paths = [str(p) for p in frames if p.name not in done]
    pending_writes = len(frames) - len(written)
    n_workers = 1 if engine is not None else _workers_for(workers, max(len(todo_paths), pending_writes))
    todo = [(chunk, min_score, [names[Path(p).name] for p in chunk], REFRESH) for chunk in _chunks(todo_paths, n_workers)]
    pool = _pool(n_workers)
    try:
        report = _run(ws, side, frames, names, settings, manual, ref_desc, done, written, todo, save, pool,
                      quiet, out_dir, debug_dir, engine)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    atomic_write_bytes(data_dir / REPORT_FILE, json.dumps(report, indent=2).encode())
    return report


def _run(ws, side, frames, names, settings, manual, ref_desc, done, written, todo, save, pool, quiet,
         out_dir, debug_dir, engine=None) -> dict[str, Any]:
    """Phases 1-3 of `extract` (see the module docstring); `save` persists the progress file."""
    from facecast.console import make_progress

    # phases 1 and 3 map jobs over local workers, or over the cluster's tasks (same contract)
    mapper = engine.mapper(ws, f"extract-{side}") if engine is not None else _map
    data_dir = ws.data(side)
    last_save = time.monotonic()
    with make_progress(quiet) as progress:
        task = progress.add_task(f"detect {side}", total=sum(len(job[0]) for job in todo))
        try:
            for (paths, *_), results in mapper(_detect_chunk, todo, pool, progress, task, advance=len):
                for path, result in zip(paths, results):
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

            for rec in done[frames[i].name]["faces"]:  # computed by a worker (_detect_chunk)
                if "descriptor" in rec and np.array_equal(np.asarray(rec["landmarks"], np.float64), lm):
                    return np.asarray(rec["descriptor"], np.float32)
            if i not in cache:
                cache.clear()
                cache[i] = read_checked(frames[i], done[frames[i].name])[0]
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
                       "interpolated": face.interpolated, "manual": face.manual,
                       "frame_sha256": (done[name].get("file") or {}).get("sha256")}
            out = out_dir / f"{frames[i].stem}_0.jpg"
            dbg = debug_dir / f"{frames[i].stem}.jpg" if debug_dir else None
            if written.get(name) == payload and out.exists() and (dbg is None or dbg.exists()):
                continue
            d = dict(detector, name="manual") if face.manual else detector
            jobs.append((str(frames[i]), payload, asdict(settings), str(out), str(dbg) if dbg else None, d, done[name]))
        # faces no longer kept (another --reference, a redo) must not linger in the faceset
        for name in set(written) - keep_names:
            (out_dir / f"{Path(name).stem}_0.jpg").unlink(missing_ok=True)
            written.pop(name)
        task2 = progress.add_task(f"write {side}", total=len(jobs))
        try:
            for job, _ in mapper(_write_one, jobs, pool, progress, task2):
                written[Path(job[0]).name] = job[1]
        finally:
            save()
    return _report(side, frames, done, result, sum(len(job[0]) for job in todo), len(jobs))


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
        "content_gate": {"policy": POLICY, "frames_scored": sum(1 for p in frames if (done[p.name].get("gate") or {}).get("policy") == "scored"),
                         "frames_covered": sum(1 for p in frames if (done[p.name].get("gate") or {}).get("policy", "scored") != "scored")},
        "frames_without_face_list": without,
    }
