"""Merge and extract on the cluster, through the stages' own functions.

merge: the head checks consent, stores the settings in the model's merge session, splits the dst frame
list into shards of `shard_size` consecutive frames and runs `merge_shard` for each: the stage's own
`merge(..., frames=shard, session_path=...)` with the predictor built once per worker process. A shard
saves its progress to its own session file (`model/NAME/merge_shards/`); the head folds them into
`merge_session.json` when shards finish, and at the start of the next run (a head killed mid-run leaves
them behind), so a re-run skips exactly the frames already written. Frames depend only on their own
inputs and their neighbours (read by any shard that needs them), so the output equals a single-process
merge byte for byte, wherever and how often a shard ran.

extract: `extract(..., engine=...)` (faces/extract.py) maps its phase-1 chunks and phase-3 writes over
the cluster; tracking runs on the head.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from facecast.cluster import shards as sh
from facecast.cluster.engine import RayEngine, cached_model, consent_token
from facecast.errors import FacecastError

SHARD_DIR = "merge_shards"


def predictor_spec(model_dir: str | Path, device: str = "cpu") -> tuple[str, dict[str, Any]]:
    """How a worker builds the trained model's predictor (once per worker process)."""
    return ("facecast.train.predict:load_predictor", {"model_dir": str(model_dir), "device": device})


def segmenter_spec(model_dir: str | Path) -> tuple[str, dict[str, Any]]:
    return ("facecast.masks.xseg.apply:load_segmenter", {"model_dir": str(model_dir)})


def merge_shard(ws_root: str, model_name: str, predictor: tuple, segmenter: tuple | None, frames: list[str],
                export_patches: bool, session_path: str) -> dict[str, Any]:
    """One merge shard on a worker: the stage's `merge` on `frames` (consent, gate and watermark inside)."""
    import torch

    from facecast.merge.merger import merge
    from facecast.workspace import Workspace

    torch.set_num_threads(1)  # one task per CPU the scheduler gave it
    ws = Workspace.open(ws_root)
    report = merge(ws, model_name, None, cached_model(predictor), segmenter=cached_model(segmenter), workers=1,
                   export_patches=export_patches, quiet=True, frames=frames, session_path=session_path)
    return report.to_dict()


def fold_shard_sessions(model_dir: Path, session) -> int:
    """Copy each shard session's records of its own frames into `session`, then delete the shard files."""
    folder = Path(model_dir) / SHARD_DIR
    n = 0
    for frames_file in sorted(folder.glob("*.frames.json")) if folder.is_dir() else []:
        shard_file = frames_file.with_name(frames_file.name.replace(".frames.json", ".json"))
        data = sh.read_json(shard_file)
        recs = data.get("frames") if isinstance(data.get("frames"), dict) else None
        if recs is not None:
            if isinstance(data.get("no_face"), list):
                session.no_face = [str(x) for x in data["no_face"]]
                session.total = int((data.get("progress") or {}).get("total", session.total) or 0)
            for name in json.loads(frames_file.read_text()):
                if isinstance(recs.get(name), dict):
                    session.frames[name] = dict(recs[name])
                else:
                    session.frames.pop(name, None)
            n += 1
        shard_file.unlink(missing_ok=True)
        frames_file.unlink(missing_ok=True)
    return n


def merge_on_cluster(ws, model_name: str, settings, predictor: tuple, engine: RayEngine, segmenter: tuple | None = None,
                     overrides: dict[str, dict[str, Any]] | None = None, export_patches: bool = False,
                     progress=None) -> dict[str, Any]:
    """`facecast merge --engine ray`: every dst frame merged by shards on the cluster (module docstring)."""
    from facecast.media.images import atomic_write_bytes
    from facecast.merge.merger import open_session
    from facecast.merge.session import Session

    t0 = time.perf_counter()
    token = consent_token(ws, "merge")  # once at the head; every shard carries it and checks it again
    model_dir = ws.model(model_name)
    session, frame_names = open_session(ws, model_name, settings, overrides)
    fold_shard_sessions(model_dir, session)  # records left by shards of a head killed mid-run
    session.save()  # the settings every shard reads

    folder = model_dir / SHARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    groups = sh.split(frame_names, engine.shard_size)
    stamp = time.strftime("%Y%m%d%H%M%S")
    jobs = []
    for i, frames in enumerate(groups):
        path = folder / f"{stamp}-{i:04d}.json"
        atomic_write_bytes(path.with_name(path.stem + ".frames.json"), json.dumps(frames).encode())
        jobs.append([(str(ws.root), model_name, predictor, segmenter, frames, export_patches, str(path))])
    reports: list[dict[str, Any]] = []
    try:
        for i, results in engine.run(ws, "merge", merge_shard, jobs, [len(g) for g in groups], token=token):
            reports.extend(results)
            if progress:
                progress(sum(r["frames"] for r in reports), len(frame_names))
    finally:
        session = Session.load(model_dir, model_name)
        fold_shard_sessions(model_dir, session)
        session.save()
    return {
        "frames": len(frame_names), "merged": sum(r["merged"] for r in reports),
        "skipped": sum(r["skipped"] for r in reports), "faces": sum(r["faces"] for r in reports),
        "passthrough_count": len(session.no_face), "shards": len(groups), "shard_size": engine.shard_size,
        "seconds": round(time.perf_counter() - t0, 3), "engine": "ray", "session": str(session.path),
        "consent": token.get("record"),
    }


def extract_on_cluster(ws, side: str, engine: RayEngine, **kwargs: Any) -> dict[str, Any]:
    """`facecast extract --engine ray`: the stage's `extract` with its work mapped over the cluster."""
    from facecast.faces.extract import extract

    return extract(ws, side, engine=engine, **kwargs)


def xseg_shard(ws_root: str, side: str, model_name: str, batch_size: int, force: bool, resize: bool,
               names: list[str]) -> dict[str, Any]:
    """One `xseg apply` shard on a worker: the stage's `xseg_apply` on these aligned faces."""
    import torch

    from facecast.masks.xseg.apply import xseg_apply
    from facecast.workspace import Workspace

    torch.set_num_threads(1)
    return xseg_apply(Workspace.open(ws_root), side, model_name, batch_size, force, resize, "cpu", True, faces=names)


def xseg_apply_on_cluster(ws, side: str, engine: RayEngine, model_name: str = "xseg", batch_size: int = 16,
                          force: bool = False, resize: bool = False) -> dict[str, Any]:
    """`facecast xseg apply --engine ray`: aligned faces in shards, masks written by the workers.

    The head loads the segmenter and checks every face first, as the stage does (nothing half-applied
    on a faceset the model does not fit); the segmenter's own fixed-size batches keep a face's mask
    independent of its shard."""
    from facecast.faces.aligned import list_aligned
    from facecast.masks.xseg.apply import _check_faces, load_segmenter

    t0 = time.perf_counter()
    paths = list_aligned(ws.aligned(side))
    if not paths:
        raise FacecastError(f"{ws.aligned(side)}: no aligned faces; run `facecast extract` first")
    _check_faces(paths, load_segmenter(ws.model(model_name), "cpu", batch_size), resize)
    groups = sh.split([p.name for p in paths], engine.shard_size)
    jobs = [[(str(ws.root), side, model_name, batch_size, force, resize, g)] for g in groups]
    reports = [r for _, res in engine.run(ws, f"xseg-apply-{side}", xseg_shard, jobs, [len(g) for g in groups]) for r in res]
    return {"side": side, "model": model_name, "faces": len(paths), "applied": sum(r["applied"] for r in reports),
            "skipped": sum(r["skipped"] for r in reports), "shards": len(groups), "engine": "ray",
            "seconds": round(time.perf_counter() - t0, 3)}
