"""Sample pipeline: deterministic per index, augmentations, masks (XSeg first, hull otherwise),
uniform-yaw weights, colour transfer toward dst statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.faces.aligned import read_aligned, update_meta
from facecast.imaging.color import color_transfer
from facecast.train.options import CT_MODES, preset
from facecast.train.samples import PairDataset, StepBatches, load_faceset, yaw_weights
from facecast.train.testdata import make_faceset


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    make_faceset(root / "src", "einstein", 5, size=48)
    make_faceset(root / "dst", "takeo", 5, size=48, seed=1)
    return root


def test_dataset_is_a_pure_function_of_the_index(sets):
    opts = preset("tiny").with_overrides(dict(resolution=32, ct_mode="rct", random_hsv_power=0.1, uniform_yaw=True))
    src, dst = load_faceset(sets / "src", opts), load_faceset(sets / "dst", opts)
    assert src.images.shape == (5, 32, 32, 3) and src.masks.shape == (5, 32, 32)
    ds = PairDataset(src, dst, opts, seed=3)
    a, b, c = ds[17], ds[17], ds[18]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["src_in"], c["src_in"])
    assert a["src_in"].shape == (3, 32, 32) and a["src_mask"].shape == (1, 32, 32) and a["src_in"].dtype == torch.uint8
    # random warp: input differs from target, but not wildly
    diff = (a["dst_in"].float() - a["dst_target"].float()).abs().mean()
    assert 0.5 < float(diff) < 60
    # the mask covers the face (hull of the landmarks): a good part of the image, not all of it
    cover = float(a["src_mask"].float().mean() / 255)
    assert 0.2 < cover < 0.95


def test_blur_out_mask_keeps_the_face_and_smooths_the_rest(sets):
    from facecast.train.samples import blur_outside

    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 3)).astype(np.float32)
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1
    out = blur_outside(img, mask)
    assert np.array_equal(out[10:22, 10:22], img[10:22, 10:22])
    assert out[:4, :4].std() < 0.5 * img[:4, :4].std()
    opts = preset("tiny").with_overrides(dict(resolution=32, blur_out_mask=True))
    ds = PairDataset(load_faceset(sets / "src", opts), load_faceset(sets / "dst", opts), opts)
    assert ds[0]["src_target"].shape == (3, 32, 32)


def test_step_batches_split_the_global_batch():
    single = iter(StepBatches(5, 4))
    r0, r1 = iter(StepBatches(5, 4, 0, 2)), iter(StepBatches(5, 4, 1, 2))
    for _ in range(3):
        assert next(single) == next(r0) + next(r1)


def test_xseg_mask_is_preferred_over_the_hull(sets, tmp_path):
    import shutil

    shutil.copytree(sets / "src", tmp_path / "src")
    path = sorted((tmp_path / "src").iterdir())[0]
    face = read_aligned(path)
    mask = np.zeros((48, 48), np.float32)
    mask[10:30, 5:20] = 1.0
    face.meta.set_xseg_mask(mask)
    update_meta(path, face.meta)
    opts = preset("tiny").with_overrides(dict(resolution=48))
    fs = load_faceset(tmp_path / "src", opts)
    assert fs.masks[0][20, 10] == 255 and fs.masks[0][40, 40] == 0
    assert fs.masks[1][40, 24] > 0  # the others keep their landmark hull (the chin area)


def test_uniform_yaw_weights_balance_bins():
    yaw = np.array([0.0] * 9 + [40.0])
    w = yaw_weights(yaw, bins=4)
    assert np.isclose(w.sum(), 1) and np.isclose(w[-1], 0.5)  # the lone profile is drawn half the time
    assert np.allclose(yaw_weights(np.zeros(3)), 1 / 3)


@pytest.mark.parametrize("mode", [m for m in CT_MODES if m != "none"])
def test_colour_transfer_moves_toward_reference(mode):
    rng = np.random.default_rng(0)
    src = (rng.random((24, 24, 3)) * 0.4).astype(np.float32)
    ref = (rng.random((24, 24, 3)) * 0.3 + np.array([0.6, 0.4, 0.2])).astype(np.float32)
    out = color_transfer(mode, src, ref)
    assert out.shape == src.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    before = np.abs(src.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).sum()
    after = np.abs(out.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).sum()
    assert after < 0.5 * before
    assert color_transfer("none", src, ref) is src
