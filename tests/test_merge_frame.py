"""merge_frame on a real photo: every mode, every mask combination, mask-limited changes, the controls."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.faces.align import image_to_face_matrix, warp_to_face
from facecast.merge import blend
from facecast.merge.composite import FaceJob, FaceOutput, merge_frame, merge_frame_detailed
from facecast.merge.masks import combine_masks, segment_to_model
from facecast.merge.settings import MASK_MODES, MODES, MergeSettings, parse_override
from facecast.merge.testing import FakePredictor, FakeSegmenter

R = 64


@pytest.fixture(scope="module")
def scene(einstein):
    """Einstein's photo cropped around the face (smaller frame = faster), one face, fake outputs."""
    img, lm = einstein
    frame = np.ascontiguousarray(img[200:480, 260:540])
    lm = lm - [260, 200]
    mat = image_to_face_matrix(lm, "full", R)
    pred = FakePredictor(R, "full").predict(warp_to_face(frame, mat, R)[None])
    seg = FakeSegmenter(48, "whole_face")
    face_u8 = np.clip(pred.face * 255 + 0.5, 0, 255).astype(np.uint8)
    xp = segment_to_model(seg, list(face_u8), [mat], [lm], [mat], "full", R)[0]
    xd = segment_to_model(seg, [frame], [np.eye(2, 3)], [lm], [mat], "full", R)[0]
    job = FaceJob(lm, mat, (6.0, 2.0))
    out = FaceOutput(pred.face[0], pred.src_mask[0], pred.dst_mask[0], xp, xd)
    return frame, job, out


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_shape_range_and_mask_limited_change(scene, mode):
    frame, job, out = scene
    img, mask = merge_frame(frame, [job], [out], MergeSettings(mode=mode, mask_mode="dst"))
    assert img.shape == frame.shape and img.dtype == np.uint8
    assert mask.shape == frame.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    changed = np.any(img != frame, axis=-1)
    if mode == "original":
        assert not changed.any() and mask.max() == 0
        return
    assert mask.max() == pytest.approx(1.0)
    if mode in ("overlay", "hist-match", "seamless", "seamless-hist-match"):
        assert changed.sum() > 500  # the face was replaced
        assert not changed[mask == 0].any()  # nothing outside the mask moved
    elif mode == "raw-rgb":
        # the whole predicted square is pasted, nothing far from it changes
        assert changed.sum() > (mask > 0).sum()
        assert not changed[:5].any() and not changed[-5:].any()
    elif mode == "raw-predict":
        assert (img[:5] == 0).all()  # black outside the face square
    elif mode == "raw-mask":
        assert np.array_equal(img[..., 0], np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))


def test_overlay_is_prediction_inside_full_mask(scene):
    """Where the mask is 1 and no colour transfer runs, overlay shows the prediction itself."""
    frame, job, out = scene
    s = MergeSettings(mode="overlay", mask_mode="dst", color_transfer="none")
    res = merge_frame_detailed(frame, [job], [out], s)
    patch = res.patches[0]
    assert np.allclose(patch.face, out.face, atol=1e-6)
    inner = res.mask > 0.999
    ys, xs = np.nonzero(inner)
    centre = (int(ys.mean()), int(xs.mean()))
    # compare with the prediction warped into the frame at the face centre
    from facecast.merge.composite import paste

    fw, _ = paste(out.face, None, job.matrix, (0, 0, frame.shape[1], frame.shape[0]))
    assert np.abs(res.image[centre].astype(int) - np.round(fw[centre] * 255)).max() <= 1


@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_mask_combinations(scene, mask_mode):
    frame, job, out = scene
    _, mask = merge_frame(frame, [job], [out], MergeSettings(mask_mode=mask_mode, color_transfer="none"))
    assert mask.sum() > 100
    hull, prd, dst = None, out.src_mask, out.dst_mask
    expect = {
        "learned-prd*learned-dst": prd * dst,
        "learned-prd+learned-dst": np.clip(prd + dst, 0, 1),
        "xseg-prd*xseg-dst": out.xseg_prd * out.xseg_dst,
        "learned-prd*learned-dst*xseg-prd*xseg-dst": prd * dst * out.xseg_prd * out.xseg_dst,
    }
    if mask_mode in expect:
        got = combine_masks(mask_mode, hull, prd, dst, out.xseg_prd, out.xseg_dst)
        assert np.allclose(got, expect[mask_mode])


def test_products_intersect_and_sums_unite(scene):
    _, _, out = scene
    a, b = out.src_mask, out.xseg_dst
    prod = combine_masks("learned-prd*learned-dst", learned_prd=a, learned_dst=b)
    summ = combine_masks("learned-prd+learned-dst", learned_prd=a, learned_dst=b)
    assert prod.sum() <= min(a.sum(), b.sum()) + 1e-3
    assert summ.sum() >= max(a.sum(), b.sum()) - 1e-3


def test_xseg_mode_without_xseg_is_one_clear_error(scene):
    frame, job, out = scene
    bare = FaceOutput(out.face, out.src_mask, out.dst_mask)
    with pytest.raises(FacecastError, match="xseg-dst mask.*not available"):
        merge_frame(frame, [job], [bare], MergeSettings(mask_mode="xseg-dst"))


def test_segmenter_sees_faces_at_its_own_geometry(scene):
    frame, job, _ = scene
    seg = FakeSegmenter(48, "head")
    m = segment_to_model(seg, [frame], [np.eye(2, 3)], [job.landmarks], [job.matrix], "full", R)
    assert seg.calls == 1 and m.shape == (1, R, R)
    # a 'head' crop is wider than 'full', so the same ellipse covers more of the model's face square
    seg2 = FakeSegmenter(48, "full")
    m2 = segment_to_model(seg2, [frame], [np.eye(2, 3)], [job.landmarks], [job.matrix], "full", R)
    assert m.sum() > m2.sum() * 1.3


def test_erode_shrinks_blur_feathers_negative_grows():
    m = np.zeros((64, 64), np.float32)
    m[16:48, 16:48] = 1
    assert blend.erode_blur(m, 6, 0).sum() < m.sum()
    assert blend.erode_blur(m, -6, 0).sum() > m.sum()
    soft = blend.erode_blur(m, 0, 9)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 100  # a feathered edge
    assert soft[0].max() == 0 and soft[:, 0].max() == 0  # fades to zero inside the square


def test_controls_change_the_face_only(scene):
    frame, job, out = scene
    base, mask = merge_frame(frame, [job], [out], MergeSettings(color_transfer="none", mask_mode="dst"))
    for ov in ({"sharpen_mode": "box", "sharpen_amount": 60}, {"sharpen_mode": "gaussian", "sharpen_amount": -60},
               {"motion_blur": 100}, {"face_scale": 20}):
        img, m2 = merge_frame(frame, [job], [out], MergeSettings(color_transfer="none", mask_mode="dst", **ov))
        diff = np.any(img != base, axis=-1)
        assert diff.sum() > 50, ov
        assert not diff[(mask == 0) & (m2 == 0)].any(), ov


def test_output_face_scale_grows_the_pasted_region(scene):
    frame, job, out = scene
    _, m0 = merge_frame(frame, [job], [out], MergeSettings(mask_mode="dst"))
    _, m1 = merge_frame(frame, [job], [out], MergeSettings(mask_mode="dst", output_face_scale=20))
    assert m1.sum() == pytest.approx(m0.sum() * 1.2**2, rel=0.1)


def test_frame_filters_touch_the_background(scene):
    frame, job, out = scene
    base, mask = merge_frame(frame, [job], [out], MergeSettings(mask_mode="dst"))
    for ov in ({"image_denoise": 150}, {"bicubic_degrade": 60}, {"color_degrade": 100}):
        img, _ = merge_frame(frame, [job], [out], MergeSettings(mask_mode="dst", **ov))
        assert np.any(img[mask == 0] != base[mask == 0]), ov


def test_no_faces_passes_frame_through(scene):
    frame, _, _ = scene
    img, mask = merge_frame(frame, [], [], MergeSettings())
    assert np.array_equal(img, frame) and mask.max() == 0


def test_settings_validation_and_overrides():
    assert MergeSettings().validate().mode == "overlay"
    with pytest.raises(FacecastError, match="mode='blend'.*overlay"):
        MergeSettings(mode="blend").validate()
    with pytest.raises(FacecastError, match="erode=999.*-400 to 400"):
        MergeSettings(erode=999).validate()
    with pytest.raises(FacecastError, match="temporal_window=4.*odd"):
        MergeSettings(temporal_window=4).validate()
    assert parse_override("erode=10") == ("erode", 10)
    assert parse_override("color-transfer=idt") == ("color_transfer", "idt")
    assert parse_override("masked_hist_match=false") == ("masked_hist_match", False)
    with pytest.raises(FacecastError, match="unknown setting"):
        parse_override("speed=3")
    with pytest.raises(FacecastError, match="needs a int"):
        parse_override("blur=soft")
    s = MergeSettings().with_overrides({"blur": 20})
    assert s.blur == 20 and s.digest() != MergeSettings().digest()
    assert MergeSettings.from_dict(s.to_dict()) == s


def test_fast_png_is_lossless(scene):
    import cv2

    from facecast.media.images import decode_image
    from facecast.merge.fastpng import encode_png

    frame = scene[0]
    assert np.array_equal(decode_image(encode_png(frame)), frame)
    grey = np.ascontiguousarray(frame[..., 1])
    assert np.array_equal(decode_image(encode_png(grey), flags=cv2.IMREAD_UNCHANGED), grey)
    with pytest.raises(ValueError):
        encode_png(frame.astype(np.float32))
