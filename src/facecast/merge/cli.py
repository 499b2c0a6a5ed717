"""`facecast merge`: composite the trained model's faces into every dst frame (see merge/merger.py).

The command only parses options: settings given on the command line change the session's stored
settings (the rest keep their last values), `--frame F --override key=value` stores a per-frame change.
The predictor and the XSeg segmenter are imported inside the command so `facecast --help` works before
those stages are installed.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facecast.cluster.cli import AddressOpt, EngineOpt, ShardSizeOpt, make_engine
from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, info, make_progress, summary
from facecast.errors import FacecastError


def _opt(help_: str, flag: str):
    return typer.Option(flag, help=help_, show_default=False)


def register(app: typer.Typer) -> None:
    @app.command("merge")
    def merge_cmd(
        workspace: WorkspaceOpt,
        model: Annotated[str, typer.Option("--model", "-m", help="Model folder name under model/.")],
        mode: Annotated[Optional[str], _opt("original|overlay|hist-match|seamless|seamless-hist-match|raw-rgb|raw-predict|raw-mask", "--mode")] = None,
        mask_mode: Annotated[Optional[str], _opt("dst|learned-prd|learned-dst|learned-prd*learned-dst|learned-prd+learned-dst|xseg-prd|xseg-dst|xseg-prd*xseg-dst|learned-prd*learned-dst*xseg-prd*xseg-dst", "--mask-mode")] = None,
        erode: Annotated[Optional[int], _opt("Mask erode in px at model resolution (negative grows), -400..400.", "--erode")] = None,
        blur: Annotated[Optional[int], _opt("Mask feather in px at model resolution, 0..400.", "--blur")] = None,
        face_scale: Annotated[Optional[int], _opt("Scale the predicted face inside the mask, % -50..50.", "--face-scale")] = None,
        output_face_scale: Annotated[Optional[int], _opt("Scale face and mask in the frame, % -50..50.", "--output-face-scale")] = None,
        motion_blur: Annotated[Optional[int], _opt("Motion blur from landmark motion, % 0..100.", "--motion-blur")] = None,
        sharpen_mode: Annotated[Optional[str], _opt("none|box|gaussian", "--sharpen-mode")] = None,
        sharpen_amount: Annotated[Optional[int], _opt("Sharpen (>0) or soften (<0), -100..100.", "--sharpen-amount")] = None,
        image_denoise: Annotated[Optional[int], _opt("Denoise the dst frame, 0..500.", "--image-denoise")] = None,
        bicubic_degrade: Annotated[Optional[int], _opt("Soften the dst frame by resampling, % 0..100.", "--bicubic-degrade")] = None,
        color_degrade: Annotated[Optional[int], _opt("Blend toward 256 colours, % 0..100.", "--color-degrade")] = None,
        color_transfer: Annotated[Optional[str], _opt("none|rct|lct|mkl|mkl-m|idt|idt-m|sot-m|mix-m", "--color-transfer")] = None,
        masked_hist_match: Annotated[Optional[bool], typer.Option("--masked-hist-match/--no-masked-hist-match", help="Histogram match only inside the mask.", show_default=False)] = None,
        hist_match_threshold: Annotated[Optional[int], _opt("Histogram match threshold 0..255.", "--hist-match-threshold")] = None,
        temporal_window: Annotated[Optional[int], _opt("Average colour statistics and mask over this many frames (odd).", "--temporal-window")] = None,
        workers: Annotated[int, typer.Option("--workers", "-j", help="Compositing workers, threads or processes (see --parallel); 1 = inline.")] = 2,
        parallel: Annotated[str, typer.Option("--parallel", help="thread|process: how --workers composite.")] = "thread",
        batch_frames: Annotated[int, typer.Option("--batch-frames", help="Frames per prediction batch.")] = 8,
        export_patches: Annotated[bool, typer.Option("--export-patches", help="Also write each face's patch, 16-bit mask and 2x3 transform to data_dst/merged_patches/.")] = False,
        frame: Annotated[Optional[str], typer.Option("--frame", help="Frame file name that --override applies to.")] = None,
        override: Annotated[Optional[list[str]], typer.Option("--override", help="key=value setting for --frame (repeatable).")] = None,
        xseg_model: Annotated[Optional[str], typer.Option("--xseg-model", help="XSeg model folder under model/ (for xseg mask modes).")] = None,
        device: Annotated[str, typer.Option("--device", help="auto|cpu|cuda|mps for prediction.")] = "auto",
        engine: EngineOpt = None,
        address: AddressOpt = None,
        shard_size: ShardSizeOpt = 0,
        quiet: QuietOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Composite the trained model's faces into every dst frame -> data_dst/merged/ (resumable).

        Settings not given keep their value from this model's last merge (model/NAME/merge_session.json);
        a re-run redoes only frames whose effective settings changed."""
        from facecast.merge.merger import merge, resolve_settings
        from facecast.merge.session import Session
        from facecast.merge.settings import parse_override
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace)
        given = dict(
            mode=mode, mask_mode=mask_mode, erode=erode, blur=blur, face_scale=face_scale,
            output_face_scale=output_face_scale, motion_blur=motion_blur, sharpen_mode=sharpen_mode,
            sharpen_amount=sharpen_amount, image_denoise=image_denoise, bicubic_degrade=bicubic_degrade,
            color_degrade=color_degrade, color_transfer=color_transfer, masked_hist_match=masked_hist_match,
            hist_match_threshold=hist_match_threshold, temporal_window=temporal_window,
        )
        settings = resolve_settings(ws, model, {k: v for k, v in given.items() if v is not None})
        overrides = None
        if override and not frame:
            raise FacecastError("--override needs --frame NAME (the frame file in data_dst it applies to)")
        if frame:
            if not override:
                raise FacecastError("--frame needs at least one --override key=value")
            overrides = {frame: dict(parse_override(o) for o in override)}
        if workers < 1:
            raise FacecastError(f"--workers {workers}: use 1 or more")
        if parallel not in ("thread", "process"):
            raise FacecastError(f"--parallel {parallel}: choose thread or process")
        if batch_frames < 1:
            raise FacecastError(f"--batch-frames {batch_frames}: use 1 or more")

        from facecast.provenance import require_consent

        require_consent(ws)  # refuse before loading the model and printing a start line (merge() checks again)
        model_dir = ws.model(model)
        cluster = make_engine(engine, address, shard_size)
        if cluster is not None:
            _merge_on_cluster(ws, model, settings, overrides, cluster, device, xseg_model, export_patches, quiet, as_json)
            return
        from facecast.train.predict import load_predictor

        predictor = load_predictor(model_dir, device=device)
        if str(getattr(predictor, "device", "cpu")).startswith("cpu"):
            # leave half the cores to compositing: measured on 2 cores, 2 torch threads cost 2.6x the CPU
            # per frame of 1 (OpenMP spin-waits against the compositing workers), see bench/merge_speed.py
            import os

            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        session = Session.load(model_dir, model)
        session.settings = settings
        for f, ov in (overrides or {}).items():
            session.set_override(f, ov)
        modes = {settings.mask_mode, *(session.effective(f).mask_mode for f in session.overrides)}
        segmenter = None
        if any("xseg" in m for m in modes):
            name = xseg_model or "xseg"
            if xseg_model or ws.model(name).is_dir():
                try:
                    from facecast.masks.xseg.apply import load_segmenter
                except ImportError:
                    raise FacecastError("XSeg masks are not available in this install (facecast.masks.xseg.apply)") from None
                segmenter = load_segmenter(ws.model(name))
        info(f"merging with model {model} ({predictor.resolution} px {predictor.face_type}), mode {settings.mode}", quiet)
        with make_progress(quiet) as prog:
            task = prog.add_task("merge", total=None)

            def step(done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)

            report = merge(ws, model, settings, predictor, segmenter=segmenter, workers=workers,
                           export_patches=export_patches, quiet=quiet, overrides=overrides,
                           batch_frames=batch_frames, progress=step, parallel=parallel)
        data = report.to_dict()
        data["merged_folder"] = str(ws.merged)
        data["passthrough_count"] = len(report.passthrough)
        summary(data, as_json, quiet, title="merge")


def _merge_on_cluster(ws, model: str, settings, overrides, cluster, device: str, xseg_model, export_patches: bool,
                      quiet: bool, as_json: bool) -> None:
    """`--engine ray`: the same merge, sharded over the cluster's workers (facecast/cluster/stages.py)."""
    from facecast.cluster.stages import merge_on_cluster, predictor_spec, segmenter_spec
    from facecast.console import make_progress

    if not ws.model(model).is_dir():
        raise FacecastError(f"no model {model!r} in {ws.root / 'model'}: train one with `facecast train` first")
    modes = {settings.mask_mode, *(v.get("mask_mode", "") for v in (overrides or {}).values())}
    seg = None
    if any("xseg" in m for m in modes) and (xseg_model or ws.model("xseg").is_dir()):
        seg = segmenter_spec(ws.model(xseg_model or "xseg"))
    info(f"merging with model {model} on the cluster ({cluster.address or 'local Ray'}), mode {settings.mode}", quiet)
    with make_progress(quiet) as prog:
        task = prog.add_task("merge", total=None)
        data = merge_on_cluster(ws, model, settings, predictor_spec(ws.model(model), "cpu" if device == "auto" else device),
                                cluster, segmenter=seg, overrides=overrides, export_patches=export_patches,
                                progress=lambda d, t: prog.update(task, completed=d, total=t))
    data["merged_folder"] = str(ws.merged)
    summary(data, as_json, quiet, title="merge")
