"""`facecast faceset ...`: sort, recover-names, dedup, merge, pack, unpack, info, resize, import-dfl.

Commands only parse arguments and call the plain functions of this package. A faceset argument is
`src`/`dst` (the workspace's data_src/aligned or data_dst/aligned, workspace from `-w`) or a folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, summary

FacesetArg = Annotated[str, typer.Argument(help="`src`, `dst` (the workspace's aligned folders) or a folder path.")]


def register(app: typer.Typer) -> None:
    fs = typer.Typer(help="Faceset tools: sort, dedup, merge, pack, resize, DeepFaceLab import.", no_args_is_help=True)

    @fs.command("sort")
    def sort_cmd(
        faceset: FacesetArg,
        by: Annotated[str, typer.Option("--by", help="blur, motion-blur, yaw, pitch, hist, hist-dissim, brightness, hue, black, origname, face-count, best.")] = "blur",
        reverse: Annotated[bool, typer.Option("--reverse", help="Reverse the order.")] = False,
        workspace: WorkspaceOpt = Path("."),
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Reorder faces by renaming them NNNNN_<name> (undo with recover-names)."""
        from facecast.faceset.common import resolve_faceset
        from facecast.faceset.sort import sort_faceset

        res = sort_faceset(resolve_faceset(faceset, workspace), by, reverse, quiet=quiet or json_out)
        summary(res.as_dict(), json_out, quiet, title="faceset sort")

    @fs.command("recover-names")
    def recover_cmd(faceset: FacesetArg, workspace: WorkspaceOpt = Path("."), quiet: QuietOpt = False,
                    json_out: JsonOpt = False) -> None:
        """Give sorted faces back the names they had before their first sort."""
        from facecast.faceset.common import resolve_faceset
        from facecast.faceset.sort import recover_names

        summary(recover_names(resolve_faceset(faceset, workspace), quiet=quiet or json_out), json_out, quiet,
                title="faceset recover-names")

    @fs.command("dedup")
    def dedup_cmd(
        faceset: FacesetArg,
        target: Annotated[Optional[int], typer.Option("--target", help="Keep at most N faces, spread over pose and expression.")] = None,
        hash_distance: Annotated[int, typer.Option("--hash-distance", help="Image-hash bits (of 64) within which faces are duplicates.")] = 4,
        workspace: WorkspaceOpt = Path("."),
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Move near-duplicates (and, with --target, the least varied faces) to <folder>_removed/."""
        from facecast.faceset.common import resolve_faceset
        from facecast.faceset.dedup import DedupSettings, dedup

        res = dedup(resolve_faceset(faceset, workspace), settings=DedupSettings(target, hash_distance),
                    quiet=quiet or json_out)
        summary(res.as_dict(), json_out, quiet, title="faceset dedup")

    @fs.command("merge")
    def merge_cmd(
        a: Annotated[str, typer.Argument(help="First faceset: src, dst, a folder or a .fcset pack.")],
        b: Annotated[str, typer.Argument(help="Second faceset.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to merge into.")],
        workspace: WorkspaceOpt = Path("."),
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Merge two facesets; clashing names get _1, _2 ...; metadata stays inside each file."""
        from facecast.faceset.pack import merge

        summary(merge(_source(a, workspace), _source(b, workspace), out, quiet=quiet or json_out), json_out, quiet,
                title="faceset merge")

    @fs.command("pack")
    def pack_cmd(
        faceset: FacesetArg,
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Pack file (default <folder>.fcset).")] = None,
        workspace: WorkspaceOpt = Path("."),
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Pack a faceset into one .fcset file (ZIP, stored, with a JSON index) for sharing and loading."""
        from facecast.faceset.common import resolve_faceset
        from facecast.faceset.pack import PACK_SUFFIX, pack

        folder = resolve_faceset(faceset, workspace)
        target = out if out is not None else folder.parent / f"{folder.name}{PACK_SUFFIX}"
        summary(pack(folder, target, quiet=quiet or json_out), json_out, quiet, title="faceset pack")

    @fs.command("unpack")
    def unpack_cmd(
        file: Annotated[Path, typer.Argument(help="A .fcset pack.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to unpack into.")],
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Unpack a .fcset file into a folder (byte-identical faces)."""
        from facecast.faceset.pack import unpack

        summary(unpack(file, out, quiet=quiet or json_out), json_out, quiet, title="faceset unpack")

    @fs.command("info")
    def info_cmd(
        file: Annotated[Path, typer.Argument(help="An aligned face file or a .fcset pack.")],
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Show the metadata of one aligned face (or a pack's summary)."""
        from facecast.faceset.pack import info

        summary(info(file), json_out, quiet, title=str(file))

    @fs.command("resize")
    def resize_cmd(
        faceset: FacesetArg,
        size: Annotated[int, typer.Option("--size", help="New side in pixels.")],
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here instead of in place.")] = None,
        jpeg_quality: Annotated[int, typer.Option("--jpeg-quality", min=1, max=100)] = 95,
        workspace: WorkspaceOpt = Path("."),
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Rescale faces, keeping landmarks, matrix and masks consistent."""
        from facecast.faceset.common import resolve_faceset
        from facecast.faceset.pack import resize

        res = resize(resolve_faceset(faceset, workspace), size, out, jpeg_quality, quiet=quiet or json_out)
        summary(res, json_out, quiet, title="faceset resize")

    @fs.command("import-dfl")
    def import_cmd(
        src: Annotated[Path, typer.Argument(help="DeepFaceLab aligned folder, one DFL face, or faceset.pak.")],
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the workspace's --side aligned folder).")] = None,
        side: Annotated[str, typer.Option("--side", help="src or dst, when --out is not given.")] = "src",
        face_type: Annotated[Optional[str], typer.Option("--face-type", help="Record this face type instead of the mapped DFL one.")] = None,
        workspace: WorkspaceOpt = Path("."),
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Import a DeepFaceLab faceset safely (restricted unpickler: plain data and arrays only)."""
        from facecast.faceset.dfl_import import import_dfl

        if out is None:
            from facecast.workspace import Workspace

            out = Workspace.open(workspace).aligned(side)
        res = import_dfl(src, out, face_type, quiet=quiet or json_out)
        summary(res.as_dict(), json_out, quiet, title="faceset import-dfl")

    app.add_typer(fs, name="faceset")


def _source(value: str, workspace: Path) -> Path:
    """A merge input: src/dst, a folder, or a pack file."""
    path = Path(value)
    if value not in ("src", "dst") and path.is_file():
        return path
    from facecast.faceset.common import resolve_faceset

    return resolve_faceset(value, workspace)
