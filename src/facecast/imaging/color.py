"""Colour transfer: make one face take the colours of another, the way DeepFaceLab does, only faster.

Used by training (`ct_mode`: src samples pulled toward a random dst face) and by the merger
(`--color-transfer`: the predicted face pulled toward the dst face it replaces), so a mode name means
the same thing in both. Pure functions on float32 RGB images in [0,1]: `img` is recoloured toward
`ref`; optional masks select the pixels whose statistics count (the face, not the background), and the
mapping found from them is applied to every pixel of `img`.

Modes (DeepFaceLab's names and algorithms, from its `core/imagelib/color_transfer.py`; each one here
is checked to stay >= 40 dB PSNR from a literal numpy transcription of it, tests/dfl_color_oracle.py):
- rct: Reinhard et al. 2001: per-channel mean/std in OpenCV's float L*a*b*, clipped to L 0..100,
  a/b -127..127.
- lct: the linear map x -> Cr^1/2 Ci^-1/2 (x - mi) + mr with symmetric square roots (eps 1e-5).
- mkl / mkl-m: Pitie & Kokaram 2007, the Monge-Kantorovich linear map between the two Gaussians.
- idt / idt-m: Pitie et al. 2005 iterative distribution transfer: 20 random rotations, 256-bin
  histograms matched along each rotated axis, and each iteration moving only 1/20 of the way (so the
  result reaches ~0.64 of a full match: DeepFaceLab's relaxation, a softer look than full matching).
- sot / sot-m: sliced optimal transport (10 steps of 5 directions for ct_mode, 30 for the merger's
  sot-m); the total colour shift is then smoothed over space (DeepFaceLab's bilateral filter with
  sigmaSpace 16, sigmaColor 5: on [0,1] data its colour term is ~1, so it is a 49 px disc of Gaussian
  weights), which removes the speckle a per-pixel transport leaves.
- mix-m: lightness by lct on the uint8 L channel, chroma by sot on the image with L set to 100, both
  in DeepFaceLab's uint8 L*a*b* (there the bilateral filter does preserve edges).
- hist_match (the merger's hist-match modes): per-channel quantile matching, the source quantile q
  mapped to the reference quantile q * threshold / 255.

Masks: here a mask SELECTS pixels (> 0.5) for the statistics. DeepFaceLab's merger instead multiplies
both images by the mask, so masked-out pixels take part as black (and its rct zeroes them but still
counts them); with a full mask both are the same, which tests/test_color_dfl.py checks. Selecting
keeps a face's colours independent of how much background its crop happens to hold.

Why it is fast (bench/color.py; DeepFaceLab's idt and sot take ~1 s per 256 px face):
- statistics from a strided sample of at most ~16k pixels, maps applied at full resolution;
- idt: one 3x3 rotation of all pixels per iteration, the histograms of three axes in one bincount;
- sot: all directions of a step projected and sorted at once on the sample grid; the colour shift,
  smoothed anyway, is computed on that grid, filtered there (the same disc, scaled) and resized up.
Random directions are drawn from `numpy.random.default_rng(seed)` in DeepFaceLab's order (idt:
scipy's special_ortho_group; sot: one normal 3-vector per direction), so with the oracle's seed the
two pick the same directions; different seeds differ by DeepFaceLab's own run-to-run spread.

Gaussian methods (rct, lct, mkl) split into `*_stats` + `apply_*` so the merger can average the
statistics over neighbouring frames (temporal stability) before applying them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.stats import special_ortho_group

EPS = 1e-6
LCT_EPS = 1e-5  # DeepFaceLab's lct regulariser on the covariance diagonals
MKL_EPS = float(np.finfo(float).eps)  # DeepFaceLab's mkl eigenvalue floor
_MIN_PIXELS = 16
SAMPLE_PIXELS = 16384  # statistics come from a strided sample of at most ~this many pixels
GAUSSIAN_SAMPLE = 4096  # means and covariances settle sooner: outputs stay > 50 dB from all-pixel ones


# -- pixel selection ---------------------------------------------------------------------------------
def sample_stride(shape: tuple[int, ...], limit: int = SAMPLE_PIXELS) -> int:
    """Smallest stride s such that every s-th row and column gives at most ~`limit` pixels."""
    h, w = shape[:2]
    s = 1
    while ((h + s - 1) // s) * ((w + s - 1) // s) > limit:
        s += 1
    return s


def _selection(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Boolean mask of selected pixels, or None for "all" (no mask, or too few pixels selected)."""
    if mask is None:
        return None
    sel = np.asarray(mask).reshape(shape[:2]) > 0.5
    n = int(sel.sum())
    return sel if _MIN_PIXELS <= n < sel.size else None  # a full mask selects everything


def sample_grid(shape: tuple[int, ...], mask: np.ndarray | None = None, limit: int | None = SAMPLE_PIXELS) -> np.ndarray | None:
    """Boolean (h, w) of the pixels whose statistics count: those the mask selects, then every s-th row
    and column so that at most ~`limit` remain. None means every pixel."""
    sel = _selection(mask, shape)
    n = int(sel.sum()) if sel is not None else shape[0] * shape[1]
    if limit is None or n <= limit:
        return sel
    s = int(np.ceil(np.sqrt(n / limit)))
    grid = np.zeros(shape[:2], bool)
    grid[::s, ::s] = True
    if sel is not None:
        grid &= sel
    return grid if grid.sum() >= _MIN_PIXELS else sel


def pixels(img: np.ndarray, mask: np.ndarray | None = None, limit: int | None = SAMPLE_PIXELS) -> np.ndarray:
    """N x C pixels of `img` where mask > 0.5 (all if no mask or too few), a strided sample of them."""
    c = img.shape[-1] if img.ndim == 3 else 1
    if _selection(mask, img.shape) is None:  # no mask: a strided view, no boolean gather
        s = 1 if limit is None else sample_stride(img.shape, limit)
        return np.ascontiguousarray(img[::s, ::s]).reshape(-1, c)
    grid = sample_grid(img.shape, mask, limit)
    return img.reshape(-1, c)[grid.reshape(-1)]


def to_lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2LAB)


def from_lab(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


# -- Gaussian statistics ------------------------------------------------------------------------------
@dataclass
class ColorStats:
    """Mean and covariance (population) of the image and of the reference, in the method's space."""

    mean_img: np.ndarray
    cov_img: np.ndarray
    mean_ref: np.ndarray
    cov_ref: np.ndarray

    @staticmethod
    def average(stats: list["ColorStats"], weights: list[float] | None = None) -> "ColorStats":
        """Weighted mean of statistics (temporal smoothing over a window of frames)."""
        w = np.ones(len(stats)) if weights is None else np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        return ColorStats(
            *(sum(wi * getattr(s, name) for wi, s in zip(w, stats)) for name in ("mean_img", "cov_img", "mean_ref", "cov_ref"))
        )


def _moments(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population covariance (float64) of N x C pixels, by OpenCV in one pass."""
    px = np.ascontiguousarray(px, np.float32)
    if len(px) < 2:
        return px.mean(0).astype(np.float64), np.zeros((px.shape[1], px.shape[1]))
    cov, mean = cv2.calcCovarMatrix(px, None, cv2.COVAR_NORMAL | cv2.COVAR_ROWS | cv2.COVAR_SCALE)
    return mean.reshape(-1).astype(np.float64), cov.astype(np.float64)


def gaussian_stats(img, ref, img_mask=None, ref_mask=None, lab: bool = False) -> ColorStats:
    """Moments of the selected pixels; with `lab`, of their L*a*b* values (only the sample is converted)."""
    pi, pr = pixels(img, img_mask, GAUSSIAN_SAMPLE), pixels(ref, ref_mask, GAUSSIAN_SAMPLE)
    if lab:
        pi, pr = to_lab(pi[None]).reshape(-1, 3), to_lab(pr[None]).reshape(-1, 3)
    return ColorStats(*_moments(pi), *_moments(pr))


def _sqrtm(c: np.ndarray, inverse: bool = False, floor: float = 0.0) -> np.ndarray:
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    vals = np.maximum(vals, floor)
    return (vecs * (vals ** (-0.5 if inverse else 0.5))) @ vecs.T


def _apply_linear(img: np.ndarray, a: np.ndarray, mean_img: np.ndarray, mean_ref: np.ndarray) -> np.ndarray:
    """x -> A (x - mean_img) + mean_ref on every pixel (one cv2.transform: a 3x4 matrix per pixel)."""
    m = np.hstack([a, (mean_ref - a @ mean_img)[:, None]]).astype(np.float32)
    return cv2.transform(np.ascontiguousarray(img, dtype=np.float32), m)


_LAB_LO = (0.0, -127.0, -127.0, 0.0)  # OpenCV's float L*a*b* ranges (as cv2 scalars)
_LAB_HI = (100.0, 127.0, 127.0, 0.0)


def rct_stats(img, ref, img_mask=None, ref_mask=None) -> ColorStats:
    """L*a*b* mean and per-channel variance (a diagonal covariance: rct uses nothing else)."""
    out = []
    for im, m in ((img, img_mask), (ref, ref_mask)):
        lab = to_lab(pixels(np.asarray(im, np.float32), m, GAUSSIAN_SAMPLE)[None])
        mean, sd = cv2.meanStdDev(lab)
        out += [mean.reshape(-1), np.diag(sd.reshape(-1) ** 2)]
    return ColorStats(*out)


def apply_rct(img: np.ndarray, stats: ColorStats) -> np.ndarray:
    """Per-channel mean/std in L*a*b* (only the covariance diagonals are used), Lab ranges clipped."""
    sd_i = np.sqrt(np.maximum(np.diag(stats.cov_img), EPS))
    sd_r = np.sqrt(np.maximum(np.diag(stats.cov_ref), EPS))
    lab = _apply_linear(to_lab(img), np.diag(sd_r / sd_i), stats.mean_img, stats.mean_ref)
    lab = cv2.min(cv2.max(lab, _LAB_LO), _LAB_HI)
    return from_lab(lab)


def rct(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    return apply_rct(img, rct_stats(img, ref, img_mask, ref_mask))


def apply_lct(img: np.ndarray, stats: ColorStats) -> np.ndarray:
    """x -> Cr^1/2 Ci^-1/2 (x - mi) + mr: matches mean and covariance of RGB."""
    eye = np.eye(len(stats.mean_img)) * LCT_EPS
    a = _sqrtm(stats.cov_ref + eye) @ np.linalg.inv(_sqrtm(stats.cov_img + eye))
    return np.clip(_apply_linear(img, a, stats.mean_img, stats.mean_ref), 0.0, 1.0)


def lct(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    return apply_lct(img, gaussian_stats(img, ref, img_mask, ref_mask))


def apply_mkl(img: np.ndarray, stats: ColorStats) -> np.ndarray:
    """Monge-Kantorovich: T = Ci^-1/2 (Ci^1/2 Cr Ci^1/2)^1/2 Ci^-1/2, the least-displacement map."""
    ci_h = _sqrtm(stats.cov_img, floor=MKL_EPS)
    ci_ih = _sqrtm(stats.cov_img, inverse=True, floor=MKL_EPS)
    a = ci_ih @ _sqrtm(ci_h @ stats.cov_ref @ ci_h, floor=MKL_EPS) @ ci_ih
    return np.clip(_apply_linear(img, a, stats.mean_img, stats.mean_ref), 0.0, 1.0)


def mkl(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    return apply_mkl(img, gaussian_stats(img, ref, img_mask, ref_mask))


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
    sel = _selection(img_mask, img.shape)
    sel = sel[::s, ::s].reshape(-1) if sel is not None else None
    if sel is not None and sel.sum() < _MIN_PIXELS:
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


# -- histogram matching ------------------------------------------------------------------------------
HIST_LEVELS = 1024  # value resolution of hist_match (DeepFaceLab uses every unique value)


def _levels(img: np.ndarray) -> np.ndarray:
    """[0,1] values as integer levels 0..HIST_LEVELS-1, channel c offset by c*HIST_LEVELS (so all the
    channels' histograms come from one bincount and their maps from one lookup)."""
    q = np.clip(img * np.float32(HIST_LEVELS - 1) + np.float32(0.5), 0, HIST_LEVELS - 1).astype(np.int32)
    q += (np.arange(img.shape[-1], dtype=np.int32) * HIST_LEVELS)
    return q


def hist_match(img, ref, img_mask=None, ref_mask=None, threshold: int = 255) -> np.ndarray:
    """Per-channel histogram matching; img's cumulative fraction q maps to ref's quantile q*threshold/255.

    A threshold below 255 keeps the brightest tail of ref (speculars, hair, background) out of reach,
    as DeepFaceLab's hist_match_threshold does. Statistics from the strided sample, values binned at 1/1024."""
    n, c = HIST_LEVELS, img.shape[-1]
    values = np.arange(n, dtype=np.float64) / (n - 1)
    qi = _levels(np.asarray(img, np.float32))
    s_cnt = np.bincount(pixels(qi, img_mask).ravel(), minlength=c * n).reshape(c, n)
    t_cnt = np.bincount(_levels(pixels(np.asarray(ref, np.float32), ref_mask)).ravel(), minlength=c * n).reshape(c, n)
    lut = np.empty((c, n), np.float32)
    for ch in range(c):
        s_cum = s_cnt[ch].cumsum().astype(np.float64)
        present = t_cnt[ch] > 0
        t_cum = t_cnt[ch].cumsum()[present].astype(np.float64)
        lut[ch] = np.interp(threshold * s_cum / s_cum[-1], 255.0 * t_cum / t_cum[-1], values[present])
    return lut.reshape(-1)[qi]


# -- dispatch ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transfer:
    """One named mode: the function, whether it uses masks, and (Gaussian modes) stats + apply."""

    run: Callable[..., np.ndarray]
    masked: bool
    stats: Callable[..., ColorStats] | None = None
    apply: Callable[[np.ndarray, ColorStats], np.ndarray] | None = None


def _clipped(fn: Callable[..., np.ndarray], **kw) -> Callable[..., np.ndarray]:
    def run(img, ref, img_mask=None, ref_mask=None, seed=0):
        return np.clip(fn(img, ref, img_mask, ref_mask, seed=seed, **kw), 0.0, 1.0).astype(np.float32)

    return run


def _gaussian(stats, apply) -> Callable[..., np.ndarray]:
    def run(img, ref, img_mask=None, ref_mask=None, seed=0):
        return apply(img, stats(img, ref, img_mask, ref_mask))

    return run


TRANSFERS: dict[str, Transfer] = {
    "rct": Transfer(_gaussian(rct_stats, apply_rct), True, rct_stats, apply_rct),
    "lct": Transfer(_gaussian(gaussian_stats, apply_lct), False, gaussian_stats, apply_lct),
    "mkl": Transfer(_gaussian(gaussian_stats, apply_mkl), False, gaussian_stats, apply_mkl),
    "mkl-m": Transfer(_gaussian(gaussian_stats, apply_mkl), True, gaussian_stats, apply_mkl),
    "idt": Transfer(_clipped(idt), False),
    "idt-m": Transfer(_clipped(idt), True),
    "sot": Transfer(_clipped(sot), False),
    "sot-m": Transfer(_clipped(sot, batch=30), True),
    "mix-m": Transfer(_clipped(mix), True),
}
MODES = ("none", *TRANSFERS)
MASKED = {name: t.masked for name, t in TRANSFERS.items()}


def transfer_stats(name: str, img, ref, img_mask=None, ref_mask=None) -> ColorStats | None:
    """Statistics for Gaussian modes (None for the others: they are not smoothed over time)."""
    t = TRANSFERS.get(name)
    if t is None or t.stats is None:
        return None
    return t.stats(img, ref, img_mask if t.masked else None, ref_mask if t.masked else None)


def color_transfer(name: str, img: np.ndarray, ref: np.ndarray, img_mask=None, ref_mask=None,
                   stats: ColorStats | None = None, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Apply mode `name` ("none" returns img itself); `stats` (e.g. time-averaged) replaces per-frame ones.

    Unmasked modes ignore the masks, so a caller may always pass them."""
    if name == "none":
        return img
    t = TRANSFERS.get(name)
    if t is None:
        raise ValueError(f"unknown colour transfer {name!r}; choose one of {', '.join(MODES)}")
    img = np.asarray(img, np.float32)
    ref = np.asarray(ref, np.float32)
    if stats is not None and t.apply is not None:
        return t.apply(img, stats)
    im, rm = (img_mask, ref_mask) if t.masked else (None, None)
    return t.run(img, ref, im, rm, seed=seed)
