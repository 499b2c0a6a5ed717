"""The watermark under what re-uploads do (mirror, rotation, rescale), on small outputs, and its three
honest verdicts. Long sweeps (CRF 35, 0.5x + CRF 28, 720p) live in bench/provenance.py."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facecast.media.images import write_image
from facecast.media.synth import Actor, h264_round_trip, render_clip, sample_photo
from facecast.provenance import ecc
from facecast.provenance import watermark as wm
from tests.conftest import run_cli

PAYLOAD = bytes.fromhex("0123456789abcdef")


def _clip(size, n):
    img, lm = sample_photo("einstein")
    w = size[0]
    return render_clip([Actor(img, lm, start=(0.35, 0.5), end=(0.65, 0.5), face_px=(w * 0.3, w * 0.33))], size, n, 25.0)


@pytest.fixture(scope="module")
def frame640():
    return wm.embed(_clip((640, 360), 1).frames[0], PAYLOAD)


def _rotate(f, deg):
    h, w = f.shape[:2]
    return cv2.warpAffine(f, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h), flags=cv2.INTER_LINEAR)


def _scale(f, s):
    return cv2.resize(f, (int(f.shape[1] * s), int(f.shape[0] * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


@pytest.mark.parametrize(
    "name,attack",
    [
        ("mirror", lambda f: np.ascontiguousarray(f[:, ::-1])),
        ("rotate +5", lambda f: _rotate(f, 5)),
        ("rotate -2", lambda f: _rotate(f, -2)),
        ("mirror + rotate +3", lambda f: _rotate(np.ascontiguousarray(f[:, ::-1]), 3)),
        ("0.3x", lambda f: _scale(f, 0.3)),
        ("2x", lambda f: _scale(f, 2.0)),
    ],
)
def test_found_after_geometric_attacks(frame640, name, attack):
    det = wm.detect([attack(frame640)], truth=PAYLOAD)
    assert det.verdict == wm.VERDICT_LABELLED and det.payload == PAYLOAD, (name, det.confidence)
    assert det.searched == (name not in ("2x",))  # a plain rescale is found by the direct decode
    if "mirror" in name:
        assert det.mirrored
    if "rotate" in name:
        assert abs(det.rotation - float(name.split()[-1])) < 0.3  # the angle it was turned by


def test_direct_decode_needs_no_search(frame640):
    det = wm.detect([frame640], truth=PAYLOAD)
    assert det.verdict == wm.VERDICT_LABELLED and not det.searched and not det.mirrored


@pytest.mark.parametrize("size", [(160, 120), (176, 144)])
def test_small_outputs_carry_a_mark_found_pooled(size):
    clip = _clip(size, 25)
    marked = [wm.embed(f, PAYLOAD) for f in clip.frames]
    y0, y1 = wm._luma(clip.frames[0]), wm._luma(marked[0])
    assert 10 * np.log10(255**2 / np.mean((y0 - y1) ** 2)) >= 38.0
    det = wm.detect(h264_round_trip(marked, 18), truth=PAYLOAD)  # CRF 18: what `facecast video` writes
    assert det.verdict == wm.VERDICT_LABELLED and det.payload == PAYLOAD


def _pilot_only(frame):
    """A frame carrying the pilot but no codeword: the mark is there, its payload cannot check."""
    lay = wm._layout()
    h, w = frame.shape[:2]
    t = np.tile(lay.pilot_tile, (h // wm.TILE + 1, w // wm.TILE + 1))[:h, :w] * wm._mask(wm._luma(frame))
    d = np.rint(t * wm._gain(t, 36.0)).astype(np.int16)
    return cv2.add(frame, cv2.merge([d, d, d]), dtype=cv2.CV_8U)


def test_three_verdicts_and_no_payload_without_its_check(tmp_path):
    frame = _clip((320, 240), 1).frames[0]
    cases = {
        "labelled.png": (wm.embed(frame, PAYLOAD), wm.VERDICT_LABELLED),
        "unreadable.png": (_pilot_only(frame), wm.VERDICT_UNREADABLE),
        "none.png": (frame, wm.VERDICT_NONE),
    }
    for name, (img, verdict) in cases.items():
        det = wm.detect([img])
        assert det.verdict == verdict, (name, det.confidence)
        assert (det.payload is not None) == (verdict == wm.VERDICT_LABELLED)
        write_image(tmp_path / name, img)
    code, out, err = run_cli("verify", str(tmp_path / "unreadable.png"), "--json")
    rep = json.loads(out)
    assert code == 0 and rep["watermark"]["verdict"] == wm.VERDICT_UNREADABLE and rep["watermark"]["payload"] is None
    code, out, _ = run_cli("verify", str(tmp_path / "unreadable.png"))
    assert "payload unreadable" in out and "labelled: payload" not in out
    code, out, _ = run_cli("verify", str(tmp_path / "labelled.png"))
    assert code == 0 and PAYLOAD.hex() in out and "soft binding" in out
    code, out, _ = run_cli("verify", str(tmp_path / "none.png"))
    assert code == 1 and "no mark" in out


def test_heavy_reencode_never_shows_a_wrong_payload():
    clip = _clip((320, 240), 25)
    marked = [wm.embed(f, PAYLOAD) for f in clip.frames]
    for frames in (h264_round_trip(marked, 40), h264_round_trip([_scale(f, 0.5) for f in marked], 36)):
        det = wm.detect(frames, truth=PAYLOAD)
        assert det.payload in (None, PAYLOAD)
        assert det.verdict != wm.VERDICT_LABELLED or det.bit_accuracy == 1.0


def test_crc16_rejects_a_wrong_codeword():
    coded = ecc.encode_payload(PAYLOAD).astype(float) * 2 - 1
    assert ecc.decode_payload(coded, 8) == (PAYLOAD, True)
    other = ecc.encode_payload(bytes(8)).astype(float) * 2 - 1
    bits = ecc.bytes_to_bits(bytes(8) + (ecc.crc16(bytes(8)) ^ 1).to_bytes(2, "big"))
    wrong = ecc.encode_bits(bits).astype(float) * 2 - 1  # a codeword whose CRC does not match
    assert ecc.decode_payload(other, 8)[1] and not ecc.decode_payload(wrong, 8)[1]


def test_verify_line_names_geometry_only_for_a_mark_that_was_found():
    """QA: "no mark ..., found mirrored, rotated -2.2 deg" read like a find; the best guess of a failed
    search is noise and is not described."""
    from facecast.provenance.c2pa import ManifestStatus
    from facecast.provenance.verify import VerifyReport

    def line(found: bool, crc_ok: bool) -> str:
        det = wm.Detection(found=found, payload=PAYLOAD if crc_ok else None, confidence=9.0 if found else 5.4,
                           crc_ok=crc_ok, period=wm.TILE * 0.56, frames=75, rotation=-2.2, mirrored=True)
        return VerifyReport("x.mp4", "video", ManifestStatus(present=False), det).watermark_text()

    none = line(False, False)
    assert none.startswith("no mark") and "found" not in none and "mirrored" not in none and "rotated" not in none
    assert "confidence 5.4" in none
    for text in (line(True, False), line(True, True)):
        assert "found mirrored, rotated -2.2 deg, scaled 0.56x" in text
