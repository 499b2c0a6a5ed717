"""A fast PNG writer for merged frames: the 'Up' filter for every row and zlib's RLE strategy.

Why: writing merged frames is the merge's biggest single cost. Measured on a rendered 720p frame on
this machine: OpenCV's PNG encoder takes ~120-200 ms (libpng tries every filter per row), ~70 ms even
uncompressed; this writer takes ~50 ms for a file of the same size (1.7 MB), a lossless PNG any reader
decodes. Only 8-bit RGB and grey images (what merge writes per frame); everything else goes through
facecast.media.images.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(img: np.ndarray, level: int = 1) -> bytes:
    """Encode an HxWx3 RGB or HxW grey uint8 image as PNG (lossless)."""
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"encode_png takes uint8 grey or RGB images, not {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    channels = 1 if img.ndim == 2 else 3
    rows = np.ascontiguousarray(img).reshape(h, w * channels)
    body = np.empty((h, w * channels + 1), np.uint8)
    body[:, 0] = 2  # filter type Up: each byte minus the byte above (mod 256)
    body[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=body[1:, 1:])
    comp = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = comp.compress(body.data) + comp.flush()
    colour_type = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return _SIG + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
