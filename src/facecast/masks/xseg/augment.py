"""Training-time augmentation for the segmenter: the same geometry for face and mask, colour for the face.

Why each piece: random warp and affine make the model follow the face outline rather than memorise where
the template puts it; flips double the data for free; colour and blur jitter cover other cameras and
lighting; synthetic occluders (`masks/occluders.py`) teach it to cut hands and objects out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facecast.imaging.warp import motion_blur, smooth_warp_maps
from facecast.masks.occluders import OccluderSettings, TexturePool, occlude


@dataclass
class AugmentSettings:
    rotation_deg: float = 12.0
    scale: float = 0.08
    shift: float = 0.05
    warp: float = 0.02  # std of the random-warp grid offsets, as a fraction of the size
    flip: float = 0.5
    colour: float = 0.25
    blur: float = 0.25  # chance of a Gaussian or motion blur
    occluders: OccluderSettings = field(default_factory=OccluderSettings)


def random_geometry(size: int, rng: np.random.Generator, s: AugmentSettings) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2x3 affine plus an optional dense warp map (both applied by `apply_geometry`)."""
    angle = rng.uniform(-s.rotation_deg, s.rotation_deg)
    scale = 1.0 + rng.uniform(-s.scale, s.scale)
    c = size / 2
    mat = cv2.getRotationMatrix2D((c, c), angle, scale)
    mat[:, 2] += rng.uniform(-s.shift, s.shift, 2) * size
    if rng.random() < s.flip:
        mat = np.array([[-1, 0, size - 1], [0, 1, 0]], np.float64) @ np.vstack([mat, [0, 0, 1]])
    warp = np.stack(smooth_warp_maps(size, rng, 4, s.warp * size), -1) if s.warp > 0 else None
    return mat, warp


def apply_geometry(img: np.ndarray, mat: np.ndarray, warp: np.ndarray | None, interp: int) -> np.ndarray:
    size = img.shape[0]
    out = cv2.warpAffine(img, mat, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if warp is not None:
        out = cv2.remap(out, warp[..., 0], warp[..., 1], interp, borderMode=cv2.BORDER_REPLICATE)
    return out


def colour_jitter(img: np.ndarray, rng: np.random.Generator, s: AugmentSettings) -> np.ndarray:
    out = img.astype(np.float32)
    if s.colour > 0:
        gain = 1 + rng.uniform(-s.colour, s.colour) + rng.uniform(-s.colour / 3, s.colour / 3, 3)
        grey = out.mean(2, keepdims=True)
        sat = 1 + rng.uniform(-s.colour, s.colour)
        out = (grey + (out - grey) * sat) * gain + rng.uniform(-20, 20) * s.colour * 4
        mean = out.mean()
        out = (out - mean) * (1 + rng.uniform(-s.colour, s.colour)) + mean
    if rng.random() < s.blur:
        size = img.shape[0]
        if rng.random() < 0.5:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5) * size / 128)
        else:
            k = max(3, int(size / 64 * rng.uniform(1, 3)) | 1)
            out = motion_blur(out, k, rng.uniform(0, 180), cv2.BORDER_REFLECT_101)
    if rng.random() < 0.3:
        out = out + rng.normal(0, rng.uniform(1, 6), out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def augment(image: np.ndarray, target: np.ndarray, rng: np.random.Generator, pool: TexturePool | None,
            s: AugmentSettings, occluders: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, target) -> augmented (image, target, occluder mask). Occluders first (their mask is cut
    out of the target), then geometry on all three, then colour on the image only."""
    occ_mask = np.zeros(target.shape, np.float32)
    if occluders and s.occluders.probability > 0:
        occ = occlude(image, target, rng, pool, s.occluders)
        image, target, occ_mask = occ.image, occ.target, occ.occluder
    mat, warp = random_geometry(image.shape[0], rng, s)
    image = apply_geometry(image, mat, warp, cv2.INTER_LINEAR)
    both = apply_geometry(np.dstack([target, occ_mask]).astype(np.float32), mat, warp, cv2.INTER_LINEAR)
    return colour_jitter(image, rng, s), (both[..., 0] > 0.5).astype(np.float32), (both[..., 1] > 0.5).astype(np.float32)
