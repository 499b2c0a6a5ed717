"""`safe_path`: the one gate between a path that came from a request and the file system.

Only files inside the workspace are ever served or written. A request path is refused when it is
absolute, contains a NUL byte, names a hidden entry (`.facecast/keys` holds the signing key), or resolves (after `..` and symlinks) to anything outside the workspace
root: a symlink inside the workspace that points outside is refused like `../`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import HTTPException


def safe_path(ws_root: Path | str, rel: str | Path, must_exist: bool = True, allow_hidden: bool = False) -> Path:
    """The resolved path of `rel` inside `ws_root`; HTTP 403 outside the workspace, 404 when missing."""
    root = Path(ws_root).resolve()
    text = str(rel).replace("\\", "/")
    if not text or "\x00" in text:
        raise HTTPException(403, "path refused")
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise HTTPException(403, "path refused: absolute paths are not served")
    if ".." in pure.parts:
        raise HTTPException(403, "path refused: '..' is not allowed")
    if not allow_hidden and any(part.startswith(".") for part in pure.parts):
        raise HTTPException(403, "path refused: hidden files are not served")
    path = (root / pure).resolve()
    if path != root and root not in path.parents:
        raise HTTPException(403, "path refused: outside the workspace")
    if must_exist and not path.exists():
        raise HTTPException(404, f"not found: {rel}")
    return path


def rel_path(ws_root: Path | str, path: Path) -> str:
    """`path` relative to the workspace, POSIX style (what the pages send back)."""
    return Path(path).resolve().relative_to(Path(ws_root).resolve()).as_posix()
