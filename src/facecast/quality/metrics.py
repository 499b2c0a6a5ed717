"""Objective swap-quality metrics: pure functions on landmarks, descriptors and face crops.

Why these five: a swap is good when it (1) looks like src, (2) keeps dst's head pose and (3)
expression, (4) does not flicker more than dst itself, and (5) is as sharp as dst. Each metric below
is defined so that a known construction has a known answer (identical faces -> identity distance 0, a
copy rotated by r degrees -> roll error r, a scaled/rotated copy -> expression error 0), which is what
the tests check.

Conventions: images RGB uint8, landmarks 68x2 (iBUG scheme) float pixels, masks float [0, 1].
Colour and sharpness measures are meant for *aligned* crops (dst's `image_to_face` matrix applied to
both the dst frame and the merged frame), so head motion does not count as change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facecast.faces.align import transform_points, umeyama
from facecast.imaging.sharpness import laplacian_variance

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
POSE_KEYS = ("yaw", "pitch", "roll")


# -- identity ----------------------------------------------------------------------------------------
@dataclass
class IdentityScore:
    """Per-frame identity distances (dlib descriptor space; < 0.6 = same person by dlib's threshold)."""

    to_src: list[float]  # |d(swap) - centroid(src)|
    to_dst: list[float]  # |d(swap) - d(dst face of the same frame)|
    closer_to_src: list[bool]

    @property
    def retrieval_rate(self) -> float:
        """Fraction of frames whose swap is closer to the src centroid than to its own dst face."""
        return float(np.mean(self.closer_to_src)) if self.closer_to_src else float("nan")


def identity_scores(swap: np.ndarray, src_centroid: np.ndarray, dst: np.ndarray) -> IdentityScore:
    """Identity of each swapped face against src (centroid) and dst (same frame).

    swap, dst: (N, 128) descriptors of the swapped and original dst faces; src_centroid: (128,).
    A perfect swap has to_src small (~ the spread of src's own faces, ~0.3-0.45) and to_dst large
    (>= 0.6); "no swap" has to_dst = 0. The retrieval rate is the fraction with to_src < to_dst.
    """
    swap = np.asarray(swap, np.float64).reshape(-1, 128)
    dst = np.asarray(dst, np.float64).reshape(-1, 128)
    if swap.shape != dst.shape:
        raise ValueError(f"swap and dst descriptors differ in shape: {swap.shape} vs {dst.shape}")
    to_src = np.linalg.norm(swap - np.asarray(src_centroid, np.float64)[None], axis=1)
    to_dst = np.linalg.norm(swap - dst, axis=1)
    return IdentityScore(to_src.tolist(), to_dst.tolist(), (to_src < to_dst).tolist())


# -- pose --------------------------------------------------------------------------------------------
def _angle_diff(a: float, b: float) -> float:
    """Absolute difference of two angles in degrees, wrapped to [0, 180]."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def default_pose_estimator() -> Callable[[np.ndarray], dict[str, float]] | None:
    """The extraction stage's `estimate_pose(landmarks68) -> {yaw, pitch, roll}` in degrees, if installed.

    Imported lazily: quality scoring must still work (without pose) while that module is absent."""
    try:
        from facecast.faces.pose import estimate_pose  # type: ignore[import-not-found]
    except ImportError:
        return None
    return estimate_pose


def pose_error(
    swap_landmarks: np.ndarray,
    dst_landmarks: np.ndarray,
    estimator: Callable[[np.ndarray], dict[str, float]] | None = None,
) -> dict[str, float]:
    """|yaw|, |pitch|, |roll| differences (degrees) between the swapped and the dst face.

    Both poses come from the same landmark-based estimator, so its bias cancels; `total` is the
    Euclidean norm of the three differences. Raises RuntimeError when no estimator is available."""
    est = estimator or default_pose_estimator()
    if est is None:
        raise RuntimeError("no pose estimator: facecast.faces.pose is not installed")
    a, b = est(np.asarray(swap_landmarks, np.float64)), est(np.asarray(dst_landmarks, np.float64))
    out = {k: _angle_diff(float(a[k]), float(b[k])) for k in POSE_KEYS}
    out["total"] = float(np.sqrt(sum(v * v for v in out.values())))
    return out


# -- expression --------------------------------------------------------------------------------------
def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres (means of points 36-41 and 42-47)."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[LEFT_EYE].mean(0) - lm[RIGHT_EYE].mean(0)))


def expression_error(swap_landmarks: np.ndarray, dst_landmarks: np.ndarray) -> float:
    """Landmark shape difference with pose (in-plane) and scale removed, in inter-ocular units.

        A = umeyama(swap -> dst)   (least-squares similarity: rotation, uniform scale, translation)
        error = mean_i || A(swap_i) - dst_i ||  /  IOD(dst)          i over all 68 points

    The similarity fit removes position, in-plane rotation and face size, so a scaled/rotated copy
    scores 0 and what remains is shape: mouth opening, eye closure, brow raise, jaw drop. Two
    caveats, both constant per swap pair so trends still mean something: (1) out-of-plane head turn
    (yaw/pitch) is not removed by a 2-D similarity (it is reported separately as pose error), and
    (2) src and dst faces differ in shape even at the same expression, which gives a floor of a few
    per cent of IOD for a perfect swap. 0.05 is roughly the landmark detector's own noise.
    """
    s = np.asarray(swap_landmarks, np.float64)
    d = np.asarray(dst_landmarks, np.float64)
    if s.shape != (68, 2) or d.shape != (68, 2):
        raise ValueError("expression_error needs two 68x2 landmark sets")
    aligned = transform_points(s, umeyama(s, d))
    iod = inter_ocular(d)
    if iod <= 1e-6:
        raise ValueError("degenerate dst landmarks (eyes coincide)")
    return float(np.linalg.norm(aligned - d, axis=1).mean() / iod)


# -- colour statistics and flicker -------------------------------------------------------------------
def region_stats(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Colour statistics of a face region: [mean L, a, b, std L, a, b] in CIE Lab (L 0-100).

    Lab, because a unit step there is roughly one perceptual step whichever channel moves."""
    lab = cv2.cvtColor(np.asarray(image, np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    w = np.ones(len(lab)) if mask is None else np.asarray(mask, np.float64).reshape(-1)
    if w.sum() < 1:
        return np.full(6, np.nan)
    w = w / w.sum()
    mean = (lab * w[:, None]).sum(0)
    std = np.sqrt(((lab - mean) ** 2 * w[:, None]).sum(0))
    return np.concatenate([mean, std])


def temporal_change(stats: Sequence[np.ndarray]) -> np.ndarray:
    """|stats_t - stats_(t-1)| (Euclidean, Lab units) for t = 1..N-1; empty for fewer than 2 frames."""
    arr = np.asarray(stats, np.float64)
    if len(arr) < 2:
        return np.zeros(0)
    return np.linalg.norm(np.diff(arr, axis=0), axis=1)


def mask_change(masks: Sequence[np.ndarray]) -> np.ndarray:
    """1 - soft IoU of consecutive masks: 0 when the region's edge stays put, 1 when disjoint."""
    out = []
    for a, b in zip(masks[:-1], masks[1:]):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        union = np.maximum(a, b).sum()
        out.append(0.0 if union < 1e-9 else 1.0 - np.minimum(a, b).sum() / union)
    return np.asarray(out)


def flicker_ratio(swap_change: np.ndarray, dst_change: np.ndarray, floor: float) -> float:
    """mean(swap change) / max(mean(dst change), floor).

    1 means the swap changes frame to frame exactly as much as the original footage (lighting,
    motion); 2 means twice as much. `floor` keeps a perfectly still dst from turning a barely
    visible wobble into a huge ratio (0.5 Lab units for colour, 0.01 for masks)."""
    if len(swap_change) == 0:
        return float("nan")
    return float(np.mean(swap_change) / max(float(np.mean(dst_change)) if len(dst_change) else 0.0, floor))


COLOUR_FLOOR = 0.5
MASK_FLOOR = 0.01


# -- sharpness ---------------------------------------------------------------------------------------
def sharpness_ratio(swap: np.ndarray, dst: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sharpness (imaging.sharpness.laplacian_variance) of swap / of dst on the same region, at the crops'
    own size, the mask eroded by 5 px so its edge (a blend seam) does not count as detail: 1 = as sharp
    as dst, < 1 = blurrier."""
    return laplacian_variance(swap, mask, side=None, erode=5) / max(laplacian_variance(dst, mask, side=None, erode=5), 1e-6)


# -- shots -------------------------------------------------------------------------------------------
def split_shots(frame_numbers: Sequence[int], dst_stats: Sequence[np.ndarray], jump: float = 12.0) -> list[int]:
    """Shot id per frame: a new shot starts after a gap in frame numbers (face lost) or when dst's
    colour statistics jump by more than `jump` Lab units (a cut). Flicker is only measured within a shot."""
    shots, shot = [], 0
    for i, n in enumerate(frame_numbers):
        if i > 0:
            gap = n - frame_numbers[i - 1] > 1
            cut = float(np.linalg.norm(np.asarray(dst_stats[i]) - np.asarray(dst_stats[i - 1]))) > jump
            if gap or cut:
                shot += 1
        shots.append(shot)
    return shots
