"""Manual re-extract of one frame (DeepFaceLab's manual extractor), and the queue of frames to review.

Why its own module: the studio's "Fix a frame" page must write exactly what `facecast extract` writes
(same alignment, same metadata keys, same debug frame), from a box and 68 points the user placed or
corrected, without re-running extraction for the whole side. The pieces:

- `landmarks_in_box`: the landmark model (the detector backend's `landmarks`) run in the user's box;
- `align_preview`: the aligned face those points give, for the live preview;
- `save_manual_face`: responsible-use checks as in extract (the frame passes the content gate; a src
  frame needs the source person's consent), then the aligned face + metadata (`detector.name` =
  "manual", `extra.manual` = True), the dst debug frame, and the points added to
  `data_<side>/manual_landmarks.json`, the file `facecast extract --landmarks` reads, so a later full
  re-extract keeps the fix;
- `review_queue`: frames worth a look, worst first: missed (no face), interpolated (gap-filled by the
  tracker), low detector confidence, and outlier landmarks (aligned shape far from the set's median).

The face file keeps its name (a sorted faceset keeps its order) and its first name (`original_name`);
hand-drawn mask polygons are carried over into the new alignment; an XSeg mask is dropped (it belongs
to the old alignment: `xseg apply` writes a new one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.align import align_face, invert, transform_points
from facecast.faces.aligned import AlignedMeta, SourceInfo, list_aligned, read_meta, write_aligned
from facecast.faces.extract import PROGRESS_FILE, REPORT_FILE, ExtractSettings
from facecast.faces.facetype import get_face_type
from facecast.faces.pose import estimate_pose
from facecast.imaging.sharpness import face_sharpness
from facecast.media.images import atomic_write_bytes, encode_image, list_images, read_image
from facecast.workspace import Workspace

MANUAL_LANDMARKS_FILE = "manual_landmarks.json"
MANUAL_DETECTOR = "manual"
LOW_SCORE = 0.7  # detector confidence under which a face is queued for review
OUTLIER_Z = 3.5  # robust z-score of the aligned-shape deviation above which landmarks are suspicious
REASONS = ("missed", "interpolated", "low_confidence", "outlier_landmarks", "debug_deleted")


@dataclass(frozen=True)
class FaceSettings:
    """How the side's faces were written (face type, size, JPEG quality): a manual face must match."""

    face_type: str
    size: int
    jpeg_quality: int = 95


def _points(landmarks: Any, name: str = "landmarks") -> np.ndarray:
    try:
        lm = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        lm = np.zeros(0)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise FacecastError(f"{name}: need 68 finite [x, y] points, got shape {lm.shape}")
    return lm


def _rect(rect: Any) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in rect)
    except (TypeError, ValueError):
        raise FacecastError(f"face box must be [x0, y0, x1, y1], got {rect!r}") from None
    if not (np.isfinite([x0, y0, x1, y1]).all() and x1 - x0 >= 4 and y1 - y0 >= 4):
        raise FacecastError(f"face box {rect!r} is empty or too small (at least 4 px each way)")
    return (x0, y0, x1, y1)


def box_from_landmarks(landmarks: Any) -> tuple[float, float, float, float]:
    """The tight box around 68 points (what extract's `--landmarks` file gives a face)."""
    lm = _points(landmarks)
    lo, hi = lm.min(0), lm.max(0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def landmarks_in_box(image: np.ndarray, rect: Any) -> np.ndarray:
    """68 points (frame pixels) from the landmark model run inside the user's box."""
    from facecast.faces.detect import get_detector

    return np.asarray(get_detector().landmarks(np.ascontiguousarray(image), _rect(rect)), dtype=np.float64)


def align_preview(image: np.ndarray, landmarks: Any, settings: FaceSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aligned face, 2x3 matrix, aligned landmarks): exactly extract's alignment of these points."""
    return align_face(image, _points(landmarks), settings.face_type, settings.size)


# -- where a side's faces are --------------------------------------------------------------------------
def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def face_settings(ws: Workspace, side: str) -> FaceSettings:
    """The settings extract used on this side (its progress file), else those of its first face,
    else extract's defaults."""
    saved = _load_json(ws.data(side) / PROGRESS_FILE).get("settings") or {}
    if saved.get("face_type") and saved.get("size"):
        return FaceSettings(str(saved["face_type"]), int(saved["size"]), int(saved.get("jpeg_quality", 95)))
    folder = ws.aligned(side)
    for p in list_aligned(folder) if folder.is_dir() else []:
        try:
            meta = read_meta(p)
        except FacecastError:
            continue
        return FaceSettings(meta.face_type, int(meta.size))
    d = ExtractSettings()
    return FaceSettings(d.face_type, d.size, d.jpeg_quality)


def aligned_index(folder: Path) -> dict[str, tuple[Path, AlignedMeta]]:
    """Frame name -> (aligned file, metadata) of face 0 of that frame, whatever the file is called now
    (sorting renames files; the frame name lives in the metadata)."""
    out: dict[str, tuple[Path, AlignedMeta]] = {}
    if not folder.is_dir():
        return out
    for p in list_aligned(folder):
        try:
            meta = read_meta(p)
        except FacecastError:
            continue
        if meta.face_index == 0:
            out.setdefault(meta.source.filename, (p, meta))
    return out


def find_aligned(folder: Path, frame_name: str) -> tuple[Path, AlignedMeta] | None:
    """The aligned face of a frame: extract's name first (cheap), else a metadata scan."""
    stem = Path(frame_name).stem
    for suffix in (".jpg", ".png", ".jpeg"):
        p = folder / f"{stem}_0{suffix}"
        if p.is_file():
            try:
                meta = read_meta(p)
            except FacecastError:
                break
            if meta.source.filename == frame_name:
                return p, meta
    return aligned_index(folder).get(frame_name)


def frame_path(ws: Workspace, side: str, frame_name: str) -> Path:
    """A frame of a side by name; refuses anything that is not a plain file name of that folder."""
    if Path(frame_name).name != frame_name or frame_name.startswith("."):
        raise FacecastError(f"{frame_name!r} is not a frame name")
    path = ws.data(side) / frame_name
    if not path.is_file():
        raise FacecastError(f"{path}: frame not found; run `facecast frames {side}` first")
    return path


# -- writing -------------------------------------------------------------------------------------------
def _carry_polygons(old: AlignedMeta | None, new_mat: np.ndarray, size: int) -> list[dict[str, Any]] | None:
    """Hand-drawn polygons of the old alignment mapped into the new one (frame coords in between)."""
    if old is None or not old.mask_polygons:
        return None
    to_new = new_mat
    from_old = invert(old.matrix)
    out = []
    for poly in old.mask_polygons:
        pts = transform_points(transform_points(np.asarray(poly["points"], np.float64), from_old), to_new)
        out.append({"type": poly["type"], "points": np.clip(pts, -size, 2 * size).round(3).tolist()})
    return out


def _debug_jpeg(image: np.ndarray, rect: tuple[float, ...], lm: np.ndarray, mat: np.ndarray, size: int) -> bytes:
    """The frame with the box (magenta: placed by hand), landmarks and face-type square, as extract draws."""
    out = image.copy()
    th = max(1, round(max(image.shape[:2]) / 500))
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    cv2.rectangle(out, (x0, y0), (x1, y1), (255, 0, 255), th)
    for x, y in lm:
        cv2.circle(out, (int(round(x)), int(round(y))), th + 1, (255, 0, 0), -1)
    square = transform_points(np.array([[0, 0], [size, 0], [size, size], [0, size]], float), invert(mat))
    cv2.polylines(out, [square.round().astype(np.int32)], True, (0, 160, 255), th)
    return encode_image(out, ".jpg", jpeg_quality=90)


def _record_landmarks(ws: Workspace, side: str, frame_name: str, lm: np.ndarray) -> None:
    """Add the frame's points to the `--landmarks` file, so `facecast extract --landmarks` keeps them."""
    path = ws.data(side) / MANUAL_LANDMARKS_FILE
    data = _load_json(path)
    data[frame_name] = np.asarray(lm, np.float64).round(3).tolist()
    atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode())


def _responsible_checks(ws: Workspace, side: str, image: np.ndarray, name: str) -> dict[str, Any]:
    """As in extract: a src face needs the source person's consent; every frame passes the content gate
    (raises ContentRefused). Returns the gate's verdict, which the face's metadata records as extract's
    faces do (`content_gate`)."""
    from facecast.provenance import content_gate, require_consent

    if side == "src":
        require_consent(ws)
    gate = content_gate()
    score = gate.check(image, name)
    model = getattr(gate, "model_id", None) or ("open_nsfw" if getattr(gate, "model_path", None) else "stand-in")
    return {"model": str(model), "score": round(float(score), 5), "verdict": "ok",
            "policy": "scored when the face was placed by hand (studio: fix a frame)"}


def _set_gate(meta: AlignedMeta, verdict: dict[str, Any]) -> None:
    """`content_gate` as a metadata field where AlignedMeta has one, else in `extra` (as extract does)."""
    if "content_gate" in AlignedMeta.__dataclass_fields__:
        setattr(meta, "content_gate", dict(verdict))
    else:
        meta.extra["content_gate"] = dict(verdict)


def _detector_version() -> str:
    from facecast.faces.landmarks import predictor_version

    return f"placed by hand in facecast studio; box re-detection: {predictor_version()}"


def save_manual_face(ws: Workspace, side: str, frame_name: str, landmarks: Any,
                     rect: Any | None = None, identity: int | str | None = None) -> dict[str, Any]:
    """Write the aligned face of `frame_name` from the user's 68 points (frame pixels).

    Returns {"path", "frame", "landmarks" (aligned), "image_to_face", "replaced"}."""
    path = frame_path(ws, side, frame_name)
    lm = _points(landmarks)
    box = _rect(rect) if rect is not None else box_from_landmarks(lm)
    image = read_image(path)
    h, w = image.shape[:2]
    if not ((lm[:, 0] > -w) & (lm[:, 0] < 2 * w) & (lm[:, 1] > -h) & (lm[:, 1] < 2 * h)).all():
        raise FacecastError(f"{frame_name}: landmarks lie far outside the {w}x{h} frame")
    verdict = _responsible_checks(ws, side, image, frame_name)
    settings = face_settings(ws, side)
    get_face_type(settings.face_type)
    folder = ws.aligned(side)
    folder.mkdir(parents=True, exist_ok=True)
    found = find_aligned(folder, frame_name)
    old = found[1] if found else None
    out = found[0] if found else folder / f"{Path(frame_name).stem}_0.jpg"
    if identity is None:
        identity = old.identity if old is not None else _load_json(ws.data(side) / REPORT_FILE).get("kept_identity")
    aligned, mat, lm_aligned = align_preview(image, lm, settings)
    extra: dict[str, Any] = {"score": 1.0, "manual": True}
    if old is not None and "original_name" in old.extra:
        extra["original_name"] = old.extra["original_name"]
    meta = AlignedMeta(
        face_type=settings.face_type, size=settings.size, landmarks=lm_aligned.tolist(),
        source=SourceInfo(frame_name, (w, h), box, lm.tolist()),
        image_to_face=mat.tolist(), face_index=0, identity=identity, pose=estimate_pose(lm),
        sharpness=face_sharpness(aligned, lm_aligned), interpolated=False,
        mask_polygons=_carry_polygons(old, mat, settings.size),
        detector={"name": MANUAL_DETECTOR, "version": _detector_version()}, extra=extra,
    )
    _set_gate(meta, verdict)
    write_aligned(out, aligned, meta, jpeg_quality=settings.jpeg_quality)
    if side == "dst":
        ws.aligned_debug.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(ws.aligned_debug / f"{Path(frame_name).stem}.jpg",
                           _debug_jpeg(image, box, lm, mat, settings.size))
    _record_landmarks(ws, side, frame_name, lm)
    return {"path": str(out), "frame": frame_name, "landmarks": lm_aligned.tolist(),
            "image_to_face": mat.tolist(), "replaced": old is not None}


# -- the review queue ----------------------------------------------------------------------------------
def _robust_z(values: np.ndarray) -> np.ndarray:
    med = np.median(values)
    mad = np.median(np.abs(values - med)) * 1.4826
    return (values - med) / max(mad, 1e-6)


def shape_deviation(metas: list[AlignedMeta]) -> np.ndarray:
    """Per face: mean distance (fraction of the face size) of its aligned landmarks from the median
    aligned shape of the set. Alignment removes pose in the image plane, so a big deviation is a
    mis-placed point set (or an extreme expression/profile: worth a look either way)."""
    if not metas:
        return np.zeros(0)
    shapes = np.stack([m.landmarks_array / float(m.size) for m in metas])
    median = np.median(shapes, axis=0)
    return np.linalg.norm(shapes - median, axis=2).mean(1)


def review_queue(ws: Workspace, side: str = "dst", low_score: float = LOW_SCORE,
                 outlier_z: float = OUTLIER_Z) -> list[dict[str, Any]]:
    """Frames to review, most urgent first: missed, interpolated, low confidence, outlier landmarks,
    then (dst) faces whose debug frame the user deleted (DeepFaceLab's way of marking a bad face).
    Each entry: {"frame", "reasons", "face" (aligned file name or None), "score", "deviation"}."""
    frames = list_images(ws.data(side)) if ws.data(side).is_dir() else []
    index = aligned_index(ws.aligned(side))
    with_face = [f.name for f in frames if f.name in index]
    metas = [index[n][1] for n in with_face]
    dev = shape_deviation(metas)
    z = _robust_z(dev) if len(dev) >= 5 else np.zeros(len(dev))
    stats = {n: (float(d), float(zz)) for n, d, zz in zip(with_face, dev, z)}
    order = {f.name: i for i, f in enumerate(frames)}
    debug = ws.aligned_debug if side == "dst" else None
    entries = []
    for f in frames:
        name, reasons = f.name, []
        item = index.get(name)
        score = None
        if item is None:
            reasons.append("missed")
        else:
            meta = item[1]
            manual = meta.detector.get("name") == MANUAL_DETECTOR or bool(meta.extra.get("manual"))
            score = meta.extra.get("score")
            if meta.interpolated:
                reasons.append("interpolated")
            if not manual and isinstance(score, (int, float)) and score < low_score:
                reasons.append("low_confidence")
            if not manual and stats[name][1] > outlier_z:
                reasons.append("outlier_landmarks")
            if debug is not None and debug.is_dir() and not (debug / f"{f.stem}.jpg").exists():
                reasons.append("debug_deleted")
        if reasons:
            d, zz = stats.get(name, (None, None))
            entries.append({"frame": name, "reasons": reasons, "face": item[0].name if item else None,
                            "score": score, "deviation": None if d is None else round(d, 4),
                            "z": None if zz is None else round(zz, 2)})
    rank = {r: i for i, r in enumerate(REASONS)}
    entries.sort(key=lambda e: (min(rank[r] for r in e["reasons"]), order[e["frame"]]))
    return entries
