"""`facecast score`: objective numbers for a swap, per frame and per shot.

Two sources of swapped faces:
- **merged** (default when `data_dst/merged/` has frames): each dst aligned face's stored matrix cuts
  the same square out of the dst frame and the merged frame, so colour, sharpness and flicker compare
  like with like and head motion cancels. Landmarks on the swapped face are placed again inside dst's
  face box (the face should not have moved); identity is read in the full frame.
- **predict** (nothing merged yet): the model predicts on the aligned dst faces, composited with its own
  dst mask, and everything is measured on the aligned squares.

The src identity is the centroid of dlib descriptors of (up to `max_src`) faces in data_src/aligned.
Writes `score.json` (settings, summary, per-shot, per-frame, worst frames) and `score.png` (per-frame
plot) into the workspace root.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.align import align_face, transform_points, warp_to_face
from facecast.faces.aligned import AlignedFace, AlignedMeta, list_aligned, read_aligned, read_meta
from facecast.faces.identity import centroid, descriptor_distance, face_descriptor, shape_68
from facecast.imaging.hull import hull_mask
from facecast.media.images import atomic_write_bytes, list_images, read_image
from facecast.quality import metrics as M
from facecast.workspace import Workspace

SCORE_JSON = "score.json"
SCORE_PNG = "score.png"


@dataclass
class ScoreSettings:
    """What `score` measures on; JSON-serialised into score.json so two runs can be compared."""

    model_name: str | None = None
    source: str = "auto"  # auto | merged | predict ("auto": merged frames when there are any)
    max_src: int = 48  # src faces for the identity centroid (descriptors cost ~80 ms each)
    worst: int = 8  # how many worst frames to list
    batch: int = 16  # predict-mode batch size
    diff_threshold: float = 6.0  # grey levels: where no merged_mask exists, "changed" pixels = swapped region


@dataclass
class FaceSample:
    """One swapped face and its dst original, both in dst's aligned coordinates."""

    frame: str
    frame_number: int
    track: str
    dst_face: np.ndarray
    swap_face: np.ndarray
    swap_mask: np.ndarray
    dst_landmarks: np.ndarray
    swap_landmarks: np.ndarray
    dst_desc: np.ndarray
    swap_desc: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


# -- helpers -----------------------------------------------------------------------------------------
def place_landmarks(image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """68 points inside `rect` (x0, y0, x1, y1): the extraction stage's placement when installed,
    else dlib's predictor directly (the same model)."""
    try:
        from facecast.faces.landmarks import landmarks_for_rect  # type: ignore[import-not-found]
    except ImportError:
        return shape_68(image, rect)
    return np.asarray(landmarks_for_rect(image, tuple(float(v) for v in rect)), np.float64).reshape(68, 2)


def _frame_number(name: str, fallback: int) -> int:
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else fallback


def _track(meta: AlignedMeta) -> str:
    return str(meta.identity) if meta.identity is not None else f"face{meta.face_index}"


def _rect_of(points: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = points.min(0), points.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _frame_index(folder: Path) -> dict[str, Path]:
    """stem -> image path of a frames folder (merged frames are PNG whatever the dst frames were)."""
    return {p.stem: p for p in list_images(folder)} if folder.is_dir() else {}


def _find_frame(folder: Path, stem: str) -> Path | None:
    return _frame_index(folder).get(stem)


def src_centroid(ws: Workspace, max_src: int, quiet: bool = True) -> tuple[np.ndarray, float, int]:
    """(centroid, mean distance of src faces to it, faces used) from data_src/aligned."""
    from facecast.console import track

    paths = list_aligned(ws.aligned("src")) if ws.aligned("src").is_dir() else []
    if not paths:
        raise FacecastError(f"no src faces in {ws.aligned('src')}: run `facecast extract -w {ws.root} --side src` first")
    if len(paths) > max_src:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, max_src).round().astype(int)]
    descs = []
    for p in track(paths, description="src identity", quiet=quiet):
        face = read_aligned(p)
        descs.append(face_descriptor(face.image, face.meta.landmarks_array))
    c = centroid(descs)
    spread = float(np.mean([descriptor_distance(d, c) for d in descs]))
    return c, spread, len(descs)


# -- gathering samples -------------------------------------------------------------------------------
def _diff_mask(swap: np.ndarray, dst: np.ndarray, threshold: float) -> np.ndarray:
    """Where the merge changed pixels: the swapped region when the merger wrote no mask."""
    diff = np.abs(swap.astype(np.int16) - dst.astype(np.int16)).mean(axis=2)
    m = (diff > threshold).astype(np.uint8)
    k = max(3, (swap.shape[0] // 32) | 1)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    return cv2.GaussianBlur(m.astype(np.float32), (k, k), 0)


def merged_samples(ws: Workspace, settings: ScoreSettings, quiet: bool,
                   names: list[str] | None = None) -> list[FaceSample]:
    """Pair every dst aligned face (or only those `names`: one cluster shard) with its merged frame."""
    from facecast.console import track

    wanted = None if names is None else set(names)
    metas = [(i, p, read_meta(p)) for i, p in enumerate(list_aligned(ws.aligned("dst")))
             if wanted is None or p.name in wanted]
    samples: list[FaceSample] = []
    cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None] | None] = {}
    merged_idx, mask_idx, dst_idx = _frame_index(ws.merged), _frame_index(ws.merged_mask), _frame_index(ws.data("dst"))
    for i, path, meta in track(metas, description="scoring merged", quiet=quiet):
        name = meta.source.filename
        stem = Path(name).stem
        if name not in cache:
            merged_path = merged_idx.get(stem)
            if merged_path is None:
                cache[name] = None
            else:
                dst_path = ws.data("dst") / Path(name).name
                if not dst_path.exists():
                    found = dst_idx.get(stem)
                    if found is None:
                        raise FacecastError(f"{dst_path}: dst frame of {path.name} is missing; re-run `facecast frames`")
                    dst_path = found
                dst, merged = read_image(dst_path), read_image(merged_path)
                if dst.shape != merged.shape:
                    raise FacecastError(
                        f"{merged_path}: size {merged.shape[1]}x{merged.shape[0]} differs from its dst frame "
                        f"{dst.shape[1]}x{dst.shape[0]}; re-run `facecast merge`"
                    )
                mask_path = mask_idx.get(stem)
                mask = read_image(mask_path, cv2.IMREAD_GRAYSCALE) if mask_path else None
                cache = {name: (dst, merged, mask)}  # frames come in order: keep only the current one
        entry = cache.get(name)
        if entry is None:
            continue
        dst, merged, mask = entry
        mat, size = meta.matrix, meta.size
        dst_face, swap_face = warp_to_face(dst, mat, size), warp_to_face(merged, mat, size)
        if mask is not None:
            swap_mask = warp_to_face(mask, mat, size, cv2.INTER_LINEAR).astype(np.float32) / 255.0
        else:
            swap_mask = _diff_mask(swap_face, dst_face, settings.diff_threshold)
        # Both faces get their points from the same placer in the same box, so its bias cancels and
        # an unchanged face scores exactly 0 on pose and expression.
        dst_lm = place_landmarks(dst, meta.source.rect)
        swap_lm = place_landmarks(merged, meta.source.rect)
        samples.append(
            FaceSample(
                frame=name,
                frame_number=_frame_number(name, i),
                track=_track(meta),
                dst_face=dst_face,
                swap_face=swap_face,
                swap_mask=swap_mask,
                dst_landmarks=transform_points(dst_lm, mat),
                swap_landmarks=transform_points(swap_lm, mat),
                dst_desc=face_descriptor(dst, dst_lm),
                swap_desc=face_descriptor(merged, swap_lm),
            )
        )
    return samples


def _model_framed(ws: Workspace, face: AlignedFace, face_type: str, res: int) -> AlignedFace:
    """The aligned face framed as the model expects (its face type and resolution): re-cut from the
    dst frame when the face type differs, else resized. Landmarks follow."""
    meta = face.meta
    if face_type and face_type != meta.face_type:
        frame_path = _find_frame(ws.data("dst"), Path(meta.source.filename).stem)
        if frame_path is None:
            raise FacecastError(
                f"{face.path}: is {meta.face_type} but the model wants {face_type}, and its frame "
                f"{meta.source.filename} is not in {ws.data('dst')} to re-cut it; re-extract dst as {face_type}"
            )
        image, mat, lm = align_face(read_image(frame_path), meta.source_landmarks, face_type, res)
        return AlignedFace(image, replace(meta, face_type=face_type, size=res, landmarks=lm.tolist(),
                                          image_to_face=mat.tolist()), face.path)
    if meta.size != res:
        k = res / meta.size
        image = cv2.resize(face.image, (res, res), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        return AlignedFace(image, replace(meta, size=res, landmarks=(meta.landmarks_array * k).tolist()), face.path)
    return face


def predicted_samples(ws: Workspace, model_dir: Path, settings: ScoreSettings, quiet: bool) -> list[FaceSample]:
    """Predict the swap for each dst aligned face (nothing merged yet) and measure on the squares."""
    from facecast.console import track

    try:
        from facecast.train.predict import load_predictor  # type: ignore[import-not-found]
    except ImportError:
        raise FacecastError("scoring without merged frames needs the training stage (facecast.train.predict)") from None
    predictor = load_predictor(model_dir)
    paths = list_aligned(ws.aligned("dst"))
    samples: list[FaceSample] = []
    batches = [paths[i : i + settings.batch] for i in range(0, len(paths), settings.batch)]
    res = int(predictor.resolution)
    face_type = str(getattr(predictor, "face_type", "") or "")
    for batch in track(batches, description="predicting", quiet=quiet):
        faces = [_model_framed(ws, read_aligned(p), face_type, res) for p in batch]
        dst = np.stack([f.image for f in faces])
        out = predictor.predict(dst)
        pred = np.clip(np.asarray(out.face, np.float32), 0, 1)
        m = np.asarray(out.dst_mask, np.float32).reshape(len(faces), res, res, 1)
        swap = np.clip((pred * m + dst.astype(np.float32) / 255.0 * (1 - m)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        for j, f in enumerate(faces):
            rect = _rect_of(f.meta.landmarks_array)
            dst_lm = place_landmarks(dst[j], rect)
            swap_lm = place_landmarks(swap[j], rect)
            samples.append(
                FaceSample(
                    frame=f.meta.source.filename,
                    frame_number=_frame_number(f.meta.source.filename, len(samples)),
                    track=_track(f.meta),
                    dst_face=dst[j],
                    swap_face=swap[j],
                    swap_mask=m[j, ..., 0],
                    dst_landmarks=dst_lm,
                    swap_landmarks=swap_lm,
                    dst_desc=face_descriptor(dst[j], dst_lm),
                    swap_desc=face_descriptor(swap[j], swap_lm),
                )
            )
    return samples


# -- measuring ---------------------------------------------------------------------------------------
def _nanmean(values: list[float]) -> float | None:
    arr = np.asarray([v for v in values if v is not None], np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def measure(samples: list[FaceSample], src_c: np.ndarray) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-frame records and per-shot summaries for gathered samples (pure: no I/O)."""
    ident = M.identity_scores(
        np.array([s.swap_desc for s in samples]), src_c, np.array([s.dst_desc for s in samples])
    )
    estimator = M.default_pose_estimator()
    records: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        hull = hull_mask(s.dst_landmarks, s.dst_face.shape[0], forehead=0.2)
        rec: dict[str, Any] = {
            "frame": s.frame,
            "frame_number": s.frame_number,
            "track": s.track,
            "id_to_src": ident.to_src[i],
            "id_to_dst": ident.to_dst[i],
            "closer_to_src": ident.closer_to_src[i],
            "expression_error": M.expression_error(s.swap_landmarks, s.dst_landmarks),
            "sharpness_ratio": M.sharpness_ratio(s.swap_face, s.dst_face, hull),
        }
        if estimator is not None:
            pe = M.pose_error(s.swap_landmarks, s.dst_landmarks, estimator)
            rec.update({f"{k}_error": pe[k] for k in M.POSE_KEYS}, pose_error=pe["total"])
        rec["_swap_stats"] = M.region_stats(s.swap_face, hull)
        rec["_dst_stats"] = M.region_stats(s.dst_face, hull)
        rec["_swap_mask"] = s.swap_mask
        rec["_dst_mask"] = hull
        records.append(rec)

    shots: list[dict[str, Any]] = []
    for trk in sorted({r["track"] for r in records}):
        idx = sorted((i for i, r in enumerate(records) if r["track"] == trk), key=lambda i: records[i]["frame_number"])
        shot_ids = M.split_shots([records[i]["frame_number"] for i in idx], [records[i]["_dst_stats"] for i in idx])
        for shot in sorted(set(shot_ids)):
            members = [i for i, sid in zip(idx, shot_ids) if sid == shot]
            swap_c = M.temporal_change([records[i]["_swap_stats"] for i in members])
            dst_c = M.temporal_change([records[i]["_dst_stats"] for i in members])
            swap_m = M.mask_change([records[i]["_swap_mask"] for i in members])
            dst_m = M.mask_change([records[i]["_dst_mask"] for i in members])
            for j, i in enumerate(members):
                records[i]["shot"] = f"{trk}/{shot}"
                records[i]["colour_jump"] = float(swap_c[j - 1]) if j else 0.0
                records[i]["dst_colour_jump"] = float(dst_c[j - 1]) if j else 0.0
                records[i]["mask_jump"] = float(swap_m[j - 1]) if j else 0.0
            recs = [records[i] for i in members]
            shots.append(
                {
                    "shot": f"{trk}/{shot}",
                    "track": trk,
                    "frames": len(members),
                    "first": recs[0]["frame"],
                    "last": recs[-1]["frame"],
                    **_summary(recs),
                    "colour_flicker": M.flicker_ratio(swap_c, dst_c, M.COLOUR_FLOOR),
                    "mask_flicker": M.flicker_ratio(swap_m, dst_m, M.MASK_FLOOR),
                    "mask_jump": float(swap_m.mean()) if len(swap_m) else 0.0,
                }
            )
    for r in records:
        for k in [k for k in r if k.startswith("_")]:
            del r[k]
    _badness(records)
    return records, shots


def _summary(recs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id_to_src": _nanmean([r["id_to_src"] for r in recs]),
        "id_to_dst": _nanmean([r["id_to_dst"] for r in recs]),
        "retrieval": float(np.mean([r["closer_to_src"] for r in recs])) if recs else None,
        "expression_error": _nanmean([r["expression_error"] for r in recs]),
        "sharpness_ratio": float(np.median([r["sharpness_ratio"] for r in recs])) if recs else None,
    }
    if recs and "pose_error" in recs[0]:
        out["pose_error"] = _nanmean([r["pose_error"] for r in recs])
        for k in M.POSE_KEYS:
            out[f"{k}_error"] = _nanmean([r[f"{k}_error"] for r in recs])
    return out


BADNESS_KEYS = {  # metric -> sign (+1: larger is worse)
    "id_to_src": 1.0,
    "id_to_dst": -1.0,
    "pose_error": 1.0,
    "expression_error": 1.0,
    "sharpness_ratio": -1.0,
    "excess_colour_jump": 1.0,
}


def _badness(records: list[dict[str, Any]]) -> None:
    """Rank-based badness in [0, 1]: the mean percentile over metrics (1 = worst frame on every one),
    plus `worst_on`, the metric on which the frame ranks worst (where a user should look)."""
    n = len(records)
    for r in records:
        r["excess_colour_jump"] = r.get("colour_jump", 0.0) - r.get("dst_colour_jump", 0.0)
    ranks: dict[str, np.ndarray] = {}
    for key, sign in BADNESS_KEYS.items():
        if n and key in records[0]:
            vals = np.array([sign * float(r[key]) for r in records])
            ranks[key] = vals.argsort().argsort() / max(n - 1, 1)
    for i, r in enumerate(records):
        per = {k: float(v[i]) for k, v in ranks.items()}
        r["badness"] = float(np.mean(list(per.values()))) if per else 0.0
        r["worst_on"] = max(per, key=per.get) if per else ""


# -- outputs -----------------------------------------------------------------------------------------
def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Per-frame plot: identity, pose/expression, sharpness, colour jumps (PNG, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(records))
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(x, [r["id_to_src"] for r in records], label="to src centroid")
    axes[0].plot(x, [r["id_to_dst"] for r in records], label="to dst")
    axes[0].axhline(0.6, color="grey", ls="--", lw=0.8, label="same-person threshold")
    axes[0].set_ylabel("identity distance")
    if records and "pose_error" in records[0]:
        axes[1].plot(x, [r["pose_error"] for r in records], label="pose error (deg)")
    ax1b = axes[1].twinx()
    ax1b.plot(x, [r["expression_error"] for r in records], color="C3", label="expression error (IOD)")
    axes[1].set_ylabel("pose (deg)")
    ax1b.set_ylabel("expression (IOD)")
    axes[2].plot(x, [r["sharpness_ratio"] for r in records], label="sharpness swap/dst")
    axes[2].axhline(1.0, color="grey", ls="--", lw=0.8)
    axes[3].plot(x, [r.get("colour_jump", 0.0) for r in records], label="swap colour jump")
    axes[3].plot(x, [r.get("dst_colour_jump", 0.0) for r in records], label="dst colour jump")
    axes[3].set_ylabel("Lab units")
    axes[3].set_xlabel("face (in frame order)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=7)
    ax1b.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _model_dir(ws: Workspace, name: str | None) -> Path:
    if name:
        d = ws.model(name)
        if not d.is_dir():
            raise FacecastError(f"model {name!r} not found in {ws.models}: train it with `facecast train -w {ws.root} --model {name}`")
        return d
    models = sorted(p for p in ws.models.iterdir() if p.is_dir()) if ws.models.is_dir() else []
    if len(models) == 1:
        return models[0]
    if not models:
        raise FacecastError(f"nothing merged in {ws.merged} and no model in {ws.models}: run `facecast train` and `facecast merge` first")
    raise FacecastError(f"nothing merged and several models in {ws.models}: pick one with --model NAME")


def sample_shard(ws_root: str, settings: dict[str, Any], name: str) -> list[FaceSample]:
    """One aligned dst face's sample (0 or 1), computed where a cluster task runs it."""
    return merged_samples(Workspace.open(ws_root), ScoreSettings(**settings), True, names=[name])


def _sharded_samples(ws: Workspace, settings: ScoreSettings, engine: Any) -> list[FaceSample]:
    """`merged_samples` with the per-face work (landmarks, descriptors: the cost) mapped over a cluster by
    `engine.mapper` (facecast.cluster); samples come back in the faceset's order, so shots and flicker are
    measured exactly as in one process."""
    names = [p.name for p in list_aligned(ws.aligned("dst"))]
    jobs = [(str(ws.root), asdict(settings), name) for name in names]
    by_name = {job[2]: res for job, res in engine.mapper(ws, "score")(sample_shard, jobs)}
    return [sample for name in names for sample in by_name.get(name, [])]


def score(ws: Workspace | str | Path, model_name: str | None = None, settings: ScoreSettings | None = None,
          quiet: bool = True, engine: Any = None) -> dict[str, Any]:
    """Score a workspace's swap; returns (and writes to score.json) the full report.

    `engine` (facecast.cluster.engine.RayEngine) computes merged-mode samples on a cluster; predict mode
    runs here (it needs the model once, and its batches are the cost)."""
    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    settings = settings or ScoreSettings(model_name=model_name)
    if model_name:
        settings.model_name = model_name
    if not ws.aligned("dst").is_dir() or not list_aligned(ws.aligned("dst")):
        raise FacecastError(f"no dst faces in {ws.aligned('dst')}: run `facecast extract -w {ws.root} --side dst` first")
    src_c, src_spread, n_src = src_centroid(ws, settings.max_src, quiet)
    if settings.source not in ("auto", "merged", "predict"):
        raise FacecastError(f"score source must be auto, merged or predict, not {settings.source!r}")
    has_merged = ws.merged.is_dir() and bool(list_images(ws.merged))
    if settings.source == "merged" and not has_merged:
        raise FacecastError(f"nothing merged in {ws.merged}: run `facecast merge -w {ws.root}` first")
    if has_merged and settings.source != "predict":
        mode = "merged"
        samples = merged_samples(ws, settings, quiet) if engine is None else _sharded_samples(ws, settings, engine)
    else:
        mode = "predict"
        samples = predicted_samples(ws, _model_dir(ws, settings.model_name), settings, quiet)
    if not samples:
        raise FacecastError(f"no merged frame in {ws.merged} matches a dst aligned face: re-run `facecast merge`")
    records, shots = measure(samples, src_c)
    summary = {
        "mode": mode,
        "faces": len(records),
        "shots": len(shots),
        "src_faces": n_src,
        "src_spread": src_spread,
        **_summary(records),
        "colour_flicker": _nanmean([s["colour_flicker"] for s in shots]),
        "mask_flicker": _nanmean([s["mask_flicker"] for s in shots]),
        "pose_available": M.default_pose_estimator() is not None,
    }
    worst = sorted(records, key=lambda r: -r["badness"])[: settings.worst]
    report = {
        "schema": "facecast.score/1",
        "settings": asdict(settings),
        "summary": summary,
        "shots": shots,
        "worst": [{"frame": r["frame"], "track": r["track"], "badness": r["badness"], "worst_on": r["worst_on"]} for r in worst],
        "frames": records,
    }
    atomic_write_bytes(ws.root / SCORE_JSON, json.dumps(report, indent=1, default=_json_default).encode())
    plot(records, ws.root / SCORE_PNG)
    report["paths"] = {"json": str(ws.root / SCORE_JSON), "plot": str(ws.root / SCORE_PNG)}
    return report


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
