"""Folders of numbered frames: names, natural order, one size, and `frames.json` (how to rebuild the clip).

Shared by decoding (which writes them) and encoding (which reads them back).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.media.images import atomic_write_bytes, is_image_path

FRAMES_JSON = "frames.json"
FRAMES_SCHEMA = "facecast.frames/1"
FRAME_FORMATS = ("png", "jpg")


def frame_name(index: int, digits: int, fmt: str) -> str:
    """DeepFaceLab-like 1-based names: 00001.png, 00002.png, ..."""
    return f"{index + 1:0{digits}d}.{fmt}"


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files in natural order (img2 before img10), so hand-named folders keep their order."""
    if not folder.exists():
        raise FacecastError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise FacecastError(f"{folder}: is not a folder of frames")
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_path(p)), key=_natural_key)


def _image_size(path: Path) -> tuple[int, int]:
    """Width and height from the file header only (fast: no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError):
        raise FacecastError(f"{path}: not a readable image (corrupt or unsupported); remove or replace it") from None


def check_same_size(paths: list[Path], what: str = "frame") -> tuple[int, int]:
    """All images must share one size (a video has one); returns it or names the first odd file."""
    if not paths:
        raise FacecastError("no frames")
    first = _image_size(paths[0])
    for p in paths[1:]:
        size = _image_size(p)
        if size != first:
            raise FacecastError(
                f"{p}: {what} size {size[0]}x{size[1]} differs from {paths[0].name} ({first[0]}x{first[1]});"
                " all frames of a video must have one size - resize or remove the odd ones"
            )
    return first


@dataclass
class FramesMeta:
    """frames.json: everything needed to rebuild the clip the frames came from."""

    source: str
    source_kind: str  # "video" or "images"
    fps: float  # the grid the frames are on
    fps_fraction: str
    format: str
    jpeg_quality: int
    start: float
    end: float | None
    size: tuple[int, int] | list[int]
    digits: int
    frame_count: int = 0
    complete: bool = False
    source_fps: float | None = None
    source_frame_count: int | None = None
    source_size_bytes: int | None = None
    source_mtime: float | None = None
    rotation: int = 0  # display rotation applied on decode (frames are written upright)
    codec: str | None = None
    time_base: str | None = None
    duration: float = 0.0
    has_audio: bool = False
    audio: dict[str, Any] | None = None
    schema: str = FRAMES_SCHEMA

    def settings_key(self) -> dict[str, Any]:
        """The fields that must match for a re-run to resume instead of mixing two extractions."""
        return {
            "source": self.source,
            "source_size_bytes": self.source_size_bytes,
            "source_mtime": self.source_mtime,
            "fps_fraction": self.fps_fraction,
            "format": self.format,
            "jpeg_quality": self.jpeg_quality if self.format == "jpg" else None,
            "start": round(self.start, 6),
            "end": None if self.end is None else round(self.end, 6),
        }


def missing_frames(reference: list[Path], frames: list[Path]) -> list[str]:
    """Names of `reference` frames with no frame of the same stem in `frames` (e.g. dst frames a merge
    has not written yet), in order."""
    have = {p.stem for p in frames}
    return [p.name for p in reference if p.stem not in have]


def read_frames_meta(folder: Path) -> FramesMeta | None:
    """frames.json in `folder` (or its parent: merged/ frames sit inside the data_dst/ they came from)."""
    for cand in (folder / FRAMES_JSON, folder.parent / FRAMES_JSON):
        if cand.is_file():
            try:
                data = json.loads(cand.read_text())
                if data.get("schema") != FRAMES_SCHEMA:
                    raise ValueError("schema")
                known = FramesMeta.__dataclass_fields__
                return FramesMeta(**{k: v for k, v in data.items() if k in known})
            except (ValueError, TypeError):
                raise FacecastError(f"{cand}: not a valid facecast frames.json; delete it and extract again") from None
    return None


def write_meta(folder: Path, meta: FramesMeta) -> None:
    atomic_write_bytes(folder / FRAMES_JSON, (json.dumps(asdict(meta), indent=2) + "\n").encode())
