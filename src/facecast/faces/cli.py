"""Commands of the faces stage (registered by facecast.cli): `facecast extract`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from facecast.cluster.cli import AddressOpt, EngineOpt, ShardSizeOpt, make_engine
from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, summary
from facecast.errors import FacecastError


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract_cmd(
        side: Annotated[str, typer.Argument(help="src or dst.")],
        workspace: WorkspaceOpt = Path("."),
        face_type: Annotated[str, typer.Option("--face-type", help="half, mid_half, full, whole_face or head. whole_face is what the saehd and tiny presets train; a wider faceset is cropped to a narrower model at load.")] = "whole_face",
        size: Annotated[int, typer.Option("--size", help="Aligned image size in pixels.")] = 512,
        jpeg_quality: Annotated[int, typer.Option("--jpeg-quality", help="JPEG quality of aligned faces.")] = 95,
        reference: Annotated[Optional[list[Path]], typer.Option("--reference", help="Photo(s) of the person to keep (repeatable).")] = None,
        smooth: Annotated[bool, typer.Option("--smooth/--no-smooth", help="Smooth landmarks over time (One-Euro filter per identity track; removes jitter). On by default: it cut still-head jitter 5-10x with no loss on moving faces (bench/extract.py).")] = True,
        redo_deleted: Annotated[bool, typer.Option("--redo-deleted", help="Re-extract dst frames whose aligned_debug image was deleted.")] = False,
        landmarks: Annotated[Optional[Path], typer.Option("--landmarks", help='Hand-placed landmarks: {"frame_name": [[x, y] * 68]}.')] = None,
        workers: Annotated[int, typer.Option("--workers", help="Worker processes (default: CPU cores, at most 8).")] = 0,
        min_score: Annotated[float, typer.Option("--min-score", help="Detector confidence threshold.")] = 0.5,
        engine: EngineOpt = None,
        address: AddressOpt = None,
        shard_size: ShardSizeOpt = 0,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Detect faces, place 68 landmarks, track identities and write aligned faces with metadata."""
        from facecast.faces.extract import extract
        from facecast.workspace import SIDES, Workspace

        if side not in SIDES:
            raise FacecastError(f"side must be src or dst, not {side!r}")
        ws = Workspace.open(workspace)
        cluster = make_engine(engine, address, shard_size)
        report = extract(
            ws, side, face_type=face_type, size=size, jpeg_quality=jpeg_quality, reference=reference or None,
            smooth=smooth, redo_deleted=redo_deleted, landmarks_file=landmarks,
            workers=workers or min(8, os.cpu_count() or 1), quiet=quiet or json_out, min_score=min_score,
            engine=cluster,
        )
        shown = dict(report)
        if not json_out:
            shown["frames_without_face_list"] = report["frames_without_face_list"]
        summary(shown, json_out, quiet, title=f"extract {side}")
