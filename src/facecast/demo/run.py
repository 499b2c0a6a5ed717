"""`demo()`: the whole pipeline on the bundled sample faces, through each stage's own Python function.

    consent -> render data_src.mp4 / data_dst.mp4 -> frames -> extract src/dst -> train -> merge
    -> video (signed) -> preview PNG (signed) -> identity score

Why it calls the stages' public functions instead of hand-building a workspace: the demo is the
README's first command, so it must exercise exactly what a user runs step by step afterwards.
Training starts from the shipped weights (`facecast/assets/demo_model/`) when they exist and
fine-tunes them live for a short time budget, because a CPU cannot train a recognisable swap from
scratch inside the demo's 10 minutes (DESIGN.md: ~1000-1500 iterations for a ~5 M-parameter DF).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from facecast.console import escape, info
from facecast.demo import material, weights
from facecast.errors import FacecastError
from facecast.workspace import Workspace

MODEL_NAME = "demo"
DEMO_FILE = "demo.json"
PREVIEW = "demo_preview.png"

# The demo model: a 2.5 M-parameter DF at 64 px (e 16, ae 96, d 10, mask 6) with the `tiny` preset's
# CPU-friendly training settings. Measured (torch FlopCounter, one face): 0.82 GFLOP per swap forward
# against 1.99 for DESIGN.md's ~6 M model (e 32, ae 128, d 16), so 2.4x the iterations per CPU-second;
# the demo's material is one photo per side, which the smaller model has the capacity to learn.
# The weight script trains exactly these options.
MODEL_OPTIONS: dict[str, Any] = {
    "arch": "df", "resolution": 64, "face_type": material.FACE_TYPE, "ae_dims": 96, "e_dims": 16,
    "d_dims": 10, "d_mask_dims": 6, "batch_size": 8, "optimizer": "adamw", "lr": 5e-4,
    "preview_every": 0, "eval_every": 0, "save_minutes": 5, "num_workers": 0,
}
MERGE_OPTIONS: dict[str, Any] = {
    # the landmark hull mask does not depend on how far training got; rct matches the skin tone
    "mode": "overlay", "mask_mode": "dst", "color_transfer": "rct", "erode": 2, "blur": 6,
}


@dataclass
class DemoSettings:
    """Budgets of one demo run (normal or --fast); written to demo.json in the workspace."""

    src_frames: int = 48
    dst_frames: int = 48
    train_seconds: float = 90.0  # live fine-tune of the shipped weights
    scratch_seconds: float = 240.0  # live training when there are no weights (or --from-scratch)
    min_iters: int = 2
    extract_workers: int = 2
    merge_workers: int = 1
    score: bool = True
    score_max_src: int = 16

    @classmethod
    def fast(cls) -> "DemoSettings":
        """CI budget: every stage runs, on a dozen frames and a few training iterations."""
        return cls(src_frames=10, dst_frames=12, train_seconds=4.0, scratch_seconds=6.0, extract_workers=1,
                   score=True, score_max_src=4)


@dataclass
class DemoResult:
    workspace: str
    result: str
    preview: str
    weights: str
    iterations: int
    train_iterations_live: int
    seconds: dict[str, float] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    consent_ids: list[str] = field(default_factory=list)
    pair: str = f"{material.SRC_PHOTO} -> {material.DST_PHOTO}"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- workspace ---------------------------------------------------------------------------------------
_OWNED = ("data_src", "data_dst", "data_src.mp4", "data_dst.mp4", "result.mp4", PREVIEW, "score.json",
          "score.png", DEMO_FILE)


def prepare_workspace(out_dir: Path) -> Workspace:
    """A fresh demo workspace in `out_dir`: empty or missing folders are used, an earlier demo's outputs
    are replaced, any other non-empty folder is refused (the demo never deletes a user's files)."""
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise FacecastError(f"--out {out_dir} is a file: choose a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / DEMO_FILE).is_file():
            raise FacecastError(f"--out {out_dir} is not empty and not an earlier demo: choose an empty or new folder")
        for name in _OWNED:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        shutil.rmtree(out_dir / "model" / MODEL_NAME, ignore_errors=True)
    ws = Workspace.open(out_dir, create=True)
    (ws.root / DEMO_FILE).write_text(json.dumps({"schema": "facecast.demo/1", "status": "started"}))
    return ws


# -- stages ------------------------------------------------------------------------------------------
def build_inputs(ws: Workspace, src_frames: int, dst_frames: int, quiet: bool, extract_workers: int = 1,
                 timings: dict[str, float] | None = None) -> list[str]:
    """Consent, clips, frames and extraction: everything training needs. Returns the consent ids."""
    from facecast.faces.extract import extract
    from facecast.media.video import frames

    timings = {} if timings is None else timings
    t = time.perf_counter()
    ids = material.record_consent(ws)
    info(f"consent: recorded for the bundled sample faces ({material.SRC_PHOTO}, {material.DST_PHOTO}) - "
         "public-domain/test photos used only for this demonstration", quiet)
    specs = material.clip_specs(src_frames, dst_frames)
    for side, spec in specs.items():
        material.render_side_video(ws, side, spec)
    timings["render"] = time.perf_counter() - t
    info(f"clips: {ws.video('src').name} ({spec_text(specs['src'])}), {ws.video('dst').name} ({spec_text(specs['dst'])})", quiet)
    t = time.perf_counter()
    for side in ("src", "dst"):
        frames(ws.video(side), ws.data(side), quiet=quiet)
    timings["frames"] = time.perf_counter() - t
    t = time.perf_counter()
    for side in ("src", "dst"):
        report = extract(ws, side, face_type=material.FACE_TYPE, size=material.EXTRACT_SIZE,
                         workers=extract_workers, quiet=quiet)
        if not report["faces_written"]:
            raise FacecastError(f"demo: no face extracted from {ws.video(side)}; the detector backend may be broken (run `facecast doctor`)")
        info(f"extract {side}: {report['faces_written']} faces from {report['frames']} frames", quiet)
    timings["extract"] = time.perf_counter() - t
    return ids


def spec_text(spec: material.ClipSpec) -> str:
    return f"{spec.photo}, {spec.frames} frames {spec.size[0]}x{spec.size[1]} at {spec.fps:g} fps, with audio"


def train_for(ws: Workspace, seconds: float, min_iters: int, quiet: bool, create: bool) -> tuple[int, int]:
    """Train model/demo for about `seconds` of wall time; returns (total iteration, iterations run here).

    The trainer takes an iteration budget, not a time budget, and a CPU's speed can change tenfold
    within a run when other jobs start (measured on the shared machine: 0.14 to 8 s per iteration), so
    training runs in chunks sized from the latest measured speed, each covering at most a fifth of the
    budget: an overshoot is bounded by one chunk."""
    from facecast.train.trainer import train

    t0 = time.perf_counter()
    overrides = dict(MODEL_OPTIONS) if create else {}
    n = max(min_iters, 2)  # two steps: the trainer times from the second (the first pays set-up)
    ran, total = 0, 0
    while True:
        res = train(ws, MODEL_NAME, preset_name="tiny", overrides=overrides, max_iters=n, quiet=quiet)
        overrides = {}
        ran, total = ran + n, res.iteration
        spent = time.perf_counter() - t0
        ms = res.ms_per_iter or spent * 1000 / max(ran, 1)
        left = seconds - spent
        if left * 1000 < ms:
            return total, ran
        n = max(1, int(min(left, seconds / 5) * 1000 / max(ms, 1.0)))


def write_preview(ws: Workspace, path: Path) -> Path:
    """One PNG: a src frame, then dst and merged side by side at the start, middle and end of the clip."""
    from facecast.media.images import read_image, write_image
    from facecast.media.video import list_frames

    dst = list_frames(ws.data("dst"))
    merged = list_frames(ws.merged)
    src = list_frames(ws.data("src"))
    if not dst or not merged or not src:
        raise FacecastError(f"{ws.root}: nothing merged to preview")
    by_stem = {p.stem: p for p in merged}
    picks = sorted({0, len(dst) // 2, len(dst) - 1})
    rows = []
    src_img = read_image(src[len(src) // 2])
    for i in picks:
        d = read_image(dst[i])
        m = read_image(by_stem.get(dst[i].stem, merged[min(i, len(merged) - 1)]))
        rows.append(np.concatenate([src_img, d, m], axis=1))
    from facecast.provenance import label_byproduct  # the sheet shows the swap: labelled like a merged frame

    write_image(path, label_byproduct(np.concatenate(rows, axis=0), ws))
    return path


def identity_score(ws: Workspace, max_src: int) -> dict[str, Any]:
    from facecast.quality.score import ScoreSettings, score

    summary = score(ws, MODEL_NAME, ScoreSettings(model_name=MODEL_NAME, max_src=max_src), quiet=True)["summary"]
    return {k: summary.get(k) for k in ("id_to_src", "id_to_dst", "retrieval", "faces")}


# -- the demo ----------------------------------------------------------------------------------------
def demo(out_dir: str | Path | None = None, fast: bool = False, from_scratch: bool = False, quiet: bool = False,
         settings: DemoSettings | None = None) -> DemoResult:
    """Run the whole pipeline on bundled sample faces in `out_dir` (default ./facecast-demo)."""
    import torch

    from facecast.media.video import video
    from facecast.merge.merger import merge
    from facecast.merge.settings import MergeSettings
    from facecast.provenance import label_result_file
    from facecast.provenance.c2pa import read_manifest
    from facecast.provenance.verify import c2pa_line, trust_anchor
    from facecast.train.predict import load_predictor

    settings = settings or (DemoSettings.fast() if fast else DemoSettings())
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t_all = time.perf_counter()
    ws = prepare_workspace(Path(out_dir) if out_dir is not None else Path("facecast-demo"))
    timings: dict[str, float] = {}
    notes: list[str] = []
    info(f"[bold]facecast demo[/bold] in {escape(str(ws.root))} ({'fast' if fast else 'normal'} mode)", quiet, markup=True)

    info("[bold][1/5][/bold] consent, clips, frames, faces", quiet, markup=True)
    ids = build_inputs(ws, settings.src_frames, settings.dst_frames, quiet, settings.extract_workers, timings)

    info("[bold][2/5][/bold] training", quiet, markup=True)
    t = time.perf_counter()
    shipped = None if from_scratch else weights.shipped_weights()
    if shipped is not None:
        state = weights.install(ws.model(MODEL_NAME), shipped)
        used = f"shipped demo weights (iteration {state.get('iteration', '?')}), fine-tuned live"
        info(f"weights: starting from the {used} for ~{settings.train_seconds:.0f} s", quiet)
        total, ran = train_for(ws, settings.train_seconds, settings.min_iters, quiet, create=False)
    else:
        why = "--from-scratch" if from_scratch else f"no shipped weights in {weights.asset_dir()}"
        used = f"none ({why}): trained from scratch"
        info(f"weights: {why}; training from scratch for ~{settings.scratch_seconds:.0f} s - expect a blur, not "
             "a likeness (a recognisable swap needs ~1000-1500 iterations)", quiet)
        total, ran = train_for(ws, settings.scratch_seconds, settings.min_iters, quiet, create=True)
        notes.append("trained from scratch for a short budget: the swap is not yet the source's likeness")
    timings["train"] = time.perf_counter() - t

    info("[bold][3/5][/bold] merge", quiet, markup=True)
    t = time.perf_counter()
    predictor = load_predictor(ws.model(MODEL_NAME), device="auto")
    report = merge(ws, MODEL_NAME, MergeSettings(**MERGE_OPTIONS), predictor, workers=settings.merge_workers, quiet=quiet)
    if report.passthrough:
        notes.append(f"{len(report.passthrough)} dst frame(s) without a face were copied through")
    timings["merge"] = time.perf_counter() - t

    info("[bold][4/5][/bold] video and preview", quiet, markup=True)
    t = time.perf_counter()
    vres = video(ws.merged, ws.result, audio_from=ws.video("dst"), quiet=quiet,
                 label=partial(label_result_file, ws=ws, model_name=MODEL_NAME))
    notes.extend(vres.notes)
    preview = write_preview(ws, ws.root / PREVIEW)
    label_result_file(preview, ws=ws, model_name=MODEL_NAME)
    manifest = read_manifest(ws.result, ws)
    timings["video"] = time.perf_counter() - t

    identity = None
    if settings.score:
        info("[bold][5/5][/bold] identity score", quiet, markup=True)
        t = time.perf_counter()
        try:
            identity = identity_score(ws, settings.score_max_src)
        except FacecastError as err:  # the score is a bonus: the demo's result stands without it
            notes.append(f"identity score skipped: {err}")
        timings["score"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    result = DemoResult(
        workspace=str(ws.root), result=str(ws.result), preview=str(preview), weights=used, iterations=total,
        train_iterations_live=ran, seconds={k: round(v, 1) for k, v in timings.items()}, identity=identity,
        labels={"c2pa": c2pa_line(manifest, trust_anchor(ws)), "audio": vres.audio}, consent_ids=ids, notes=notes,
    )
    (ws.root / DEMO_FILE).write_text(json.dumps({"schema": "facecast.demo/1", "status": "done",
                                                 "settings": asdict(settings), "result": result.as_dict()},
                                                indent=2, default=str))
    return result
