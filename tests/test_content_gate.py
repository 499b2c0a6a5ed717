"""Explicit-content gate: real model on benign portraits, refusal path via an injected stub only."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from facecast.errors import ContentRefused, FacecastError
from facecast.provenance.content_gate import REFUSE_AT, SAMPLE_FPS, ContentGate, bundled_model_path


@pytest.fixture(scope="module")
def gate() -> ContentGate:
    return ContentGate()


def _variants(img: np.ndarray) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [
        img,
        img[:, ::-1],
        img[h // 8 : h - h // 8, w // 8 : w - w // 8],
        cv2.resize(img, (max(32, w // 3), max(32, h // 3))),
    ]


@pytest.mark.parametrize("name", ["einstein", "takeo", "breakingbad", "astronaut"])
def test_benign_portraits_score_low(gate, name):
    from facecast.media.synth import sample_photo

    img = sample_photo(name)[0]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    scores = [gate.check(v, name) for v in _variants(img)]  # check() raises if refused
    assert max(scores) < 0.2, scores


def test_refusal_path_with_stub_classifier():
    stub = ContentGate(scorer=lambda img: float(img.mean() > 200))  # "explicit" = a white frame
    dark = np.zeros((64, 64, 3), np.uint8)
    assert stub.check(dark, "dark.png") == 0.0
    with pytest.raises(ContentRefused, match="white.png: refused by the explicit-content gate"):
        stub.check(np.full((64, 64, 3), 255, np.uint8), "white.png")


def test_video_sampling_catches_a_half_second_segment():
    fps = 30.0
    frames = [np.zeros((8, 8, 3), np.uint8) for _ in range(90)]
    seen: list[int] = []

    def scorer(img):
        seen.append(int(img[0, 0, 1]))
        return float(img[0, 0, 0] == 255)

    for i, f in enumerate(frames):
        f[0, 0, 1] = i
    gate = ContentGate(scorer=scorer)
    res = gate.check_video_frames(frames, fps, "clean.mp4")
    assert res.checked == len(seen) and res.checked >= 90 / fps * SAMPLE_FPS
    gaps = np.diff(sorted(seen))
    assert gaps.max() / fps <= 0.25
    # every 0.5 s explicit segment, wherever it starts, is refused
    for start in range(0, 90 - 15, 7):
        bad = [f.copy() for f in frames]
        for f in bad[start : start + 15]:
            f[0, 0, 0] = 255
        with pytest.raises(ContentRefused):
            gate.check_video_frames(bad, fps, "bad.mp4")


def test_altered_model_is_refused(tmp_path):
    fake = tmp_path / "open-nsfw.onnx"
    shutil.copy(bundled_model_path(), fake)
    with fake.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(FacecastError, match="altered"):
        ContentGate(model_path=fake)


def test_refuse_threshold_is_sane():
    assert 0.2 < REFUSE_AT <= 0.8
