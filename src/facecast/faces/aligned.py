"""The aligned-face file: an image whose metadata travels inside it (schema `facecast.aligned/1`).

Why inside the file: a faceset gets renamed, sorted, copied and shared; a side database would drift.
- JPEG: APP9 segments whose payload starts with b"FACECAST\\0", then a sequence byte and a count byte,
  then a slice of the UTF-8 JSON (the JSON is split over several segments when it exceeds one segment's
  64 KB, e.g. with an XSeg mask inside). APP9 is used because APP11 carries C2PA/JUMBF, APP14 Adobe and
  APP15 DeepFaceLab's pickles.
- PNG: one iTXt chunk with keyword `facecast.aligned`.
Rewriting metadata (masks, identities, sort order) never re-encodes the pixels.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecast.errors import FacecastError
from facecast.media.images import atomic_write_bytes, decode_image, encode_image

SCHEMA = "facecast.aligned/1"
JPEG_MARKER = 0xE9  # APP9
JPEG_ID = b"FACECAST\x00"
PNG_KEY = b"facecast.aligned"
_MAX_SEG = 65533 - len(JPEG_ID) - 2  # APP payload limit minus our header
FIX_HINT = "run `facecast extract` on its frames again (or `facecast faceset import-dfl` for DeepFaceLab faces)"


@dataclass
class SourceInfo:
    filename: str
    frame_size: tuple[int, int]  # (width, height)
    rect: tuple[float, float, float, float]  # detector box x0, y0, x1, y1 in frame pixels
    landmarks: list[list[float]]  # 68x2 in frame pixels


@dataclass
class AlignedMeta:
    """Everything a later stage needs about one aligned face. Coordinates are floats in pixels."""

    face_type: str
    size: int
    landmarks: list[list[float]]  # 68x2, aligned-image coordinates
    source: SourceInfo
    image_to_face: list[list[float]]  # 2x3 affine: frame pixels -> aligned pixels
    face_index: int = 0
    identity: int | str | None = None
    pose: dict[str, float] = field(default_factory=lambda: {"yaw": 0.0, "pitch": 0.0, "roll": 0.0})
    sharpness: float = 0.0
    interpolated: bool = False
    mask_polygons: list[dict[str, Any]] | None = None  # [{"type": "include"|"exclude", "points": [[x,y],...]}]
    xseg_mask: str | None = None  # base64 PNG, aligned-image size or smaller
    detector: dict[str, str] = field(default_factory=dict)
    # {"model", "score", "verdict": "ok"}: these pixels (or their source frame) passed the explicit-content
    # gate (provenance/content_gate.py); written by extract and every import path, required by train
    content_gate: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # room for stage-specific keys
    schema: str = SCHEMA

    # -- convenience views -------------------------------------------------------------------------
    @property
    def landmarks_array(self) -> np.ndarray:
        return np.asarray(self.landmarks, dtype=np.float64)

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.image_to_face, dtype=np.float64)

    @property
    def source_landmarks(self) -> np.ndarray:
        return np.asarray(self.source.landmarks, dtype=np.float64)

    def get_xseg_mask(self) -> np.ndarray | None:
        """The stored XSeg mask as float32 HxW in [0,1] at aligned size, or None."""
        if not self.xseg_mask:
            return None
        import cv2

        raw = decode_image(base64.b64decode(self.xseg_mask), "xseg mask", cv2.IMREAD_GRAYSCALE)
        if raw.shape[0] != self.size:
            raw = cv2.resize(raw, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return raw.astype(np.float32) / 255.0

    def set_xseg_mask(self, mask: np.ndarray | None) -> None:
        """Store a float [0,1] or uint8 mask as a compressed PNG (None removes it)."""
        if mask is None:
            self.xseg_mask = None
            return
        m = mask if mask.dtype == np.uint8 else np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
        self.xseg_mask = base64.b64encode(encode_image(m, ".png", png_compression=9)).decode("ascii")

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "metadata") -> "AlignedMeta":
        if data.get("schema") != SCHEMA:
            raise FacecastError(f"{name}: metadata schema {data.get('schema')!r} is not {SCHEMA}; {FIX_HINT}")
        try:
            src = data["source"]
            source = SourceInfo(
                filename=str(src["filename"]),
                frame_size=tuple(src["frame_size"]),
                rect=tuple(src["rect"]),
                landmarks=src["landmarks"],
            )
            known = {f for f in cls.__dataclass_fields__ if f != "source"}
            kwargs = {k: v for k, v in data.items() if k in known}
            meta = cls(source=source, **kwargs)
        except (KeyError, TypeError, ValueError) as err:
            raise FacecastError(f"{name}: metadata is incomplete ({err}); {FIX_HINT}") from None
        if len(meta.landmarks) != 68 or len(meta.image_to_face) != 2:
            raise FacecastError(f"{name}: metadata has malformed landmarks or matrix; {FIX_HINT}")
        return meta


@dataclass
class AlignedFace:
    image: np.ndarray  # RGB uint8, size x size
    meta: AlignedMeta
    path: Path | None = None


# -- JPEG ----------------------------------------------------------------------------------------------
def _jpeg_split(data: bytes) -> tuple[bytes, list[tuple[int, bytes]], bytes]:
    """Split a JPEG into SOI, the list of (marker, payload) header segments before SOS, and the rest."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos, segs = 2, []
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segs.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return data[:2], segs, data[pos:]


def _jpeg_join(soi: bytes, segs: list[tuple[int, bytes]], rest: bytes) -> bytes:
    out = bytearray(soi)
    for marker, payload in segs:
        out += bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return bytes(out + rest)


def _jpeg_with_meta(data: bytes, text: str) -> bytes:
    soi, segs, rest = _jpeg_split(data)
    segs = [(m, p) for m, p in segs if not (m == JPEG_MARKER and p.startswith(JPEG_ID))]
    raw = text.encode("utf-8")
    chunks = [raw[i : i + _MAX_SEG] for i in range(0, len(raw), _MAX_SEG)] or [b""]
    if len(chunks) > 255:
        raise FacecastError("aligned-face metadata is too large to store in a JPEG")
    ours = [(JPEG_MARKER, JPEG_ID + bytes([i, len(chunks)]) + c) for i, c in enumerate(chunks)]
    # After APP0 (JFIF) if present, so readers that expect JFIF first stay happy.
    at = 1 if segs and segs[0][0] == 0xE0 else 0
    return _jpeg_join(soi, segs[:at] + ours + segs[at:], rest)


def _jpeg_meta_text(data: bytes) -> str | None:
    _, segs, _ = _jpeg_split(data)
    parts = {}
    for marker, payload in segs:
        if marker == JPEG_MARKER and payload.startswith(JPEG_ID):
            head = payload[len(JPEG_ID) : len(JPEG_ID) + 2]
            parts[head[0]] = (head[1], payload[len(JPEG_ID) + 2 :])
    if not parts:
        return None
    count = next(iter(parts.values()))[0]
    if sorted(parts) != list(range(count)):
        raise ValueError("metadata segments missing")
    return b"".join(parts[i][1] for i in range(count)).decode("utf-8")


# -- PNG -----------------------------------------------------------------------------------------------
def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, chunks = 8, []
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        ctype = data[pos + 4 : pos + 8]
        chunks.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if ctype == b"IEND":
            break
    return chunks


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for ctype, body in chunks:
        out += struct.pack(">I", len(body)) + ctype + body
        out += struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)
    return bytes(out)


def _png_with_meta(data: bytes, text: str) -> bytes:
    chunks = [c for c in _png_chunks(data) if not (c[0] == b"iTXt" and c[1].startswith(PNG_KEY + b"\x00"))]
    # iTXt: keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
    body = PNG_KEY + b"\x00\x01\x00" + b"\x00" + b"\x00" + zlib.compress(text.encode("utf-8"), 6)
    chunks.insert(len(chunks) - 1, (b"iTXt", body))
    return _png_join(chunks)


def _png_meta_text(data: bytes) -> str | None:
    for ctype, body in _png_chunks(data):
        if ctype == b"iTXt" and body.startswith(PNG_KEY + b"\x00"):
            rest = body[len(PNG_KEY) + 1 :]
            compressed = rest[0] == 1
            rest = rest[2:]
            rest = rest[rest.index(b"\x00") + 1 :]  # language tag
            rest = rest[rest.index(b"\x00") + 1 :]  # translated keyword
            return (zlib.decompress(rest) if compressed else rest).decode("utf-8")
    return None


# -- public API ----------------------------------------------------------------------------------------
def embed_meta(data: bytes, meta: AlignedMeta) -> bytes:
    """Return encoded image bytes (JPEG or PNG) with `meta` embedded (replacing any previous)."""
    text = meta.to_json()
    if data[:2] == b"\xff\xd8":
        return _jpeg_with_meta(data, text)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_with_meta(data, text)
    raise FacecastError("aligned faces must be JPEG or PNG")


def extract_meta_text(data: bytes) -> str | None:
    if data[:2] == b"\xff\xd8":
        return _jpeg_meta_text(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_meta_text(data)
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FacecastError(f"{path}: file not found") from None
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror})") from None


def meta_from_bytes(data: bytes, name: str) -> AlignedMeta:
    try:
        text = extract_meta_text(data)
    except (ValueError, IndexError, zlib.error, UnicodeDecodeError):
        raise FacecastError(f"{name}: corrupt aligned-face metadata; {FIX_HINT}") from None
    if text is None:
        raise FacecastError(f"{name}: not a facecast aligned face (no metadata inside); {FIX_HINT}")
    try:
        data_dict = json.loads(text)
    except json.JSONDecodeError:
        raise FacecastError(f"{name}: corrupt aligned-face metadata; {FIX_HINT}") from None
    return AlignedMeta.from_dict(data_dict, name)


def read_meta(path: str | Path) -> AlignedMeta:
    """Only the metadata (no pixel decode): fast for sorting and listing."""
    path = Path(path)
    return meta_from_bytes(_read_bytes(path), str(path))


def read_aligned(path: str | Path) -> AlignedFace:
    path = Path(path)
    data = _read_bytes(path)
    meta = meta_from_bytes(data, str(path))
    return AlignedFace(decode_image(data, str(path)), meta, path)


def write_aligned(path: str | Path, image: np.ndarray, meta: AlignedMeta, jpeg_quality: int = 95) -> None:
    """Encode by suffix (.jpg/.png), embed metadata, write atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise FacecastError(f"{path}: aligned faces are written as .jpg or .png")
    atomic_write_bytes(path, embed_meta(encode_image(image, suffix, jpeg_quality), meta))


def update_meta(path: str | Path, meta: AlignedMeta) -> None:
    """Replace the metadata of an existing aligned face without re-encoding its pixels."""
    path = Path(path)
    atomic_write_bytes(path, embed_meta(_read_bytes(path), meta))


def list_aligned(folder: str | Path) -> list[Path]:
    """Aligned-face files of a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacecastError(f"{folder}: faceset folder not found; run `facecast extract` first")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and not p.name.startswith("."))
