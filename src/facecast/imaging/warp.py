"""Warps and blur kernels more than one stage uses: pure numpy/OpenCV.

- `smooth_warp_maps`: the random elastic warp of training augmentation (SAEHD samples and XSeg samples
  both bend faces this way): a coarse grid of random offsets, zero on the border so nothing from
  outside the picture is pulled in, upsampled bicubically into per-pixel cv2.remap maps.
- `motion_kernel` / `motion_blur`: DeepFaceLab's LinearMotionBlur: a line of `length` px through the
  kernel's centre, rotated to `angle_deg` (0 = +x, counter-clockwise on screen), normalised. The merger
  blurs a face along its landmark motion with it; XSeg augmentation blurs training faces with it.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_warp_maps(size: int, rng: np.random.Generator, cells: int, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) for cv2.remap: identity plus smooth random offsets of about `sigma_px` pixels,
    drawn on a (cells+1) x (cells+1) grid (offsets as rng.normal(0, sigma_px, (2, cells+1, cells+1)))."""
    grid = rng.normal(0, sigma_px, size=(2, cells + 1, cells + 1)).astype(np.float32)
    grid[:, [0, -1], :] = 0
    grid[:, :, [0, -1]] = 0
    dx = cv2.resize(grid[0], (size, size), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(grid[1], (size, size), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    return xs + dx, ys + dy


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of `length` px along `angle_deg` (DeepFaceLab's LinearMotionBlur)."""
    length = max(1, int(length))
    k = np.zeros((length, length), np.float32)
    k[(length - 1) // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(angle_deg), 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return k / max(float(k.sum()), 1e-6)


def motion_blur(img: np.ndarray, length: int, angle_deg: float, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """`img` smeared along `angle_deg` over `length` px (unchanged for length < 2)."""
    if length < 2:
        return img
    return cv2.filter2D(img, -1, motion_kernel(length, angle_deg), borderType=border)
