"""Commands of the media stage: `facecast frames` and `facecast video` (registered by facecast.cli).

They only resolve workspace defaults and parse options; the work is in facecast.media.video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facecast.console import JsonOpt, QuietOpt, summary
from facecast.errors import FacecastError


def _workspace(path: Path | None):
    from facecast.workspace import Workspace

    return Workspace.open(path if path is not None else Path("."))


def resolve_frames_paths(input: str, out: Path | None, workspace: Path | None) -> tuple[Path, Path]:
    """`src`/`dst` mean the workspace's data_src.mp4/data_dst.mp4 -> data_src/ or data_dst/.

    With `-w` the words always mean the workspace's sides, even where the current folder has a `src/`
    (most code checkouts do); a folder of that name is written `./src`. Without `-w` an existing path
    wins and the current folder is the workspace otherwise.
    """
    if input in ("src", "dst") and (workspace is not None or not Path(input).exists()):
        ws = _workspace(workspace)
        video_path = ws.video(input)
        if not video_path.exists():
            raise FacecastError(f"{video_path}: file not found; put your {input} video there or give its path")
        return video_path, out if out is not None else ws.data(input)
    if out is None:
        if workspace is None:
            raise FacecastError("give an output folder: `facecast frames INPUT OUT`, or INPUT src/dst with -w")
        raise FacecastError("with a video path as INPUT give OUT too (src/dst pick the workspace's folders)")
    return Path(input), out


def register(app: typer.Typer) -> None:
    @app.command("frames")
    def frames_cmd(
        input: Annotated[str, typer.Argument(help="Video file, folder of images, or src/dst (the workspace's data_src.mp4/data_dst.mp4).")],
        out: Annotated[Optional[Path], typer.Argument(help="Output folder (default with src/dst: the workspace's data_src/ or data_dst/).")] = None,
        workspace: Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace folder (see `facecast workspace init`).")] = None,
        fps: Annotated[Optional[float], typer.Option(help="Frames per second to sample (default: the source's rate; 25 for image folders).")] = None,
        format: Annotated[str, typer.Option("--format", help="Frame file format: png (lossless) or jpg.")] = "png",
        jpeg_quality: Annotated[int, typer.Option(help="JPEG quality 1-100 with --format jpg.")] = 95,
        start: Annotated[Optional[str], typer.Option(help="Start: seconds (1.5), timecode (00:01.5) or frame number (f120).")] = None,
        end: Annotated[Optional[str], typer.Option(help="End: seconds, timecode (exclusive) or frame number (inclusive).")] = None,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Split a video (or a folder of images) into numbered frames plus frames.json; re-run to resume."""
        from facecast.media.video import frames

        src, dst = resolve_frames_paths(input, out, workspace)
        result = frames(src, dst, fps=fps, fmt=format, jpeg_quality=jpeg_quality, start=start, end=end,
                        quiet=quiet or json_out)
        summary(result.as_dict(), json_out, quiet, title="frames")

    @app.command("video")
    def video_cmd(
        frames_dir: Annotated[Optional[Path], typer.Argument(help="Folder of numbered frames (default with -w: data_dst/merged).")] = None,
        out: Annotated[Optional[Path], typer.Argument(help="Output video (default with -w: result.mp4 in the workspace).")] = None,
        workspace: Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace folder (see `facecast workspace init`).")] = None,
        fps: Annotated[Optional[float], typer.Option(help="Frame rate (default: from frames.json).")] = None,
        codec: Annotated[str, typer.Option(help="h264, hevc, prores (4444 with alpha given --mask-dir) or ffv1 (lossless).")] = "h264",
        crf: Annotated[int, typer.Option(help="Quality for h264/hevc: 0-51, lower is better.")] = 18,
        audio_from: Annotated[Optional[Path], typer.Option(help="Video whose audio to use (default: the workspace's data_dst.mp4, else the frames' source).")] = None,
        no_audio: Annotated[bool, typer.Option("--no-audio", help="Write the video without audio.")] = False,
        mask_dir: Annotated[Optional[Path], typer.Option(help="Mask frames (same names) for a prores 4444 alpha channel.")] = None,
        visible_label: Annotated[bool, typer.Option("--visible-label", help="Also burn a visible 'synthetic' label into a corner (distribution copies).")] = False,
        model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model named in the C2PA manifest (default with -w: the model of the workspace's last merge).")] = None,
        allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Encode even when data_dst/merged lacks some dst frames (an unfinished merge).")] = False,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Rebuild a video from numbered frames, with audio from the reference video."""
        from functools import partial

        from facecast.media.video import read_frames_meta, video
        from facecast.provenance import find_workspace, label_result_file

        ws = _workspace(workspace) if workspace is not None else None
        if frames_dir is None:
            if ws is None:
                raise FacecastError("give a frames folder, or -w WORKSPACE to use its data_dst/merged")
            frames_dir = ws.merged
        if out is None:
            if ws is None:
                raise FacecastError("give an output video path, or -w WORKSPACE to write its result.mp4")
            out = ws.result
        if ws is not None and frames_dir.resolve() == ws.merged.resolve() and not allow_partial:
            refuse_partial_merge(ws)
        if ws is not None and model is None:
            model = last_merged_model(ws)
        audio = None
        if not no_audio:
            if audio_from is not None:
                audio = audio_from
            elif ws is not None and ws.video("dst").is_file():
                audio = ws.video("dst")
            else:
                meta = read_frames_meta(frames_dir) if frames_dir.is_dir() else None
                if meta is not None and meta.has_audio and Path(meta.source).is_file():
                    audio = Path(meta.source)
        sign_ws = ws or find_workspace(out.parent) or find_workspace(frames_dir)
        result = video(frames_dir, out, fps=fps, codec=codec, crf=crf, audio_from=audio, mask_dir=mask_dir,
                       quiet=quiet or json_out, visible_label=visible_label,
                       label=partial(label_result_file, ws=sign_ws, model_name=model))
        summary({**result.as_dict(), "model": model}, json_out, quiet, title="video")


def refuse_partial_merge(ws) -> None:
    """A video of an unfinished merge is silently short: refuse it, naming the frames it lacks."""
    from facecast.media.video import list_frames, missing_frames

    if not ws.merged.is_dir() or not ws.data("dst").is_dir():
        return
    missing = missing_frames(list_frames(ws.data("dst")), list_frames(ws.merged))
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise FacecastError(
            f"{ws.merged} lacks {len(missing)} of {len(list_frames(ws.data('dst')))} dst frames ({shown}): "
            "finish `facecast merge -w WS --model NAME` (it resumes), or pass --allow-partial for a shorter video"
        )


def last_merged_model(ws) -> str | None:
    """The model whose merge session was saved last: the one data_dst/merged came from."""
    from facecast.merge.session import last_merge

    return last_merge(ws.models)
