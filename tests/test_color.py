"""Colour transfer (facecast.imaging.color) on real photos: each mode moves the image's colour statistics
toward the reference; masks select the pixels that count; one set of names for training and merging."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.faces.align import align_face
from facecast.imaging import color
from facecast.merge.settings import COLOR_TRANSFERS
from facecast.train.options import CT_MODES

SIZE = 64


@pytest.fixture(scope="module")
def faces(astronaut):
    """A real colour face (breakingbad's annotated one) recoloured toward another (the astronaut's)."""
    import cv2

    from facecast.imaging.hull import hull_mask
    from facecast.media.synth import sample_photo

    b_img, b_lm = sample_photo("breakingbad")
    img, _, b_al = align_face(b_img, b_lm, "full", SIZE)
    ref = cv2.resize(astronaut[70:200, 170:280], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    ref_mask = np.zeros((SIZE, SIZE), np.float32)
    cv2.ellipse(ref_mask, (SIZE // 2, SIZE // 2), (SIZE // 3, SIZE * 2 // 5), 0, 0, 360, 1.0, -1)
    return img.astype(np.float32) / 255.0, ref.astype(np.float32) / 255.0, hull_mask(b_al, SIZE), ref_mask


def _lab_gap(a, b, ma=None, mb=None):
    """Distance of mean and std per L*a*b* channel between two images (masked pixels)."""
    la, lb = color.to_lab(a), color.to_lab(b)
    pa = la.reshape(-1, 3) if ma is None else la.reshape(-1, 3)[ma.reshape(-1) > 0.5]
    pb = lb.reshape(-1, 3) if mb is None else lb.reshape(-1, 3)[mb.reshape(-1) > 0.5]
    return float(np.abs(pa.mean(0) - pb.mean(0)).sum() + np.abs(pa.std(0) - pb.std(0)).sum())


@pytest.mark.parametrize("name", [c for c in color.MODES if c != "none"])
def test_transfer_moves_statistics_toward_reference(faces, name):
    img, ref, mi, mr = faces
    out = color.color_transfer(name, img, ref, mi, mr)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    # masked methods are judged on the face pixels, unmasked ones on the whole image they matched
    ma, mb = (mi, mr) if color.MASKED[name] else (None, None)
    before = _lab_gap(img, ref, ma, mb)
    after = _lab_gap(out, ref, ma, mb)
    assert after < 0.6 * before, (name, before, after)


def test_none_is_identity(faces):
    img, ref, mi, mr = faces
    assert color.color_transfer("none", img, ref, mi, mr) is img


def test_rct_matches_masked_lab_moments_closely(faces):
    img, ref, mi, mr = faces
    out = color.rct(img, ref, mi, mr)
    lo, lr = color.to_lab(out).reshape(-1, 3)[mi.reshape(-1) > 0.5], color.to_lab(ref).reshape(-1, 3)[mr.reshape(-1) > 0.5]
    assert np.allclose(lo.mean(0), lr.mean(0), atol=3.0)  # L in 0..100, a/b in -127..127; clipping costs a little
    assert np.allclose(lo.std(0), lr.std(0), atol=3.0)


@pytest.mark.parametrize("name", [n for n, masked in color.MASKED.items() if masked])
def test_masked_variant_uses_only_masked_pixels(faces, name):
    """Masked modes follow the face statistics; a reference background change outside the mask is ignored."""
    img, ref, mi, mr = faces
    ref2 = ref.copy()
    ref2[mr < 0.5] = [0.0, 1.0, 0.0]  # paint the reference background green
    a = color.color_transfer(name, img, ref, mi, mr)
    b = color.color_transfer(name, img, ref2, mi, mr)
    assert np.abs(a - b).max() < 1e-5
    c = color.color_transfer(name, img, ref2)  # without masks the green counts
    assert np.abs(a - c).max() > 0.05


def test_unmasked_modes_ignore_masks(faces):
    img, ref, mi, mr = faces
    for name in (n for n, masked in color.MASKED.items() if not masked):
        assert np.array_equal(color.color_transfer(name, img, ref, mi, mr), color.color_transfer(name, img, ref)), name


def test_training_and_merging_share_one_set_of_modes():
    """ct_mode (training) and --color-transfer (merge) name modes of the one colour module."""
    assert set(CT_MODES) <= set(color.MODES) and set(COLOR_TRANSFERS) <= set(color.MODES)
    with pytest.raises(ValueError, match="unknown colour transfer"):
        color.color_transfer("xyz", np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))


def test_seed_decides_random_directions(faces):
    img, ref, _, _ = faces
    a, b = color.color_transfer("idt", img, ref, seed=1), color.color_transfer("idt", img, ref, seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, color.color_transfer("idt", img, ref, seed=2))


def test_mkl_and_lct_match_covariance(faces):
    img, ref, mi, mr = faces
    for fn in (color.mkl, color.lct):
        out = fn(img, ref)
        cov_o = np.cov(out.reshape(-1, 3), rowvar=False)
        cov_r = np.cov(ref.reshape(-1, 3), rowvar=False)
        assert np.abs(cov_o - cov_r).max() < 0.01, fn.__name__


def test_hist_match_threshold_caps_highlights(faces):
    img, ref, mi, mr = faces
    full = color.hist_match(img, ref, mi, mr, threshold=255)
    capped = color.hist_match(img, ref, mi, mr, threshold=200)
    sel = mi > 0.5
    assert np.percentile(capped[sel], 99) < np.percentile(full[sel], 99)
    assert _lab_gap(full, ref, mi, mr) < 0.6 * _lab_gap(img, ref, mi, mr)


def test_stats_average_and_apply(faces):
    """Temporal smoothing averages Gaussian statistics; applying averaged stats lands between the two."""
    img, ref, mi, mr = faces
    s1 = color.transfer_stats("rct", img, ref, mi, mr)
    s2 = color.transfer_stats("rct", img, np.clip(ref * 0.5, 0, 1), mi, mr)
    avg = color.ColorStats.average([s1, s2])
    assert np.allclose(avg.mean_ref, (s1.mean_ref + s2.mean_ref) / 2)
    l1 = color.to_lab(color.apply_rct(img, s1))[..., 0].mean()
    l2 = color.to_lab(color.apply_rct(img, s2))[..., 0].mean()
    lm = color.to_lab(color.apply_rct(img, avg))[..., 0].mean()
    assert min(l1, l2) < lm < max(l1, l2)
    assert color.transfer_stats("idt", img, ref, mi, mr) is None
