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

Layout: this module holds the Gaussian modes, hist_match and the one dispatch (`color_transfer`,
`MODES`); the distribution transfers (idt, sot, mix) are in imaging.transport, the pixel sampling in
imaging.sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from facecast.imaging.sampling import pixels
from facecast.imaging.transport import LCT_EPS, idt, mix, sot

EPS = 1e-6
MKL_EPS = float(np.finfo(float).eps)  # DeepFaceLab's mkl eigenvalue floor
GAUSSIAN_SAMPLE = 4096  # means and covariances settle sooner: outputs stay > 50 dB from all-pixel ones


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
