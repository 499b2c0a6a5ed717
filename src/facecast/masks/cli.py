"""`facecast xseg ...`: segmentation masks (pretrain, train, apply, remove, preview) and hand labels.

Commands only parse arguments and call the plain functions in `facecast.masks`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facecast.cluster.cli import AddressOpt, EngineOpt, ShardSizeOpt
from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, summary

SideArg = Annotated[str, typer.Argument(help="Which faceset: src or dst.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model folder name under model/.")]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="tiny (CPU tries, tests) or default (256 px).")]
ResOpt = Annotated[Optional[int], typer.Option("--resolution", help="Input size in pixels (overrides the preset).")]
FaceTypeOpt = Annotated[Optional[str], typer.Option("--face-type", help="Face type (default: the faceset's).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Faces per step.")]
FormatOpt = Annotated[str, typer.Option("--format", help="labelme (one JSON per face) or facecast (one labels.json).")]


def _ws(path: Path):
    from facecast.workspace import Workspace

    return Workspace.open(path)


MinutesOpt = Annotated[Optional[float], typer.Option("--max-minutes", help="Train for at most this many minutes in this run (set-up included), then save and stop.")]


def _settings(batch_size: int, device: str, seed: int, save_every: int, max_minutes: float | None = None):
    from facecast.masks.xseg.train import XSegTrainSettings

    return XSegTrainSettings(batch_size=batch_size, device=device, seed=seed, save_every=save_every,
                             preview_every=save_every, max_seconds=None if max_minutes is None else max_minutes * 60)


def register(app: typer.Typer) -> None:
    xseg = typer.Typer(help="XSeg-style masks that see hands and obstructions: pretrain, train, apply.",
                       no_args_is_help=True)
    labels = typer.Typer(help="Hand labels (include/exclude polygons): export, import, list, fetch.",
                         no_args_is_help=True)
    xseg.add_typer(labels, name="labels")
    app.add_typer(xseg, name="xseg")

    @xseg.command("pretrain")
    def pretrain(workspace: WorkspaceOpt, model: ModelOpt = "xseg", preset: PresetOpt = None,
                 target_iter: Annotated[int, typer.Option("--target-iter", help="Stop at this iteration.")] = 2000,
                 resolution: ResOpt = None, face_type: FaceTypeOpt = None, batch_size: BatchOpt = 8,
                 device: DeviceOpt = "auto", seed: int = 0,
                 save_every: Annotated[int, typer.Option("--save-every")] = 250, max_minutes: MinutesOpt = None,
                 quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Train without hand labels: target = face hull (+ forehead) minus synthetic occluders."""
        from facecast.masks.xseg.train import xseg_pretrain

        result = xseg_pretrain(_ws(workspace), model, preset, target_iter, resolution, face_type,
                               _settings(batch_size, device, seed, save_every, max_minutes), quiet)
        summary(result, as_json, quiet, title="xseg pretrain")

    @xseg.command("train")
    def train(workspace: WorkspaceOpt, model: ModelOpt = "xseg", preset: PresetOpt = None,
              target_iter: Annotated[int, typer.Option("--target-iter", help="Stop at this fine-tune iteration.")] = 500,
              resolution: ResOpt = None, face_type: FaceTypeOpt = None, batch_size: BatchOpt = 8,
              device: DeviceOpt = "auto", seed: int = 0,
              save_every: Annotated[int, typer.Option("--save-every")] = 250, max_minutes: MinutesOpt = None,
              quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Fine-tune on the labelled faces of src and dst together (pretrain first for best results)."""
        from facecast.masks.xseg.train import xseg_train

        result = xseg_train(_ws(workspace), model, preset, target_iter, resolution, face_type,
                            _settings(batch_size, device, seed, save_every, max_minutes), quiet)
        summary(result, as_json, quiet, title="xseg train")

    @xseg.command("apply")
    def apply(side: SideArg, workspace: WorkspaceOpt, model: ModelOpt = "xseg", batch_size: BatchOpt = 16,
              force: Annotated[bool, typer.Option("--force", help="Redo faces already masked by these weights.")] = False,
              resize: Annotated[Optional[bool], typer.Option("--resize/--no-resize", help="Force a choice for faces of another size than the model's: by default they are scaled to it (and the summary says so); --no-resize refuses them.")] = None,
              device: DeviceOpt = "auto", engine: EngineOpt = None, address: AddressOpt = None,
              shard_size: ShardSizeOpt = 0, quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Write each face's XSeg mask into its metadata (resumable)."""
        from facecast.cluster.cli import make_engine
        from facecast.masks.xseg.apply import xseg_apply

        cluster = make_engine(engine, address, shard_size)
        if cluster is not None:
            from facecast.cluster.stages import xseg_apply_on_cluster

            summary(xseg_apply_on_cluster(_ws(workspace), side, cluster, model, batch_size, force, resize),
                    as_json, quiet, title="xseg apply")
            return
        summary(xseg_apply(_ws(workspace), side, model, batch_size, force, resize, device, quiet), as_json, quiet,
                title="xseg apply")

    @xseg.command("remove")
    def remove(side: SideArg, workspace: WorkspaceOpt, quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Drop the XSeg masks of a faceset (hand labels stay)."""
        from facecast.masks.xseg.apply import xseg_remove

        summary(xseg_remove(_ws(workspace), side, quiet), as_json, quiet, title="xseg remove")

    @xseg.command("preview")
    def preview(side: SideArg, workspace: WorkspaceOpt,
                out: Annotated[Optional[Path], typer.Option("--out", help="Folder for overlays.")] = None,
                quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Write face | mask-overlay images for a quick look."""
        from facecast.masks.xseg.apply import xseg_preview

        summary(xseg_preview(_ws(workspace), side, out, quiet), as_json, quiet, title="xseg preview")

    @labels.command("export")
    def export(side: SideArg, workspace: WorkspaceOpt, fmt: FormatOpt = "labelme",
               out: Annotated[Optional[Path], typer.Option("--out", help="Folder (default data_<side>/labels).")] = None,
               labelled_only: Annotated[bool, typer.Option("--labelled-only")] = False,
               quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Write faces + LabelMe JSON (or one facecast labels.json) to label in another tool."""
        from facecast.masks.labels import labels_export

        summary(labels_export(_ws(workspace), side, fmt, out, labelled_only), as_json, quiet, title="labels export")

    @labels.command("import")
    def import_(side: SideArg, workspace: WorkspaceOpt, fmt: FormatOpt = "labelme",
                src: Annotated[Optional[Path], typer.Option("--from", "--out", help="Folder (or labels.json) to read.")] = None,
                quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Read labels back into the faces' metadata (all files checked before any face is changed)."""
        from facecast.masks.labels import labels_import

        summary(labels_import(_ws(workspace), side, fmt, src, quiet), as_json, quiet, title="labels import")

    @labels.command("list")
    def list_(side: SideArg, workspace: WorkspaceOpt, quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Show which faces carry hand labels."""
        from facecast.masks.labels import labels_list

        summary(labels_list(_ws(workspace), side), as_json, quiet, title="labels")

    @labels.command("fetch")
    def fetch(side: SideArg, workspace: WorkspaceOpt,
              out: Annotated[Path, typer.Option("--out", help="Folder to copy labelled faces into.")],
              quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """Copy the labelled faces out (DeepFaceLab's fetch)."""
        from facecast.masks.labels import labels_fetch

        summary(labels_fetch(_ws(workspace), side, out), as_json, quiet, title="labels fetch")
