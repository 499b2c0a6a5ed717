"""Deleting faces the recoverable way: move them to `<folder>_removed/` (as `faceset dedup` does) and
back again.

Why not unlink: a reviewer clearing bad faces from a 20,000-face grid will misclick; a face moved aside
keeps its name and metadata, so `restore_faces` puts it back exactly as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from facecast.errors import FacecastError
from facecast.faces.aligned import list_aligned
from facecast.faceset.common import unique_name


def removed_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.parent / f"{folder.name}_removed"


def _plain_name(name: str) -> str:
    if not name or Path(name).name != name or name.startswith("."):
        raise FacecastError(f"{name!r} is not a face file name")
    return name


def _move(src_dir: Path, dst_dir: Path, names: list[str]) -> list[str]:
    """Move each name from src_dir to dst_dir (a free name if taken); returns the names given there."""
    missing = [n for n in names if not (src_dir / _plain_name(n)).is_file()]
    if missing:
        raise FacecastError(f"{src_dir}: no face named {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    dst_dir.mkdir(parents=True, exist_ok=True)
    moved = []
    for name in names:
        target = unique_name(dst_dir, name)
        try:
            os.replace(src_dir / name, dst_dir / target)
        except OSError as err:
            raise FacecastError(f"cannot move {src_dir / name} to {dst_dir}: {err.strerror}") from None
        moved.append(target)
    return moved


def remove_faces(folder: str | Path, names: list[str]) -> dict:
    """Move faces of `folder` to `<folder>_removed/`; every name is checked before any file moves."""
    folder = Path(folder)
    removed = removed_folder(folder)
    return {"folder": str(folder), "removed_folder": str(removed), "moved": _move(folder, removed, list(names))}


def removed_faces(folder: str | Path) -> list[Path]:
    removed = removed_folder(folder)
    return list_aligned(removed) if removed.is_dir() else []


def restore_faces(folder: str | Path, names: list[str] | None = None) -> dict:
    """Move faces back from `<folder>_removed/` (all of them when `names` is None)."""
    folder = Path(folder)
    removed = removed_folder(folder)
    names = [p.name for p in removed_faces(folder)] if names is None else list(names)
    return {"folder": str(folder), "restored": _move(removed, folder, names)}
