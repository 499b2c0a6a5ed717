"""facecast's colour transfers against DeepFaceLab's (tests/dfl_color_oracle.py, a numpy transcription of
DeepFaceLab's code): >= 40 dB PSNR on the same real 256 px faces with the same seed, for every mode."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.imaging import color
from tests import dfl_color_oracle as dfl

BAR_DB = 40.0
HEAVY = {"sot-m"}  # DeepFaceLab's sot-m takes seconds: one pair is enough


@pytest.fixture(scope="module")
def pairs():
    return dfl.face_pairs(256)


@pytest.mark.parametrize("mode", [m for m in color.MODES if m != "none"])
def test_mode_matches_deepfacelab(pairs, mode):
    full = np.ones(pairs[0][1].shape[:2], np.float32)
    for _, img, ref, _ in pairs[:1] if mode in HEAVY else pairs:
        mask = full if color.MASKED[mode] else None
        want = dfl.transfer(mode, img, ref, None if mask is None else mask[..., None], seed=0)
        got = color.color_transfer(mode, img, ref, mask, mask, seed=0)
        assert got.shape == img.shape and got.dtype == np.float32
        assert dfl.psnr(want, got) >= BAR_DB, (mode, dfl.psnr(want, got))
        # and it really transfers: the output is far from the input
        assert dfl.psnr(img, got) < 30.0


@pytest.mark.parametrize("masked, plain", [("mkl-m", "mkl"), ("idt-m", "idt"), ("rct", "rct"), ("mix-m", None)])
def test_full_mask_equals_no_mask(pairs, masked, plain):
    """Where the mask is full, a masked mode is its unmasked one (and masks of ones change nothing)."""
    _, img, ref, _ = pairs[0]
    full = np.ones(img.shape[:2], np.float32)
    a = color.color_transfer(masked, img, ref, full, full)
    b = color.color_transfer(masked, img, ref)
    assert np.abs(a - b).max() < 1e-5
    if plain is not None:
        assert np.abs(a - color.color_transfer(plain, img, ref)).max() < 1e-5


def test_idt_moves_part_of_the_way(pairs):
    """DeepFaceLab's relaxation: 20 iterations of 1/20 each reach ~1 - 0.95^20 = 0.64 of the mean shift."""
    _, img, ref, _ = pairs[0]
    out = color.idt(img, ref)
    want = ref.reshape(-1, 3).mean(0) - img.reshape(-1, 3).mean(0)
    got = out.reshape(-1, 3).mean(0) - img.reshape(-1, 3).mean(0)
    frac = float(np.dot(got, want) / np.dot(want, want))
    assert 0.5 < frac < 0.8, frac


def test_sot_shift_is_smooth(pairs):
    """The smoothing removes per-pixel speckle: the shift's high frequencies are small against the shift."""
    _, img, ref, _ = pairs[0]
    shift = color.color_transfer("sot", img, ref) - img
    rough = np.abs(np.diff(shift, axis=1)).mean()
    assert rough < 0.02 * np.abs(shift).mean() + 1e-3, (rough, np.abs(shift).mean())


def test_hist_match_matches_deepfacelab(pairs):
    full = np.ones(pairs[0][1].shape[:2], np.float32)
    for _, img, ref, _ in pairs:
        for threshold in (255, 238):
            want = dfl.merger_hist_match(img, ref, full[..., None], threshold)
            got = color.hist_match(img, ref, full, full, threshold)
            assert dfl.psnr(want, got) >= BAR_DB, threshold
