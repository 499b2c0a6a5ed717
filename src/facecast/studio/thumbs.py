"""Disk cache of face thumbnails for the studio's grid.

Why on disk: a 20,000-face faceset is ~1 GB of 512 px JPEGs; decoding them for every page view is what
makes a grid slow. Each thumbnail is made once, on first request, and kept under
`<workspace>/.facecast_cache/thumbs/`, named by a hash of (file path, mtime, size, thumbnail side): a
face rewritten by the fix-frame or mask editors, renamed by a sort, or replaced gets a new key, and a
stale thumbnail is never served. Old entries are harmless garbage (`prune` clears entries older than a
given age).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import cv2

from facecast.media.images import atomic_write_bytes, decode_image, encode_image

CACHE_DIR = Path(".facecast_cache") / "thumbs"
DEFAULT_SIDE = 128
JPEG_QUALITY = 85


def cache_dir(ws_root: str | Path) -> Path:
    return Path(ws_root) / CACHE_DIR


def thumb_key(path: Path, st: os.stat_result, side: int) -> str:
    raw = f"{Path(path).resolve()}|{st.st_mtime_ns}|{st.st_size}|{side}".encode()
    return hashlib.sha1(raw).hexdigest()


def cached_path(ws_root: str | Path, path: Path, side: int = DEFAULT_SIDE) -> Path:
    """Where the thumbnail of `path` (as it is now) lives in the cache (it may not exist yet)."""
    key = thumb_key(path, path.stat(), side)
    return cache_dir(ws_root) / key[:2] / f"{key}.jpg"


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding; None if not found."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(data[pos + 5 : pos + 7], "big")
        if marker == 0xDA:
            return None
        pos += 2 + length
    return None


def make_thumbnail(data: bytes, side: int, name: str = "face") -> bytes:
    """A JPEG of at most `side` px. A big JPEG is decoded at 1/2, 1/4 or 1/8 size (libjpeg's DCT
    scaling: a 512 px face decodes ~4x faster at 1/4 than in full) when that still gives `side` px."""
    flags = cv2.IMREAD_COLOR
    dims = jpeg_size(data)
    if dims:
        for factor, flag in _REDUCED:
            if min(dims) // factor >= side:
                flags = flag
                break
    img = decode_image(data, name, flags)
    h, w = img.shape[:2]
    if max(h, w) > side:
        k = side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return encode_image(img, ".jpg", jpeg_quality=JPEG_QUALITY)


def thumbnail(ws_root: str | Path, path: str | Path, side: int = DEFAULT_SIDE) -> Path:
    """The cached thumbnail file of an image, made now if missing."""
    path = Path(path)
    out = cached_path(ws_root, path, side)
    if not out.is_file():
        atomic_write_bytes(out, make_thumbnail(path.read_bytes(), side, str(path)))
    return out


def prune(ws_root: str | Path, older_than_s: float = 30 * 86400) -> int:
    """Delete cached thumbnails not touched for `older_than_s` seconds; returns how many."""
    limit, n = time.time() - older_than_s, 0
    root = cache_dir(ws_root)
    for p in root.glob("*/*.jpg") if root.is_dir() else []:
        if p.stat().st_atime < limit and p.stat().st_mtime < limit:
            p.unlink(missing_ok=True)
            n += 1
    return n
