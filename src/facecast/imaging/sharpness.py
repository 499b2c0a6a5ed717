"""How sharp a face is: the one definition extraction, the faceset tools and scoring share.

Why one place: extraction stores `sharpness` in every aligned file, `faceset sort --by blur` and `dedup`
rank by it, `import-dfl` writes it for imported faces and `score` compares swap and dst with it. Three
copies used to measure three different things (a 4-neighbour Laplacian over the whole crop; a 3x3
aperture Laplacian inside the hull at 256 px; the same at native size inside an eroded mask), so a
stored number and a recomputed one disagreed. Two measures remain because they answer two questions:

- `laplacian_variance`: defocus/resolution blur. Variance of the 3x3-aperture Laplacian of the grey
  image inside a mask; falls monotonically as a face is blurred. Brought to 256 px first so the number
  means the same for every face size (pass side=None to measure at native size, e.g. a ratio of two
  crops of one size).
- `motion_sharpness`: motion blur. Gradient energy along the WEAKEST of four directions: motion smears
  along one direction, so the energy across it stays while the energy along it falls; a plain Laplacian
  mixes both.

`face_sharpness` is the stored per-face number: laplacian_variance inside the landmark hull.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facecast.imaging.hull import hull_mask

SIDE = 256  # measures are taken at this size unless told otherwise
_MIN_PIXELS = 16
_DIRECTIONS = (
    np.array([[-1, 1]], np.float32),
    np.array([[-1], [1]], np.float32),
    np.array([[-1, 0], [0, 1]], np.float32) / math.sqrt(2),
    np.array([[0, -1], [1, 0]], np.float32) / math.sqrt(2),
)


def gray(image: np.ndarray) -> np.ndarray:
    """float32 grey image from RGB or grey input (any dtype; values keep their scale)."""
    image = np.asarray(image)
    if image.ndim == 3:
        if image.dtype != np.uint8:
            image = image.astype(np.float32)
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32)


def _prepare(image: np.ndarray, mask: np.ndarray | None, side: int | None, erode: int) -> tuple[np.ndarray, np.ndarray | None]:
    g = gray(image)
    if side is not None and g.shape[:2] != (side, side):
        interp = cv2.INTER_AREA if g.shape[0] > side else cv2.INTER_LINEAR
        g = cv2.resize(g, (side, side), interpolation=interp)
    if mask is None:
        return g, None
    m = (np.asarray(mask) > 0.5).astype(np.uint8)
    if m.shape != g.shape:
        m = cv2.resize(m, g.shape[::-1], interpolation=cv2.INTER_NEAREST)
    if erode > 0:  # keep the mask's own edge (a blend seam) out of the measure
        m = cv2.erode(m, np.ones((erode, erode), np.uint8))
    m = m.astype(bool)
    return g, (m if m.sum() >= _MIN_PIXELS else None)


def laplacian_variance(image: np.ndarray, mask: np.ndarray | None = None, side: int | None = SIDE, erode: int = 0) -> float:
    """Variance of the 3x3-aperture Laplacian inside `mask` (whole image without one): bigger = sharper."""
    g, m = _prepare(image, mask, side, erode)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    return float((lap[m] if m is not None else lap).astype(np.float64).var())


def motion_sharpness(image: np.ndarray, mask: np.ndarray | None = None, side: int | None = SIDE) -> float:
    """Mean squared gradient along the weakest of four directions inside `mask`: bigger = less motion blur."""
    g, m = _prepare(image, mask, side, 0)
    energies = []
    for k in _DIRECTIONS:
        d = cv2.filter2D(g, cv2.CV_32F, k)
        vals = d[m] if m is not None else d
        energies.append(float(np.mean(vals.astype(np.float64) ** 2)))
    return min(energies)


def face_sharpness(face: np.ndarray, landmarks: np.ndarray) -> float:
    """The sharpness stored with an aligned face: laplacian_variance at 256 px inside its landmark hull
    (so background texture does not count); `landmarks` are in the face image's pixels."""
    h = face.shape[0]
    return laplacian_variance(face, hull_mask(np.asarray(landmarks, np.float64), (face.shape[1], h)))
