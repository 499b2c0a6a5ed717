"""Temporal landmark filters of track.py (One-Euro default, Gaussian) on synthetic tracks with known truth."""

from __future__ import annotations

import numpy as np

from facecast.faces.facetype import MEAN_FACE_68
from facecast.faces.track import KeptFace, Obs, one_euro_landmarks, smooth_landmarks, track_faces


def _face(centre: tuple[float, float], size: float = 100.0) -> np.ndarray:
    return (MEAN_FACE_68 - MEAN_FACE_68.mean(0)) * size + np.asarray(centre)


def _kept(points: list[np.ndarray], manual: tuple[int, ...] = ()) -> dict[int, KeptFace]:
    return {i: KeptFace((0, 0, 1, 1), 1.0, p.copy(), 0, manual=i in manual) for i, p in enumerate(points)}


def _jitter(kept: dict[int, KeptFace], truth: list[np.ndarray]) -> float:
    return float(np.mean([np.abs((kept[i + 1].landmarks - kept[i].landmarks) - (truth[i + 1] - truth[i])).mean()
                          for i in range(len(truth) - 1)]))


def _error(kept: dict[int, KeptFace], truth: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(kept[i].landmarks - truth[i]).mean() for i in range(len(truth))]))


def test_one_euro_steadies_a_still_face_more_than_gaussian():
    rng = np.random.default_rng(0)
    truth = [_face((200, 150))] * 40
    noisy = [t + rng.normal(0, 1.0, t.shape) for t in truth]
    raw, gauss, euro = _kept(noisy), _kept(noisy), _kept(noisy)
    smooth_landmarks(gauss)
    one_euro_landmarks(euro)
    assert _jitter(euro, truth) < _jitter(gauss, truth) < 0.5 * _jitter(raw, truth)
    assert _error(euro, truth) < _error(raw, truth)


def test_one_euro_follows_motion_without_lag():
    """A face moving 3 px per frame with noise: the forward-backward filter's error stays below the raw one."""
    rng = np.random.default_rng(1)
    truth = [_face((100 + 3 * i, 150 + np.sin(i / 4) * 10)) for i in range(40)]
    noisy = [t + rng.normal(0, 1.0, t.shape) for t in truth]
    raw, euro = _kept(noisy), _kept(noisy)
    one_euro_landmarks(euro)
    assert _error(euro, truth) < _error(raw, truth)
    assert _jitter(euro, truth) < _jitter(raw, truth)


def test_one_euro_keeps_manual_frames_and_splits_runs():
    rng = np.random.default_rng(2)
    pts = [_face((200, 150)) + rng.normal(0, 1.0, (68, 2)) for _ in range(12)]
    kept = _kept(pts, manual=(5,))
    del kept[9]  # a gap: frames 10, 11 are their own run (too short to filter)
    one_euro_landmarks(kept)
    assert np.array_equal(kept[5].landmarks, pts[5])
    assert np.array_equal(kept[10].landmarks, pts[10]) and np.array_equal(kept[11].landmarks, pts[11])
    assert not np.array_equal(kept[2].landmarks, pts[2])


def test_track_faces_smooth_choices():
    rng = np.random.default_rng(3)
    frames = [[Obs(i, (150, 100, 250, 200), 0.9, _face((200, 150)) + rng.normal(0, 1.0, (68, 2)))] for i in range(10)]
    desc = lambda i, lm: np.zeros(128)  # noqa: E731  (one person: every descriptor alike)
    raw = track_faces(frames, desc, smooth=False).kept
    euro = track_faces(frames, desc, smooth=True).kept
    gauss = track_faces(frames, desc, smooth="gaussian").kept
    assert np.array_equal(raw[4].landmarks, frames[4][0].landmarks)
    assert not np.allclose(euro[4].landmarks, gauss[4].landmarks)
