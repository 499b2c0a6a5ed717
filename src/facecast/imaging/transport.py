"""The distribution transfers of facecast.imaging.color: idt, sot and mix (DeepFaceLab's algorithms).

Each moves pixel colours along random 1-D projections until they are distributed like the reference's;
see facecast.imaging.color for the modes, their facts and why they are fast. Random directions come
from `numpy.random.default_rng(seed)` (or a Generator passed as `seed`) in DeepFaceLab's order.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.stats import special_ortho_group

from facecast.imaging.sampling import MIN_PIXELS, pixels, sample_grid, sample_stride, selection

LCT_EPS = 1e-5  # DeepFaceLab's lct regulariser (lct in color.py; mix's lightness here)


# -- idt ---------------------------------------------------------------------------------------------
def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _lookup(x: np.ndarray, table: np.ndarray, start: np.ndarray, inv_step: np.ndarray) -> np.ndarray:
    """Piecewise-linear maps on uniform grids, one per row of x (np.interp per row, clamped at both
    ends, without its binary search): row j's grid starts at start[j] with step 1/inv_step[j]."""
    c, n = table.shape[0], table.shape[1] - 1
    t = (x - start[:, None]) * inv_step[:, None]
    np.clip(t, 0, n - 1, out=t)
    i = t.astype(np.intp)
    t -= i
    i += (np.arange(c) * (n + 1))[:, None]
    flat = table.reshape(-1)
    lo = flat[i]
    return lo + t * (flat[i + 1] - lo)


def idt(img, ref, img_mask=None, ref_mask=None, n_rot: int = 20, bins: int = 256,
        seed: int | np.random.Generator = 0) -> np.ndarray:
    """Relaxed iterative distribution transfer: rotate, match each axis's histogram, move 1/n_rot of the way.

    Histograms come from a strided sample (img's selected pixels are tracked through the iterations),
    the per-axis maps are applied to every pixel, clamped at both ends. (DeepFaceLab sends values
    below the first bin's upper edge to 0, np.interp's left=0: a quirk of a few dark pixels per axis,
    not kept; the oracle keeps it and the outputs stay > 50 dB apart.)"""
    rng = _rng(seed)
    h, w, c = img.shape
    x = img.reshape(-1, c).astype(np.float32).T.copy()  # c x N, all pixels (moved every iteration)
    grid = sample_grid(img.shape, img_mask)
    stat_idx = slice(None) if grid is None else np.flatnonzero(grid.reshape(-1))
    r = pixels(ref, ref_mask).astype(np.float32).T  # c x M
    relaxation = 1.0 / n_rot
    offsets = (np.arange(c) * bins)[:, None]
    for _ in range(n_rot):
        rot = special_ortho_group.rvs(c, random_state=rng).astype(np.float32)
        xr = rot @ x
        xs = xr[:, stat_idx]
        rr = rot @ r
        lo = np.minimum(xs.min(1), rr.min(1)).astype(np.float64)
        hi = np.maximum(xs.max(1), rr.max(1)).astype(np.float64)
        width = np.maximum(hi - lo, 1e-12)
        scale = (bins / width)[:, None]
        cp = []
        for arr in (xs, rr):  # histograms of the c axes in one bincount (np.histogram's binning)
            idx = np.clip(((arr - lo[:, None]) * scale).astype(np.intp), 0, bins - 1) + offsets
            cum = np.bincount(idx.ravel(), minlength=c * bins).reshape(c, bins).cumsum(1).astype(np.float32)
            cp.append(cum / cum[:, -1:])
        table = np.empty((c, bins + 1), np.float32)  # per axis: the map's values at the upper edges
        for j in range(c):
            upper = lo[j] + width[j] * np.arange(1, bins + 1) / bins
            table[j, :bins] = np.interp(cp[0][j], cp[1][j], upper)
        table[:, bins] = table[:, bins - 1]
        d_r = _lookup(xr, table, (lo + width / bins).astype(np.float32), (bins / width).astype(np.float32))
        d_r -= xr
        x += relaxation * (rot.T @ d_r)
    return np.clip(x.T.reshape(h, w, c), 0.0, 1.0)


# -- sot ---------------------------------------------------------------------------------------------
def _directions(rng: np.random.Generator, count: int, c: int, dtype=np.float32) -> np.ndarray:
    """`count` random unit directions, drawn as DeepFaceLab draws them (one normal c-vector each)."""
    d = np.stack([rng.normal(size=c).astype(dtype) for _ in range(count)])
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _tie_means(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique sorted xs, mean of the matched ys over each run of equal xs).

    Sorting hands tied source values (pixels of one colour) a spread of target values in whatever order
    the sort leaves them: speckle the later smoothing averages away. Giving each tie its mean target
    is that average, without the speckle."""
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    if len(starts) == len(xs):
        return xs, ys
    sums = np.add.reduceat(ys.astype(np.float64), starts)
    counts = np.diff(np.r_[starts, len(xs)])
    return xs[starts], (sums / counts).astype(ys.dtype)


def smoothing_kernel(sigma: float) -> np.ndarray:
    """OpenCV's bilateral spatial weights (d=0): Gaussian `sigma` on a disc of radius round(1.5 sigma)."""
    radius = max(int(round(sigma * 1.5)), 1)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    r2 = (xx**2 + yy**2).astype(np.float64)
    k = np.where(r2 <= radius * radius, np.exp(-r2 / (2 * sigma * sigma)), 0.0)
    return (k / k.sum()).astype(np.float32)


MAP_POINTS = 1024  # a 1-D transport map is resampled on this many points to move every pixel
PHASES = 3  # the edge-preserving smoothing uses every 3rd row and column around each pixel


def _colours(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct colours, index of each pixel's colour): a transport that depends only on colour is
    computed once per colour. Exact for 8-bit values (as in mix); otherwise every pixel is its own."""
    if flat.shape[1] == 3 and np.all(flat == np.round(flat)) and flat.min() >= 0 and flat.max() <= 255:
        q = flat.astype(np.int64)
        keys, first, inverse = np.unique((q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2], return_index=True, return_inverse=True)
        return flat[first].copy(), inverse
    return flat.copy(), np.arange(len(flat))


def _map_rows(values: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Row b of `values` through the monotone map maps[b] (sorted xs -> ys), clamped at the ends; each
    map resampled on a uniform grid so every pixel costs one lookup instead of a binary search."""
    table = np.empty((len(maps), MAP_POINTS + 1), np.float32)
    start = np.empty(len(maps), np.float32)
    inv_step = np.empty(len(maps), np.float32)
    for b, (xs, ys) in enumerate(maps):
        lo, hi = float(xs[0]), float(max(xs[-1], xs[0] + 1e-6))
        table[b, :MAP_POINTS] = np.interp(np.linspace(lo, hi, MAP_POINTS), xs, ys)
        start[b], inv_step[b] = lo, (MAP_POINTS - 1) / (hi - lo)
    table[:, MAP_POINTS] = table[:, MAP_POINTS - 1]
    return _lookup(values, table, start, inv_step)


def _bilateral_phases(shift: np.ndarray, sigma_v: float, sigma_xy: float, s: int) -> np.ndarray:
    """DeepFaceLab's bilateral filter with 1/s^2 of its taps: each pixel is filtered over the pixels of
    its own s x s phase (every s-th row and column through it), so edges stay where they are at full
    resolution while the filter's cost falls s^2-fold."""
    if s == 1:
        return cv2.bilateralFilter(shift, 0, sigma_v, sigma_xy)
    out = np.empty_like(shift)
    for a in range(s):
        for b in range(s):
            out[a::s, b::s] = cv2.bilateralFilter(np.ascontiguousarray(shift[a::s, b::s]), 0, sigma_v, sigma_xy / s)
    return out


def sot(img, ref, img_mask=None, ref_mask=None, steps: int = 10, batch: int = 5, reg_sigma_xy: float = 16.0,
        reg_sigma_v: float = 5.0, seed: int | np.random.Generator = 0, stride: int | None = None) -> np.ndarray:
    """Sliced optimal transport, the shift smoothed over space. Any value range; not clipped.

    Each step projects the pixels on `batch` random directions, moves each pixel (per direction) to the
    reference value of the same rank, and averages the moves. The ranks come from a strided grid of
    pixels. When the smoothing is a plain blur (sigma_v large against the values, as on [0,1] data) the
    shift is computed on that grid only, blurred there and resized up; when it preserves edges (0..255
    data, as in mix) every pixel is moved by the grid's maps and the filter runs at full resolution."""
    rng = _rng(seed)
    img = np.asarray(img, np.float32)
    h, w, c = img.shape
    s = stride or (sample_stride(img.shape) if reg_sigma_xy > 0 else 1)
    edge_aware = reg_sigma_xy > 0 and float(np.abs(img).max()) * c > reg_sigma_v
    src = np.ascontiguousarray(img[::s, ::s])
    gh, gw = src.shape[:2]
    x = src.reshape(-1, c).copy()
    colours, inverse = _colours(img.reshape(-1, c)) if edge_aware else (None, None)
    full = colours.copy() if colours is not None else None
    sel = selection(img_mask, img.shape)
    sel = sel[::s, ::s].reshape(-1) if sel is not None else None
    if sel is not None and sel.sum() < MIN_PIXELS:
        sel = None
    r = pixels(ref, ref_mask).astype(np.float32)
    dirs = _directions(rng, steps * batch, c).reshape(steps, batch, c)
    for d in dirs:
        px = d @ x.T  # batch x n
        pr = np.sort(d @ r.T, axis=1)  # batch x m
        ps = np.sort(px if sel is None else px[:, sel], axis=1)
        if ps.shape[1] != pr.shape[1]:  # unequal sets: the reference value at the same quantile
            q = np.linspace(0, pr.shape[1] - 1, ps.shape[1])
            pr = np.stack([np.interp(q, np.arange(pr.shape[1]), row) for row in pr])
        maps = [_tie_means(ps[b], pr[b]) for b in range(batch)]
        x += ((_map_rows(px, maps) - px).T @ d) / batch
        if full is not None:
            pf = d @ full.T
            full += ((_map_rows(pf, maps) - pf).T @ d) / batch
    if full is not None:  # every colour moved by the grid's maps; the edge-preserving filter on phases
        shift = (full - colours)[inverse].reshape(h, w, c)
        return img + _bilateral_phases(shift, reg_sigma_v, reg_sigma_xy, PHASES)
    shift = (x - src.reshape(-1, c)).reshape(gh, gw, c)
    if reg_sigma_xy > 0:  # the colour term is ~1 here: the filter is its disc of Gaussian weights
        shift = cv2.filter2D(shift, -1, smoothing_kernel(reg_sigma_xy / s), borderType=cv2.BORDER_REFLECT_101)
        if s > 1:
            shift = cv2.resize(shift, (w, h), interpolation=cv2.INTER_LINEAR)
    return img + shift.reshape(h, w, c)


# -- mix ---------------------------------------------------------------------------------------------
def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def mix(img, ref, img_mask=None, ref_mask=None, seed: int | np.random.Generator = 0) -> np.ndarray:
    """DeepFaceLab's mix: lightness by lct on the uint8 L channel; chroma by sot at a fixed L (100 on the
    uint8 scale) on 0..255 values. The sot runs in BGR order, as DeepFaceLab's, so a seed picks the
    same directions."""
    a, b = cv2.cvtColor(_u8(img), cv2.COLOR_RGB2LAB), cv2.cvtColor(_u8(ref), cv2.COLOR_RGB2LAB)
    li = pixels(a[..., :1], img_mask).astype(np.float64) / 255.0
    lr = pixels(b[..., :1], ref_mask).astype(np.float64) / 255.0
    scale = np.sqrt(lr.var() + LCT_EPS) / np.sqrt(li.var() + LCT_EPS)
    light = np.clip((a[..., 0] / 255.0 - li.mean()) * scale + lr.mean(), 0.0, 1.0)
    light = np.clip(light.astype(np.float32) * 255.0, 0, 255).astype(np.uint8)
    a[..., 0] = 100
    b[..., 0] = 100
    sa = cv2.cvtColor(a, cv2.COLOR_LAB2BGR).astype(np.float32)
    sb = cv2.cvtColor(b, cv2.COLOR_LAB2BGR).astype(np.float32)
    out = np.clip(sot(sa, sb, img_mask, ref_mask, seed=seed), 0, 255).astype(np.uint8)
    out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)
    out[..., 0] = light
    return (cv2.cvtColor(out, cv2.COLOR_LAB2RGB) / 255.0).astype(np.float32)
