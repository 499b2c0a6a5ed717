"""Which pixels a colour statistic is taken from: the ones a mask selects, then a strided sample.

Why sampling: colour statistics (means, covariances, histograms, 1-D transport maps) settle long before
every pixel of a 256 px face has been counted; taking them from every s-th row and column and applying
the result to every pixel is where most of facecast's colour-transfer speed comes from.
"""

from __future__ import annotations

import numpy as np

MIN_PIXELS = 16  # fewer selected pixels than this: the mask is ignored
SAMPLE_PIXELS = 16384  # statistics come from a strided sample of at most ~this many pixels


def sample_stride(shape: tuple[int, ...], limit: int = SAMPLE_PIXELS) -> int:
    """Smallest stride s such that every s-th row and column gives at most ~`limit` pixels."""
    h, w = shape[:2]
    s = 1
    while ((h + s - 1) // s) * ((w + s - 1) // s) > limit:
        s += 1
    return s


def selection(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Boolean mask of selected pixels, or None for "all" (no mask, or too few pixels selected)."""
    if mask is None:
        return None
    sel = np.asarray(mask).reshape(shape[:2]) > 0.5
    n = int(sel.sum())
    return sel if MIN_PIXELS <= n < sel.size else None  # a full mask selects everything


def sample_grid(shape: tuple[int, ...], mask: np.ndarray | None = None, limit: int | None = SAMPLE_PIXELS) -> np.ndarray | None:
    """Boolean (h, w) of the pixels whose statistics count: those the mask selects, then every s-th row
    and column so that at most ~`limit` remain. None means every pixel."""
    sel = selection(mask, shape)
    n = int(sel.sum()) if sel is not None else shape[0] * shape[1]
    if limit is None or n <= limit:
        return sel
    s = int(np.ceil(np.sqrt(n / limit)))
    grid = np.zeros(shape[:2], bool)
    grid[::s, ::s] = True
    if sel is not None:
        grid &= sel
    return grid if grid.sum() >= MIN_PIXELS else sel


def pixels(img: np.ndarray, mask: np.ndarray | None = None, limit: int | None = SAMPLE_PIXELS) -> np.ndarray:
    """N x C pixels of `img` where mask > 0.5 (all if no mask or too few), a strided sample of them."""
    c = img.shape[-1] if img.ndim == 3 else 1
    if selection(mask, img.shape) is None:  # no mask: a strided view, no boolean gather
        s = 1 if limit is None else sample_stride(img.shape, limit)
        return np.ascontiguousarray(img[::s, ::s]).reshape(-1, c)
    grid = sample_grid(img.shape, mask, limit)
    return img.reshape(-1, c)[grid.reshape(-1)]
