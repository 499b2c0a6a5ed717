"""Commands of the train stage: `facecast train`, `facecast train-options`, `facecast export`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, summary
from facecast.errors import FacecastError

FIXED = "(fixed at creation)"
CHANGE = "(changeable on resume)"


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FacecastError(f"--set {item!r}: write KEY=VALUE, e.g. --set random_hsv_power=0.05")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        workspace: WorkspaceOpt,
        model: Annotated[str, typer.Option("--model", "-m", help="Model name: folder model/<NAME>/ (created or resumed).")],
        preset: Annotated[Optional[str], typer.Option(help="Starting options for a NEW model: cpu (a first likeness in minutes on a CPU), tiny, quick96 or saehd (default saehd: GPU-sized).")] = None,
        arch: Annotated[Optional[str], typer.Option(help=f"df or liae with flags -u -d -t, e.g. liae-ud {FIXED}")] = None,
        resolution: Annotated[Optional[int], typer.Option(help=f"Face size in px, multiple of 16 (32 with -d) {FIXED}")] = None,
        face_type: Annotated[Optional[str], typer.Option(help=f"half, mid_half, full, whole_face, head {FIXED}")] = None,
        ae_dims: Annotated[Optional[int], typer.Option(help=f"Autoencoder code width {FIXED}")] = None,
        e_dims: Annotated[Optional[int], typer.Option(help=f"Encoder channels {FIXED}")] = None,
        d_dims: Annotated[Optional[int], typer.Option(help=f"Decoder channels {FIXED}")] = None,
        d_mask_dims: Annotated[Optional[int], typer.Option(help=f"Mask decoder channels {FIXED}")] = None,
        batch_size: Annotated[Optional[int], typer.Option(help=f"Global batch size {CHANGE}")] = None,
        lr: Annotated[Optional[float], typer.Option(help=f"Learning rate {CHANGE}")] = None,
        optimizer: Annotated[Optional[str], typer.Option(help=f"rmsprop, adabelief or adamw {CHANGE}")] = None,
        ct_mode: Annotated[Optional[str], typer.Option(help=f"Colour transfer of src to dst: none rct lct mkl idt sot {CHANGE}")] = None,
        pretrain: Annotated[Optional[bool], typer.Option("--pretrain/--no-pretrain", help=f"Pretrain on one generic faceset {CHANGE}")] = None,
        target_iter: Annotated[Optional[int], typer.Option(help=f"Stop at this total iteration (0 = never) {CHANGE}")] = None,
        set_: Annotated[list[str], typer.Option("--set", help=f"Any other option as KEY=VALUE (see `facecast train-options`) {CHANGE}")] = [],
        max_iters: Annotated[Optional[int], typer.Option(help="Stop after this many iterations in this run.")] = None,
        max_minutes: Annotated[Optional[float], typer.Option(help="Train for this many minutes in this run (set-up included), then save and stop.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
        precision: Annotated[str, typer.Option(help="auto (the model's stored choice, measured on its first run), fp32, bf16 or fp16; a named one is stored with the model.")] = "auto",
        remeasure_precision: Annotated[bool, typer.Option("--remeasure-precision", help="Measure bf16 against fp32 again on this model's training step and store the answer.")] = False,
        src: Annotated[Optional[Path], typer.Option(help="src faceset folder (default data_src/aligned).")] = None,
        dst: Annotated[Optional[Path], typer.Option(help="dst faceset folder (default data_dst/aligned); a new one reuses the model.")] = None,
        pretrain_faceset: Annotated[Optional[Path], typer.Option(help="Faceset for --pretrain (default data_src/aligned).")] = None,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Create or resume a model and train it (Ctrl-C saves). Architecture options are fixed at creation."""
        from facecast.quality.guidance import quality_evaluators, summary_fields, training_guidance
        from facecast.train.options import ModelOptions
        from facecast.train.trainer import train

        overrides = dict(arch=arch, resolution=resolution, face_type=face_type, ae_dims=ae_dims, e_dims=e_dims,
                         d_dims=d_dims, d_mask_dims=d_mask_dims, batch_size=batch_size, lr=lr, optimizer=optimizer,
                         ct_mode=ct_mode, pretrain=pretrain)
        overrides.update(_parse_sets(set_))
        evaluators = quality_evaluators(workspace, model, preset, overrides)
        result = train(workspace, model, preset_name=preset, overrides=overrides, device=device,
                       target_iter=target_iter, max_iters=max_iters,
                       max_seconds=None if max_minutes is None else max_minutes * 60, src_faceset=src, dst_faceset=dst,
                       pretrain_faceset=pretrain_faceset, precision=None if precision == "auto" else precision,
                       remeasure_precision=remeasure_precision,
                       evaluators=evaluators, quiet=quiet or json_out)
        data = asdict(result)
        data.pop("events")
        model_dir = Path(result.model_dir)
        guide = training_guidance(model_dir, result.ms_per_iter,
                                  ModelOptions.load(model_dir / "options.json").eval_every or None)
        data.update(summary_fields(guide))
        summary(data, json_out, quiet, title="training")

    @app.command("train-options")
    def options_cmd(
        preset: Annotated[str, typer.Option(help="Show this preset's values: cpu, tiny, quick96, saehd.")] = "saehd",
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """List every training option, its value in a preset, and whether it is fixed at creation."""
        from facecast.train.options import option_help
        from facecast.train.options import preset as get_preset

        values = asdict(get_preset(preset))
        data = {k: f"{values[k]!r}  ({kind})" for k, kind in option_help().items()}
        if json_out:
            data = {k: {"value": values[k], "kind": kind} for k, kind in option_help().items()}
        summary(data, json_out, quiet, title=f"options of preset {preset}")

    @app.command("restore-backup")
    def restore_cmd(
        workspace: WorkspaceOpt,
        model: Annotated[str, typer.Option("--model", "-m", help="Model name under model/ (a swap model or an xseg model).")],
        iteration: Annotated[Optional[int], typer.Option(help="Restore backups/<ITERATION>/ (default: the newest good one).")] = None,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Make a backup the model's current save again (after a damaged weight file, or to undo training)."""
        from facecast import modelstore
        from facecast.workspace import Workspace

        model_dir = Workspace.open(workspace).model(model)
        if not model_dir.is_dir():
            raise FacecastError(f"model folder {model_dir} not found")
        which = None if iteration is None else model_dir / modelstore.BACKUPS / f"{iteration:08d}"
        if which is not None and not which.is_dir():
            have = ", ".join(str(int(b.name)) for b in modelstore.list_backups(model_dir)) or "none"
            raise FacecastError(f"{which}: no such backup (backups: {have})")
        chosen = modelstore.restore(model_dir, which)
        summary({"model": str(model_dir), "restored": str(chosen), "iteration": int(chosen.name)}, json_out, quiet,
                title="restore")

    @app.command("export")
    def export_cmd(
        workspace: WorkspaceOpt,
        model: Annotated[str, typer.Option("--model", "-m", help="Model name under model/.")],
        format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
        out: Annotated[Optional[Path], typer.Option(help="Output file (default model/<NAME>/export/<NAME>.onnx).")] = None,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Export the dst->src swap path (ONNX) and check it against PyTorch (max abs diff <= 1e-4)."""
        from facecast.train.export import export_model
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace)
        result = export_model(ws.model(model), format, out)
        summary(asdict(result), json_out, quiet, title="export")
