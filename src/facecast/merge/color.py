"""Colour transfer: make the predicted face take the colours of the dst face it replaces.

Pure numpy/OpenCV functions on float32 RGB images in [0,1]. Every function takes `img` (to recolour:
the predicted face) and `ref` (whose colours we want: the dst face), plus optional masks selecting the
pixels whose statistics count (the face, not the background the model also predicts). The mapping is
built from masked pixels and applied to every pixel of `img`.

Methods (DeepFaceLab's names; each written here from the papers):
- rct: Reinhard et al. 2001, mean/std per channel in L*a*b*.
- lct: linear transfer matching the full RGB mean and covariance (symmetric square-root mapping).
- mkl: Pitie & Kokaram 2007, the Monge-Kantorovich linear map (the optimal-transport map between two
  Gaussians), unmasked; mkl-m masked.
- idt: Pitie et al. 2005, iterative distribution transfer: 1-D quantile matching along random rotations.
- sot: sliced optimal transport (Rabin et al. 2011): moves pixels along random directions by the 1-D
  transport displacement, averaged over directions per step.
- mix: lightness by mean/std, chroma by sliced OT at fixed lightness (DeepFaceLab's mix-m idea).
- hist_match: per-channel histogram matching with DeepFaceLab's threshold (caps the target quantile).

Gaussian-statistics methods (rct, lct, mkl) split into `*_stats` + `apply_*` so the merger can average
statistics over neighbouring frames (temporal stability) before applying them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

EPS = 1e-6
_MIN_PIXELS = 16


def _pixels(img: np.ndarray, mask: np.ndarray | None, limit: int | None = None, seed: int = 0) -> np.ndarray:
    """Nx3 float64 pixels of `img` where mask > 0.5 (all pixels if no mask or too few selected)."""
    flat = img.reshape(-1, img.shape[-1])
    if mask is not None:
        sel = mask.reshape(-1) > 0.5
        if sel.sum() >= _MIN_PIXELS:
            flat = flat[sel]
    if limit is not None and len(flat) > limit:
        idx = np.random.default_rng(seed).choice(len(flat), limit, replace=False)
        flat = flat[idx]
    return flat.astype(np.float64)


def to_lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2LAB)


def from_lab(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)


# -- Gaussian statistics ------------------------------------------------------------------------------
@dataclass
class ColorStats:
    """Mean and covariance of the image and of the reference (in the method's colour space)."""

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
    mean = px.mean(0)
    cov = np.cov(px, rowvar=False) if len(px) > 1 else np.zeros((px.shape[1], px.shape[1]))
    return mean, np.atleast_2d(cov)


def gaussian_stats(
    img: np.ndarray, ref: np.ndarray, img_mask: np.ndarray | None = None, ref_mask: np.ndarray | None = None, lab: bool = False
) -> ColorStats:
    a, b = (to_lab(img), to_lab(ref)) if lab else (img, ref)
    mi, ci = _moments(_pixels(a, img_mask))
    mr, cr = _moments(_pixels(b, ref_mask))
    return ColorStats(mi, ci, mr, cr)


def _sqrtm(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    vals = np.maximum(vals, EPS)
    return (vecs * (vals ** (-0.5 if inverse else 0.5))) @ vecs.T


def _apply_linear(img: np.ndarray, a: np.ndarray, mean_img: np.ndarray, mean_ref: np.ndarray) -> np.ndarray:
    flat = img.reshape(-1, img.shape[-1]).astype(np.float32)
    out = (flat - mean_img.astype(np.float32)) @ a.T.astype(np.float32) + mean_ref.astype(np.float32)
    return out.reshape(img.shape)


def rct_stats(img, ref, img_mask=None, ref_mask=None) -> ColorStats:
    return gaussian_stats(img, ref, img_mask, ref_mask, lab=True)


def apply_rct(img: np.ndarray, stats: ColorStats) -> np.ndarray:
    """Per-channel mean/std in L*a*b* (only the covariance diagonals are used)."""
    sd_i = np.sqrt(np.maximum(np.diag(stats.cov_img), EPS))
    sd_r = np.sqrt(np.maximum(np.diag(stats.cov_ref), EPS))
    return from_lab(_apply_linear(to_lab(img), np.diag(sd_r / sd_i), stats.mean_img, stats.mean_ref))


def rct(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    return apply_rct(img, rct_stats(img, ref, img_mask, ref_mask))


def apply_lct(img: np.ndarray, stats: ColorStats) -> np.ndarray:
    """x -> Cr^1/2 Ci^-1/2 (x - mi) + mr: matches mean and covariance of RGB."""
    a = _sqrtm(stats.cov_ref) @ _sqrtm(stats.cov_img, inverse=True)
    return np.clip(_apply_linear(img, a, stats.mean_img, stats.mean_ref), 0.0, 1.0)


def lct(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    return apply_lct(img, gaussian_stats(img, ref, img_mask, ref_mask))


def apply_mkl(img: np.ndarray, stats: ColorStats) -> np.ndarray:
    """Monge-Kantorovich: T = Ci^-1/2 (Ci^1/2 Cr Ci^1/2)^1/2 Ci^-1/2, the least-displacement map."""
    ci_h = _sqrtm(stats.cov_img)
    ci_ih = _sqrtm(stats.cov_img, inverse=True)
    a = ci_ih @ _sqrtm(ci_h @ stats.cov_ref @ ci_h) @ ci_ih
    return np.clip(_apply_linear(img, a, stats.mean_img, stats.mean_ref), 0.0, 1.0)


def mkl(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    return apply_mkl(img, gaussian_stats(img, ref, img_mask, ref_mask))


# -- distribution transfers --------------------------------------------------------------------------
def _quantile_map(src: np.ndarray, ref: np.ndarray, values: np.ndarray, n_q: int = 256) -> np.ndarray:
    """Map `values` (distributed like src) onto ref's distribution via matched quantiles."""
    q = np.linspace(0, 100, n_q)
    return np.interp(values, np.percentile(src, q), np.percentile(ref, q))


def _random_rotation(rng: np.random.Generator, dim: int = 3) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def idt(img, ref, img_mask=None, ref_mask=None, n_rot: int = 20, seed: int = 0, limit: int = 20000) -> np.ndarray:
    """Iterative distribution transfer: rotate, match every 1-D marginal, rotate back; repeat."""
    rng = np.random.default_rng(seed)
    sel = None
    if img_mask is not None and (img_mask.reshape(-1) > 0.5).sum() >= _MIN_PIXELS:
        sel = img_mask.reshape(-1) > 0.5
    x = img.reshape(-1, 3).astype(np.float64)
    r = _pixels(ref, ref_mask, limit, seed + 1)
    for _ in range(n_rot):
        rot = _random_rotation(rng)
        xs = x @ rot.T
        rs = r @ rot.T
        basis = xs[sel] if sel is not None else xs
        if len(basis) > limit:
            basis = basis[rng.choice(len(basis), limit, replace=False)]
        for k in range(3):
            xs[:, k] = _quantile_map(basis[:, k], rs[:, k], xs[:, k])
        x = xs @ rot
    return np.clip(x.reshape(img.shape), 0.0, 1.0).astype(np.float32)


def sot(img, ref, img_mask=None, ref_mask=None, steps: int = 10, batch: int = 5, seed: int = 0, limit: int = 20000) -> np.ndarray:
    """Sliced optimal transport: each step moves pixels by the mean 1-D displacement over `batch` directions."""
    rng = np.random.default_rng(seed)
    ch = img.shape[-1]
    sel = None
    if img_mask is not None and (img_mask.reshape(-1) > 0.5).sum() >= _MIN_PIXELS:
        sel = img_mask.reshape(-1) > 0.5
    x = img.reshape(-1, ch).astype(np.float64)
    r = _pixels(ref, ref_mask, limit, seed + 1)
    for _ in range(steps):
        move = np.zeros_like(x)
        for _ in range(batch):
            d = rng.normal(size=ch)
            d /= np.linalg.norm(d) + EPS
            px, pr = x @ d, r @ d
            basis = px[sel] if sel is not None else px
            move += np.outer(_quantile_map(basis, pr, px) - px, d)
        x += move / batch
    return x.reshape(img.shape).astype(np.float32)


def mix(img, ref, img_mask=None, ref_mask=None) -> np.ndarray:
    """Lightness matched by mean/std, chroma (a*, b*) by sliced OT; keeps skin tone stable."""
    a, b = to_lab(img), to_lab(ref)
    li, lr = _pixels(a[..., :1], img_mask), _pixels(b[..., :1], ref_mask)
    scale = (lr.std() + EPS) / (li.std() + EPS)
    light = (a[..., 0] - li.mean()) * scale + lr.mean()
    chroma = sot(a[..., 1:], b[..., 1:], img_mask, ref_mask)
    out = np.dstack([np.clip(light, 0, 100), chroma])
    return from_lab(out)


def hist_match(img, ref, img_mask=None, ref_mask=None, threshold: int = 255) -> np.ndarray:
    """Per-channel histogram matching; img quantile q maps to ref quantile q*threshold/255.

    A threshold below 255 keeps the brightest tail of ref (speculars, hair, background) out of reach,
    as DeepFaceLab's hist_match_threshold does."""
    out = np.empty_like(img, dtype=np.float32)
    qs = np.linspace(0, 100, 257)
    for c in range(img.shape[-1]):
        src = _pixels(img[..., c : c + 1], img_mask)[:, 0]
        dst = _pixels(ref[..., c : c + 1], ref_mask)[:, 0]
        src_q = np.percentile(src, qs)
        dst_q = np.percentile(dst, qs * threshold / 255.0)
        # np.interp needs increasing xp: drop repeated quantiles of flat regions
        src_q, keep = np.unique(src_q, return_index=True)
        out[..., c] = np.interp(img[..., c], src_q, dst_q[keep])
    return np.clip(out, 0.0, 1.0)


# -- dispatch ------------------------------------------------------------------------------------------
GAUSSIAN = {"rct": (rct_stats, apply_rct, True), "lct": (gaussian_stats, apply_lct, False),
            "mkl": (gaussian_stats, apply_mkl, False), "mkl-m": (gaussian_stats, apply_mkl, True)}
MASKED = {"rct": True, "lct": False, "mkl": False, "mkl-m": True, "idt": False, "idt-m": True, "sot-m": True, "mix-m": True}


def transfer_stats(name: str, img, ref, img_mask, ref_mask) -> ColorStats | None:
    """Statistics for Gaussian methods (None for the others: they are not smoothed over time)."""
    if name not in GAUSSIAN:
        return None
    fn, _, masked = GAUSSIAN[name]
    return fn(img, ref, img_mask if masked else None, ref_mask if masked else None)


def color_transfer(
    name: str, img: np.ndarray, ref: np.ndarray, img_mask=None, ref_mask=None, stats: ColorStats | None = None
) -> np.ndarray:
    """Apply the named method (settings.COLOR_TRANSFERS); `stats` (e.g. time-averaged) replaces per-frame ones."""
    if name == "none":
        return img
    if name in GAUSSIAN:
        _, apply, _ = GAUSSIAN[name]
        return apply(img, stats if stats is not None else transfer_stats(name, img, ref, img_mask, ref_mask))
    im, rm = (img_mask, ref_mask) if MASKED[name] else (None, None)
    if name.startswith("idt"):
        return idt(img, ref, im, rm)
    if name == "sot-m":
        return np.clip(sot(img, ref, im, rm), 0.0, 1.0)
    if name == "mix-m":
        return mix(img, ref, im, rm)
    raise ValueError(f"unknown colour transfer {name!r}")
