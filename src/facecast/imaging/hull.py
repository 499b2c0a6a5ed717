"""Landmark-hull masks: the face region every stage can compute from 68 points alone.

Why a forehead extension: the jaw + brow hull stops at the brows, so a whole-face swap would leave the
forehead of dst; lifting the brow points along the face's vertical axis covers it (the same idea as
DeepFaceLab's eyebrows_expand_mod).
"""

from __future__ import annotations

import cv2
import numpy as np

JAW = slice(0, 17)
BROWS = slice(17, 27)


def hull_points(landmarks: np.ndarray, forehead: float = 0.0) -> np.ndarray:
    """Outline points of the face: jaw, and brows lifted by `forehead` x (brow-to-chin distance)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    brows = lm[BROWS].copy()
    if forehead > 0:
        chin = lm[8]
        brow_mid = brows.mean(0)
        up = brow_mid - chin  # points from chin to brows: "up" in the face's own frame
        brows += up * forehead
    return np.vstack([lm[JAW], brows])


def hull_mask(landmarks: np.ndarray, size: int | tuple[int, int], forehead: float = 0.0) -> np.ndarray:
    """float32 mask in [0,1] of shape (h, w): 1 inside the convex hull of the face outline.

    `size` is an int (square aligned face) or (width, height) for a frame."""
    w, h = (size, size) if isinstance(size, int) else size
    mask = np.zeros((h, w), np.uint8)
    pts = hull_points(landmarks, forehead)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0
