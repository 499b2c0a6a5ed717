"""The imaging floor's hull, sharpness and warps: pure functions with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecast.faces.align import align_face
from facecast.imaging.hull import hull_mask, hull_points
from facecast.imaging.sharpness import face_sharpness, laplacian_variance, motion_sharpness
from facecast.imaging.warp import motion_blur, motion_kernel, smooth_warp_maps


@pytest.fixture(scope="module")
def face():
    from facecast.media.synth import sample_photo

    img, lm = sample_photo("breakingbad")
    aligned, _, lm_al = align_face(img, lm, "whole_face", 256)
    return aligned, lm_al


def test_hull_covers_the_landmark_outline(face):
    _, lm = face
    m = hull_mask(lm, 256)
    assert m.shape == (256, 256) and m.dtype == np.float32 and 0.0 <= m.min() and m.max() == 1.0
    inner = np.round(lm[30]).astype(int)  # the nose tip is inside the face
    assert m[inner[1], inner[0]] == 1.0 and m[0, 0] == 0.0
    taller = hull_mask(lm, 256, forehead=0.3)
    assert taller.sum() > 1.1 * m.sum() and (taller * m).sum() > 0.97 * m.sum()  # the forehead adds
    assert hull_points(lm).shape == (27, 2)


def test_laplacian_variance_falls_with_blur_and_ignores_size(face):
    img, lm = face
    mask = hull_mask(lm, 256)
    sharp = laplacian_variance(img, mask)
    values = [laplacian_variance(cv2.GaussianBlur(img, (0, 0), s), mask) for s in (0.8, 1.5, 3.0)]
    assert sharp > values[0] > values[1] > values[2]
    big = cv2.resize(img, (512, 512), interpolation=cv2.INTER_CUBIC)
    assert laplacian_variance(big, cv2.resize(mask, (512, 512))) == pytest.approx(sharp, rel=0.35)
    assert face_sharpness(img, lm) == pytest.approx(sharp)


def test_motion_sharpness_sees_directional_blur_the_laplacian_mixes(face):
    img, lm = face
    mask = hull_mask(lm, 256)
    streak = motion_blur(img.astype(np.float32), 9, 0.0)
    box = cv2.blur(img.astype(np.float32), (3, 3))
    # a horizontal smear kills the weakest direction's energy more than an isotropic blur does
    ratio_motion = motion_sharpness(streak, mask) / motion_sharpness(img, mask)
    ratio_box = motion_sharpness(box, mask) / motion_sharpness(img, mask)
    assert ratio_motion < ratio_box


def test_motion_kernel_is_a_normalised_line():
    k = motion_kernel(9, 0.0)
    assert k.shape == (9, 9) and k.sum() == pytest.approx(1.0)
    assert np.count_nonzero(k[4]) == 9 and np.count_nonzero(k) == 9  # horizontal: the middle row only
    kv = motion_kernel(9, 90.0)
    assert np.allclose(kv, k.T, atol=1e-6)  # a quarter turn is the vertical line
    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    assert motion_blur(img, 1, 30.0) is img


def test_smooth_warp_is_identity_on_the_border_and_smooth_inside():
    rng = np.random.default_rng(3)
    mx, my = smooth_warp_maps(64, rng, 4, 3.0)
    xs, ys = np.meshgrid(np.arange(64, dtype=np.float32), np.arange(64, dtype=np.float32))
    dx, dy = mx - xs, my - ys
    # the grid's border offsets are zero: the picture's edge barely moves, its inside does
    assert np.abs(dx).max() > 2.0 and np.abs(dx[0]).max() < 0.2 * np.abs(dx).max() and np.abs(dy[:, 0]).max() < 0.2 * np.abs(dy).max()
    assert np.abs(np.diff(dx, axis=1)).max() < 1.0  # no tearing
    again = smooth_warp_maps(64, np.random.default_rng(3), 4, 3.0)
    assert np.array_equal(again[0], mx)
