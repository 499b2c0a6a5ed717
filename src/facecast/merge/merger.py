"""The merge runner: every dst frame -> data_dst/merged/<frame>.png (+ merged_mask/), resumable, parallel.

    report = merge(ws, "alice", MergeSettings(mode="overlay"), predictor, workers=2)

Flow: read the dst faces' metadata (data_dst/aligned), keep the tracked identity, plan which frames need
work (session hashes), then per chunk of frames: read frames, re-align each face from the frame at the
model's face type and resolution using the stored source landmarks (sharper than resizing the 512 px
aligned file), predict all faces of the chunk in one batch in this process (the model lives here),
and composite + encode + write each frame in worker processes (pure numpy/OpenCV: `merge_frame`).
Frames without a face are copied through and listed. Every file is written to a temporary sibling and
renamed, and the session is saved after each chunk and on Ctrl-C, so an interrupt loses nothing.

Hooks for the responsible-use layer: `_responsible_checks(ws)` runs before any work (consent),
`_GatedReader` reads every dst frame merge touches through the explicit-content gate (frames can change
after extraction; verdicts are cached by content hash, so an unchanged frame is scored once per
workspace), `_label_frame(ws, image)` runs on every written frame (watermark).

Determinism: a frame's pixels depend only on its inputs, never on which frames shared its prediction
batch, where a run was resumed, or the process (see train/predict.py: fixed threads, deterministic
kernels, one face per forward pass on CPU). The frame file's content hash is part of its session hash,
so a frame replaced on disk is merged (and gated) again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facecast.errors import FacecastError
from facecast.faces.align import image_to_face_matrix, warp_to_face
from facecast.faces.aligned import AlignedMeta, list_aligned, read_meta
from facecast.media.images import atomic_write_bytes, clean_partials, decode_image, encode_image, list_images, read_image
from facecast.imaging.color import ColorStats
from facecast.merge.composite import FaceJob, FaceOutput, face_statistics, merge_frame, merge_frame_detailed, roi_matrix
from facecast.merge.masks import segment_to_model, stored_xseg_to_model
from facecast.merge.fastpng import encode_png
from facecast.merge.session import Session, frame_digest
from facecast.merge.settings import MergeSettings
from facecast.workspace import Workspace

__all__ = ["merge", "merge_frame", "preview", "resolve_settings", "MergeReport", "plan_faces"]

PATCH_DIR = "merged_patches"
_IDENTITY = np.eye(2, 3)


def _responsible_checks(ws: Workspace) -> None:
    """Before any merge work: the source person's consent record must be valid (raises ConsentError).

    Frames are gated as they are read (`_GatedReader`): a frame swapped in after extraction is caught."""
    from facecast.provenance import require_consent

    require_consent(ws)


class _GatedReader:
    """Reads dst frames through the explicit-content gate (raises ContentRefused for a flagged frame).

    Called from reader threads; the verdict cache is thread-safe and saved with the session."""

    def __init__(self, ws: Workspace):
        from facecast.provenance import gate_cache

        self.cache = gate_cache(ws)

    def __call__(self, path: Path) -> np.ndarray:
        from facecast.provenance import gate_file_bytes

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise FacecastError(f"{path}: cannot read ({err.strerror or err})") from None
        image = decode_image(data, str(path))
        gate_file_bytes(self.cache, data, path.name, image)
        return image

    def save(self) -> None:
        self.cache.save()


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def _label_frame(ws: Workspace, image: np.ndarray) -> np.ndarray:
    """Every merged frame carries the invisible watermark (workspace payload) before it is written.

    Runs in the compositing workers (threads or spawned processes): the watermark is a pure function."""
    from facecast.provenance import watermark_frame

    return watermark_frame(ws, image)


def _label_patch(ws: Workspace, path: Path) -> None:
    """Compositor patches are results too: each PNG gets a signed C2PA manifest."""
    from facecast.provenance import label_result_file

    label_result_file(path, ws=ws)


def _mark_patch(ws: Workspace, patch: np.ndarray, frame_to_face: np.ndarray, frame_wh: tuple[int, int]) -> np.ndarray:
    """The patch's pixels carry the invisible watermark (a plain re-save drops the C2PA manifest).

    The mark is the frame's watermark lattice seen through the patch's own frame->face matrix, so a
    compositor that pastes the patch by the JSON's recipe puts it where merge would have: every
    composite made from the patches is found by `facecast verify` (watermark.embed_patch)."""
    from facecast.provenance import workspace_payload
    from facecast.provenance.watermark import embed_patch

    return embed_patch(patch, workspace_payload(ws), frame_to_face, frame_wh)


@dataclass
class MergeReport:
    frames: int
    merged: int
    skipped: int
    passthrough: list[str]
    faces: int
    seconds: float
    workers: int
    session: str
    parallel: str = "thread"
    identity: Any = None
    patches: str | None = None

    @property
    def fps(self) -> float:
        return self.merged / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": round(self.fps, 2)}


@dataclass
class _FrameTask:
    name: str
    frame: np.ndarray
    jobs: list[FaceJob]
    outputs: list[FaceOutput]
    settings: MergeSettings
    merged_path: Path
    mask_path: Path
    patch_dir: Path | None
    ws: Workspace


def plan_faces(ws: Workspace) -> tuple[dict[str, list[AlignedMeta]], Any]:
    """dst faces by frame file name, only the tracked identity (the most frequent one when several)."""
    folder = ws.aligned("dst")
    metas = []
    for path in list_aligned(folder) if folder.is_dir() else []:
        meta = read_meta(path)
        meta.extra["_aligned_file"] = path.name  # in memory only: names patches and listings
        metas.append(meta)
    ids = Counter(m.identity for m in metas if m.identity is not None)
    identity = ids.most_common(1)[0][0] if ids else None
    by_frame: dict[str, list[AlignedMeta]] = {}
    for m in metas:
        if identity is not None and m.identity != identity:
            continue
        by_frame.setdefault(Path(m.source.filename).name, []).append(m)
    for faces in by_frame.values():
        faces.sort(key=lambda m: m.face_index)
    return by_frame, identity


def _motions(names: list[str], faces: dict[str, list[AlignedMeta]]) -> dict[str, tuple[float, float]]:
    """Per frame, the first face's landmark-centre motion per frame (central difference where possible)."""
    centre = {n: faces[n][0].source_landmarks.mean(0) for n in names if faces.get(n)}
    out: dict[str, tuple[float, float]] = {}
    for i, n in enumerate(names):
        if n not in centre:
            continue
        prev = centre.get(names[i - 1]) if i > 0 else None
        nxt = centre.get(names[i + 1]) if i + 1 < len(names) else None
        if prev is not None and nxt is not None:
            v = (nxt - prev) / 2.0
        elif nxt is not None:
            v = nxt - centre[n]
        elif prev is not None:
            v = centre[n] - prev
        else:
            v = np.zeros(2)
        out[n] = (float(v[0]), float(v[1]))
    return out


def _write_png(path: Path, img: np.ndarray) -> None:
    """8-bit frames and masks through the fast writer; 16-bit patches through OpenCV."""
    data = encode_png(img) if img.dtype == np.uint8 else encode_image(img, ".png", png_compression=1)
    atomic_write_bytes(path, data)


def _finish(task: _FrameTask) -> tuple[str, int]:
    """Composite one frame and write its files (runs in a worker process)."""
    res = merge_frame_detailed(task.frame, task.jobs, task.outputs, task.settings)
    image = _label_frame(task.ws, res.image)
    if task.patch_dir is not None:
        _export_patches(task, res.patches)
    _write_png(task.mask_path, np.clip(res.mask * 255.0 + 0.5, 0, 255).astype(np.uint8))
    _write_png(task.merged_path, image)
    return task.name, len(task.jobs)


def _export_patches(task: _FrameTask, patches) -> None:
    """Per face: final face colour and mask as 16-bit PNGs, the raw prediction, and the paste matrix."""
    stem = Path(task.name).stem
    frame_wh = (task.frame.shape[1], task.frame.shape[0])
    for i, p in enumerate(patches):
        base = task.patch_dir / f"{stem}_{i}"
        to16 = lambda a: np.clip(a * 65535.0 + 0.5, 0, 65535).astype(np.uint16)  # noqa: E731
        for suffix, img in (
            ("_face.png", _mark_patch(task.ws, to16(p.face), p.matrix, frame_wh)),
            ("_mask.png", to16(p.mask)),
            ("_raw.png", _mark_patch(task.ws, np.clip(p.raw * 255.0 + 0.5, 0, 255).astype(np.uint8), p.matrix, frame_wh)),
        ):
            _write_png(base.with_name(base.name + suffix), img)
            _label_patch(task.ws, base.with_name(base.name + suffix))
        info = {
            "schema": "facecast.merge_patch/1",
            "frame": task.name,
            "face": p.name,
            "size": int(p.face.shape[0]),
            "frame_to_face": np.asarray(p.matrix).tolist(),
            # bit-exact recipe: warp into this frame box with the box-local matrix (OpenCV's fixed-point
            # warp rounds coordinates differently for other origins: up to ~2 LSB at sharp edges)
            "roi": list(p.roi),
            "roi_to_face": roi_matrix(p.matrix, p.roi[0], p.roi[1]).tolist(),
            "files": {"face": f"{base.name}_face.png", "mask": f"{base.name}_mask.png", "raw": f"{base.name}_raw.png"},
            "composite": "inside roi: warpAffine(face, roi_to_face, WARP_INVERSE_MAP|INTER_CUBIC, "
            "BORDER_REPLICATE, clip 0..1) and warpAffine(mask, roi_to_face, WARP_INVERSE_MAP|INTER_LINEAR, "
            "values < 1/255 -> 0); out = frame*(1-mask) + face*mask (16-bit PNGs: value/65535)",
            "mode": task.settings.mode,
        }
        atomic_write_bytes(base.with_name(base.name + ".json"), json.dumps(info, indent=1).encode())


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


PARALLEL = ("thread", "process")


def _make_pool(workers: int, parallel: str) -> Executor | None:
    """Compositing workers: threads (OpenCV, zlib and numpy release the GIL) or spawned processes.

    Processes use spawn, not fork: forking a process that holds torch's thread pool can deadlock the
    children; the price is each worker importing the main module (see bench/merge_speed.py for what pays)."""
    if workers < 2:
        return None
    if parallel == "process":
        return ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, mp_context=multiprocessing.get_context("spawn"))
    if parallel == "thread":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge")
    raise FacecastError(f"parallel={parallel!r}: choose one of {', '.join(PARALLEL)}")


class _Predicted:
    """Predictions for one frame (kept for a window of frames when temporal smoothing is on)."""

    def __init__(self, frame: np.ndarray, jobs: list[FaceJob], outputs: list[FaceOutput]):
        self.frame, self.jobs, self.outputs = frame, jobs, outputs
        self.stats: list[tuple[np.ndarray, ColorStats | None]] | None = None


def _predict_frames(
    ws: Workspace,
    names: list[str],
    faces: dict[str, list[AlignedMeta]],
    motions: dict[str, tuple[float, float]],
    predictor,
    segmenter,
    settings_of: Callable[[str], MergeSettings],
    reader: ThreadPoolExecutor | None = None,
    load: Callable[[Path], np.ndarray] = read_image,
) -> dict[str, _Predicted]:
    """Read frames (through `load`: the gate), re-align faces at the model geometry, predict all faces in
    one call (per-face results do not depend on the batch: see train/predict.py), add XSeg masks."""
    r, ftype = int(predictor.resolution), predictor.face_type
    paths = [ws.data("dst") / n for n in names]
    loaded = list(reader.map(load, paths)) if reader else [load(p) for p in paths]
    frames, jobs, crops, owners = {}, {}, [], []
    for n, frame in zip(names, loaded):
        frames[n] = frame
        jobs[n] = []
        for m in faces[n]:
            lm = m.source_landmarks
            mat = image_to_face_matrix(lm, ftype, r)
            jobs[n].append(FaceJob(lm, mat, motions.get(n, (0.0, 0.0)), m.extra.get("_aligned_file", "")))
            crops.append(warp_to_face(frame, mat, r))
            owners.append((n, m))
    pred = predictor.predict(np.stack(crops)) if crops else None
    xp = xd = None
    needs = {settings_of(n).mask_mode for n in names}
    if segmenter is not None and any("xseg-prd" in mm for mm in needs):
        faces_u8 = [np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8) for f in pred.face]
        xp = segment_to_model(segmenter, faces_u8, [j.matrix for n in names for j in jobs[n]],
                              [j.landmarks for n in names for j in jobs[n]], [j.matrix for n in names for j in jobs[n]], ftype, r)
    if segmenter is not None and any("xseg-dst" in mm for mm in needs):
        xd = segment_to_model(segmenter, [frames[n] for n, _ in owners], [_IDENTITY] * len(owners),
                              [j.landmarks for n in names for j in jobs[n]], [j.matrix for n in names for j in jobs[n]], ftype, r)
    out: dict[str, _Predicted] = {}
    k = 0
    for n in names:
        outputs = []
        for j, (_, meta) in zip(jobs[n], [o for o in owners if o[0] == n]):
            xseg_dst = xd[k] if xd is not None else None
            if xseg_dst is None and "xseg-dst" in settings_of(n).mask_mode:
                stored = meta.get_xseg_mask()
                if stored is not None:
                    xseg_dst = stored_xseg_to_model(stored, meta.matrix, j.matrix, r)
            outputs.append(FaceOutput(
                face=pred.face[k], src_mask=_opt(pred, "src_mask", k), dst_mask=_opt(pred, "dst_mask", k),
                xseg_prd=xp[k] if xp is not None else None, xseg_dst=xseg_dst,
            ))
            k += 1
        out[n] = _Predicted(frames[n], jobs[n], outputs)
    return out


def _opt(pred, attr: str, k: int):
    arr = getattr(pred, attr, None)
    return None if arr is None else arr[k]


def _smooth(name: str, names: list[str], cache: dict[str, _Predicted], window: int, s: MergeSettings,
            position: dict[str, int]) -> list[FaceOutput]:
    """Outputs of frame `name` with mask and colour statistics averaged over the window's frames."""
    idx = position[name]
    half = window // 2
    me = cache[name]
    result = []
    for fi, out in enumerate(me.outputs):
        masks, stats = [], []
        for n in names[max(0, idx - half) : idx + half + 1]:
            p = cache.get(n)
            if p is None or fi >= len(p.outputs):
                continue
            if p.stats is None:
                p.stats = [face_statistics(p.frame, j, o, s) for j, o in zip(p.jobs, p.outputs)]
            masks.append(p.stats[fi][0])
            stats.append(p.stats[fi][1])
        mask = np.mean(masks, axis=0).astype(np.float32)
        cs = ColorStats.average(stats) if stats and all(x is not None for x in stats) else None
        result.append(FaceOutput(out.face, out.src_mask, out.dst_mask, out.xseg_prd, out.xseg_dst, mask=mask, color_stats=cs))
    return result


def open_session(ws: Workspace, model_name: str, settings: MergeSettings | None,
                 overrides: dict[str, dict[str, Any]] | None) -> tuple[Session, list[str]]:
    """The model's merge session with `settings` (None keeps the stored ones) and per-frame `overrides`
    applied, and the dst frame names; one clear error when there are no frames or an override names a
    frame that does not exist. Used by `merge` and by the cluster's head before it shards."""
    model_dir = ws.model(model_name)
    model_dir.mkdir(parents=True, exist_ok=True)
    session = Session.load(model_dir, model_name)
    if settings is not None:
        session.settings = settings.validate()
    frame_names = [p.name for p in list_images(ws.data("dst"))]
    if not frame_names:
        raise FacecastError(f"{ws.data('dst')} has no frames: run `facecast frames` on data_dst.mp4 first")
    for frame, values in (overrides or {}).items():
        if frame not in frame_names:
            raise FacecastError(f"override for {frame!r}: no such frame in {ws.data('dst')}")
        session.set_override(frame, values)
    return session, frame_names


def merge(
    ws: Workspace,
    model_name: str,
    settings: MergeSettings | None,
    predictor,
    segmenter=None,
    workers: int = 1,
    export_patches: bool = False,
    quiet: bool = False,
    overrides: dict[str, dict[str, Any]] | None = None,
    batch_frames: int = 8,
    progress: Callable[[int, int], None] | None = None,
    parallel: str = "thread",
    frames: list[str] | None = None,
    session_path: str | Path | None = None,
) -> MergeReport:
    """Merge every dst frame of `ws` with `predictor` (see the module docstring).

    `settings` None keeps the session's stored settings (or the defaults); `overrides` maps frame file
    names to setting changes for that frame and is stored in the session; `workers` >= 2 composites in
    that many threads or processes (`parallel`), 1 composites in this thread.

    For sharded runs (facecast.cluster): `frames` merges only those frames (neighbours still feed motion
    blur and temporal smoothing, so a frame's pixels are the same as in a whole run); `session_path`
    reads the model's session but saves progress to that file instead (one per shard, so concurrent
    shards never overwrite each other's records; the head folds them into the session)."""
    _responsible_checks(ws)
    gated = _GatedReader(ws)
    t0 = time.perf_counter()
    model_dir = ws.model(model_name)
    session, frame_names = open_session(ws, model_name, settings, overrides)
    if session_path is not None:
        session.path = Path(session_path)
    faces, identity = plan_faces(ws)
    needs_xseg = any(session.effective(n).needs_xseg for n in frame_names if faces.get(n))
    if needs_xseg and segmenter is None:
        stored_ok = all(
            "xseg-prd" not in session.effective(n).mask_mode and all(m.xseg_mask for m in faces[n])
            for n in frame_names if faces.get(n)
        )
        if not stored_ok:
            raise FacecastError(
                "mask mode needs XSeg masks but no XSeg model was given: pass --xseg-model NAME "
                "(train one with `facecast xseg train`) or choose --mask-mode dst/learned-*"
            )
    for folder in (ws.merged, ws.merged_mask):
        folder.mkdir(parents=True, exist_ok=True)
        clean_partials(folder)
    patch_dir = ws.data("dst") / PATCH_DIR if export_patches else None
    if patch_dir is not None:
        patch_dir.mkdir(parents=True, exist_ok=True)
        clean_partials(patch_dir)

    # what the pixels depend on besides settings: the model (and its training iteration, so merging
    # again after more training redoes every frame) and the XSeg weights
    model_sig = [model_name, int(predictor.resolution), predictor.face_type, getattr(predictor, "arch", ""),
                 getattr(predictor, "iteration", None),  # the Predictor's API, not the trainer's files
                 getattr(predictor, "precision", None),
                 [getattr(segmenter, "name", type(segmenter).__name__), getattr(segmenter, "version", None)]
                 if segmenter is not None else None]
    wanted = frame_names
    if frames is not None:
        unknown = sorted(set(frames) - set(frame_names))
        if unknown:
            raise FacecastError(f"frames {unknown[:3]} are not in {ws.data('dst')}")
        subset = set(frames)
        wanted = [n for n in frame_names if n in subset]
    digests: dict[str, str] = {}
    for n in wanted:  # a shard hashes only its own frames (hashing every frame per shard cost ~1 s / 24 frames)
        content = _file_sha(ws.data("dst") / n)  # a frame replaced on disk is merged (and gated) again
        if faces.get(n):
            geo = [np.round(m.source_landmarks, 2).tolist() for m in faces[n]]
            digests[n] = frame_digest(session.effective(n), model_sig, geo, content)
        else:
            digests[n] = frame_digest(None, "passthrough", content)
    session.no_face = [n for n in frame_names if not faces.get(n)]
    session.total = len(frame_names)

    def out_paths(n: str) -> tuple[Path, Path]:
        stem = Path(n).stem + ".png"
        return ws.merged / stem, ws.merged_mask / stem

    def done(n: str) -> bool:
        if not (session.is_done(n, digests[n]) and all(p.exists() for p in out_paths(n))):
            return False
        # with --export-patches a frame merged earlier without them is redone to write them
        return patch_dir is None or not faces.get(n) or (patch_dir / f"{Path(n).stem}_0.json").exists()

    todo = [n for n in wanted if not done(n)]
    position = {n: i for i, n in enumerate(frame_names)}
    skipped = len(wanted) - len(todo)
    motions = _motions(frame_names, faces)
    merged = n_faces = 0
    window = max(s.temporal_window for s in (session.effective(n) for n in todo)) if todo else 1
    pool = _make_pool(workers, parallel) if todo else None
    # frames are decoded in threads too (PNG decode releases the GIL), whatever composites them
    reader = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge-read") if workers >= 2 and todo else None
    pending: deque[tuple[str, Future | tuple[str, int]]] = deque()
    cache: dict[str, _Predicted] = {}

    def collect(block: bool) -> None:
        nonlocal merged, n_faces
        while pending and (block or _ready(pending[0][1])):
            name, fut = pending.popleft()
            _, nf = fut.result() if isinstance(fut, Future) else fut
            status = "merged" if nf else "passthrough"
            session.mark(name, digests[name], nf, status)
            merged += 1
            n_faces += nf
            if progress:
                progress(merged, len(todo))

    try:
        for start in range(0, len(todo), batch_frames):
            chunk = todo[start : start + batch_frames]
            for n in chunk:
                session.mark(n, None, 0, "")
            session.save()
            gated.save()
            with_faces = [n for n in chunk if faces.get(n)]
            need = set(with_faces)
            if window > 1:
                half = window // 2
                for n in with_faces:
                    i = position[n]
                    need.update(x for x in frame_names[max(0, i - half) : i + half + 1] if faces.get(x))
            missing = [n for n in frame_names if n in need and n not in cache]
            if missing:
                cache.update(_predict_frames(ws, missing, faces, motions, predictor, segmenter, session.effective, reader,
                                             gated))
            for n in chunk:
                s = session.effective(n)
                mp, kp = out_paths(n)
                if n in with_faces:
                    p = cache[n]
                    outputs = _smooth(n, frame_names, cache, s.temporal_window, s, position) if s.temporal_window > 1 else p.outputs
                    task = _FrameTask(n, p.frame, p.jobs, outputs, s, mp, kp, patch_dir, ws)
                else:
                    task = _FrameTask(n, gated(ws.data("dst") / n), [], [], s, mp, kp, None, ws)
                pending.append((n, pool.submit(_finish, task) if pool else _finish(task)))
            # drop predictions no later frame's window can use
            if todo[start + batch_frames : start + batch_frames + 1]:
                keep_from = max(0, position[todo[start + batch_frames]] - window // 2)
                for n in list(cache):
                    if position[n] < keep_from:
                        del cache[n]
            collect(block=False)
            while pool and len(pending) > 2 * batch_frames:  # bounded memory: frames wait in the queue
                collect(block=False)
                time.sleep(0.005)
        collect(block=True)
    finally:
        # on an interrupt or error: let running writes finish, record every frame completely written
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        if reader:
            reader.shutdown(wait=True, cancel_futures=True)
        while pending:
            name, fut = pending.popleft()
            if isinstance(fut, Future) and (fut.cancelled() or fut.exception() is not None):
                continue
            nf = (fut.result() if isinstance(fut, Future) else fut)[1]
            session.mark(name, digests[name], nf, "merged" if nf else "passthrough")
            merged += 1
        session.save()
        gated.save()
    return MergeReport(
        frames=len(wanted), merged=merged, skipped=skipped, passthrough=session.no_face,
        faces=n_faces, seconds=time.perf_counter() - t0, workers=workers, session=str(session.path), parallel=parallel,
        identity=identity, patches=str(patch_dir) if patch_dir else None,
    )


def _ready(item) -> bool:
    return not isinstance(item, Future) or item.done()


def resolve_settings(ws: Workspace, model_name: str, changes: dict[str, Any]) -> MergeSettings:
    """The session's stored settings (defaults for a new session) with `changes` applied and validated.

    So `facecast merge --blur 20` changes only blur and keeps every other choice of the last run."""
    base = Session.load(ws.model(model_name), model_name).settings
    return base.with_overrides(changes, "merge options") if changes else base


def preview(ws: Workspace, frame: str, settings: MergeSettings, predictor, segmenter=None):
    """Merge one frame in memory (nothing written, no session change): for the UI's interactive merger.

    Returns composite.MergeResult (image, mask, per-face patches). Temporal smoothing is not applied
    (it needs the neighbouring frames); everything else is exactly what `merge` would write, minus the
    `_label_frame` hook."""
    settings = settings.validate()
    names = [p.name for p in list_images(ws.data("dst"))]
    if frame not in names:
        raise FacecastError(f"frame {frame!r} not found in {ws.data('dst')}")
    faces, _ = plan_faces(ws)
    gated = _GatedReader(ws)
    try:
        if not faces.get(frame):
            return merge_frame_detailed(gated(ws.data("dst") / frame), [], [], settings)
        motions = _motions(names, faces)
        p = _predict_frames(ws, [frame], faces, motions, predictor, segmenter, lambda _n: settings, load=gated)[frame]
    finally:
        gated.save()
    return merge_frame_detailed(p.frame, p.jobs, p.outputs, settings)
