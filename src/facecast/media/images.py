"""Safe image reading and atomic writing.

Why: a corrupt or non-image file must give one clear line, not an OpenCV assertion; and a write
interrupted by Ctrl-C or a full disk must never leave a half-written file under the final name (resume
logic trusts that a file that exists is complete). Images are RGB uint8 numpy arrays everywhere in
facecast; OpenCV's BGR stays inside this module.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from facecast.errors import FacecastError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Image files in a folder, sorted by name (numbered frames sort naturally)."""
    if not folder.is_dir():
        raise FacecastError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def decode_image(data: bytes, name: str = "image", flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode bytes to RGB uint8 (or single channel with IMREAD_GRAYSCALE/UNCHANGED)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(arr, flags) if arr.size else None
    if img is None:
        raise FacecastError(f"{name}: not a readable image (corrupt or unsupported format)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Read an image file as RGB uint8; unreadable files raise one clear FacecastError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FacecastError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FacecastError(f"{path}: is a folder, expected an image file") from None
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror})") from None
    return decode_image(data, str(path), flags)


def encode_image(img: np.ndarray, suffix: str, jpeg_quality: int = 95, png_compression: int = 3) -> bytes:
    """Encode an RGB/RGBA/gray uint8 or uint16 image for a file suffix (".png", ".jpg", ...)."""
    suffix = suffix.lower()
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    ok, buf = cv2.imencode(suffix, img, params)
    if not ok:
        raise FacecastError(f"cannot encode image as {suffix}")
    return buf.tobytes()


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = False) -> None:
    """Write to a temporary sibling and rename, so `path` is either absent or complete."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise FacecastError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise FacecastError(f"cannot write {path}: {err.strerror}") from None
        raise


def atomic_write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Let `writer` produce a file at a temporary sibling path, then rename it into place.

    For writers that need a real path (video muxers, c2pa signing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image(path: str | Path, img: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode by suffix and write atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(img, path.suffix or ".png", jpeg_quality))


def clean_partials(folder: Path) -> int:
    """Remove temporary files a killed run left behind; returns how many."""
    n = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".tmp") or ".partial" in p.name):
                p.unlink(missing_ok=True)
                n += 1
    return n
