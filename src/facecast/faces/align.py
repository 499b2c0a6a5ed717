"""Similarity alignment: Umeyama's least-squares fit and the warps built on it.

Matrices are 2x3 affine (OpenCV convention) mapping frame pixels to aligned-face pixels; the inverse
maps a predicted face back into its frame at merge time.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecast.faces.facetype import INNER, template_landmarks


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking src points onto dst.

    Umeyama 1991, "Least-squares estimation of transformation parameters between two point patterns".
    Returns a 2x3 matrix. Reflections are excluded (a face is never mirrored by alignment)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (sc**2).sum() / n
    scale = (s * d).sum() / var_s if (estimate_scale and var_s > 0) else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def transform_points(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ mat[:, :2].T + mat[:, 2]


def invert(mat: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(mat, dtype=np.float64))


def matrix_scale(mat: np.ndarray) -> float:
    """The uniform scale of a similarity matrix (aligned px per frame px)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(mat)[:, :2]))))


def image_to_face_matrix(landmarks: np.ndarray, face_type: str, size: int) -> np.ndarray:
    """2x3 matrix taking frame pixels to an aligned image of `face_type` and `size`."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return umeyama(lm[INNER], template_landmarks(face_type, size)[INNER])


def warp_to_face(frame: np.ndarray, mat: np.ndarray, size: int, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Cut the aligned face out of a frame; borders replicate so the face edge carries no black."""
    return cv2.warpAffine(frame, mat, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def warp_to_frame(
    face: np.ndarray, mat: np.ndarray, frame_size: tuple[int, int], interpolation: int = cv2.INTER_CUBIC
) -> np.ndarray:
    """Put an aligned-size image back into frame coordinates (frame_size = (width, height))."""
    return cv2.warpAffine(
        face, mat, frame_size, flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def align_face(
    frame: np.ndarray, landmarks: np.ndarray, face_type: str, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (aligned image, 2x3 matrix, landmarks in aligned coordinates)."""
    mat = image_to_face_matrix(landmarks, face_type, size)
    return warp_to_face(frame, mat, size), mat, transform_points(landmarks, mat)
