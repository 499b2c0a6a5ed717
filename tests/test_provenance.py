"""Provenance labels: C2PA manifests on every output type, the watermark under attack, `verify`."""

from __future__ import annotations

import json
import stat

import av
import cv2
import numpy as np
import pytest

from facecast.media.images import read_image, write_image
from facecast.media.synth import Actor, h264_round_trip, render_clip, sample_photo, write_clip
from facecast.provenance import sign_output, watermark_frame, workspace_payload
from facecast.provenance import ecc
from facecast.provenance import watermark as wm
from facecast.provenance.c2pa import read_manifest
from facecast.provenance.verify import verify
from facecast.provenance.visible import visible_label
from tests.conftest import run_cli

PAYLOAD = bytes.fromhex("0123456789abcdef")


@pytest.fixture(scope="module")
def clip():
    img, lm = sample_photo("einstein")
    return render_clip([Actor(img, lm, start=(0.35, 0.5), end=(0.65, 0.5), face_px=(90, 100))], (320, 240), 25, 25.0)


@pytest.fixture(scope="module")
def marked(clip):
    return [wm.embed(f, PAYLOAD) for f in clip.frames]


def h264(frames, crf=28):
    return h264_round_trip(frames, crf)


def reencode_file(src, dst, crf: int = 28) -> None:
    with av.open(str(src)) as inp:
        frames = [fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)]
    write_clip(dst, frames, 25.0, audio=False, crf=crf)


# --- C2PA -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".mp4"])
def test_manifest_on_every_output_type(workspace, einstein, tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    if suffix == ".mp4":
        write_clip(path, [einstein[0][:240, :320]] * 5, 10.0)
    else:
        write_image(path, einstein[0])
    before = read_image(path) if suffix != ".mp4" else None
    sign_output(workspace, path, model_name="df-64", consent_ids=["consent-alice-1"])
    st = read_manifest(path)
    assert st.present and st.valid and st.state == "Valid" and not st.trusted
    assert st.failures == ["signingCredential.untrusted"]  # self-made key: valid, not trusted
    assert st.claims["digital_source_type"] == "trainedAlgorithmicMedia"
    assert st.claims["model"] == "df-64" and st.claims["consent_ids"] == ["consent-alice-1"]
    assert st.claims["workspace"] == workspace_payload(workspace).hex()
    assert st.claims["claim_generator"].startswith("facecast")
    assert read_manifest(path, workspace).trusted  # the workspace CA as trust anchor
    if before is not None:
        assert np.array_equal(read_image(path), before)  # signing never touches pixels
    # a flipped byte in the data makes it invalid, never silently valid
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(bytes(data))
    assert not read_manifest(bad).valid


def test_workspace_keys_have_the_measured_fields(workspace, tmp_path):
    from cryptography import x509

    from facecast.provenance.keys import keys_dir, load_credentials

    cred = load_credentials(workspace)
    leaf = x509.load_pem_x509_certificates(cred.chain_pem)[0]
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [o.dotted_string for o in eku] == ["1.3.6.1.5.5.7.3.4"]  # emailProtection
    leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days > 365 * 10
    for key in ("leaf.key", "ca.key"):
        assert stat.S_IMODE((keys_dir(workspace) / key).stat().st_mode) == 0o600
    assert load_credentials(workspace).chain_pem == cred.chain_pem  # made once, then reused


# --- watermark --------------------------------------------------------------------------------------


def test_ecc_corrects_soft_errors():
    rng = np.random.default_rng(1)
    coded = ecc.encode_payload(PAYLOAD).astype(float) * 2 - 1
    noisy = coded + rng.normal(0, 0.7, coded.shape)
    assert np.mean((noisy > 0) != (coded > 0)) > 0.03  # there were raw bit errors to correct
    assert ecc.decode_payload(noisy, 8) == (PAYLOAD, True)


def test_watermark_invisible_and_clean(clip, marked):
    y0, y1 = wm._luma(clip.frames[0]), wm._luma(marked[0])
    psnr = 10 * np.log10(255**2 / np.mean((y0 - y1) ** 2))
    assert 38 < psnr < 44
    det = wm.detect([marked[0]], truth=PAYLOAD)
    assert det.found and det.crc_ok and det.payload == PAYLOAD


def test_watermark_survives_half_scale_and_crop():
    # 640x360 frames: a single 0.5x frame of a 320x240 clip (160x120, barely two 64-px tiles) is found in
    # only ~85 % of frames, so the single-frame guarantee is stated from 640x360 up (pooling covers less).
    img, lm = sample_photo("einstein")
    clip = render_clip([Actor(img, lm, start=(0.35, 0.5), end=(0.65, 0.5), face_px=(180, 200))], (640, 360), 4, 25.0)
    for frame in clip.frames:
        f = wm.embed(frame, PAYLOAD)
        h, w = f.shape[:2]
        half = cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        crop = f[h // 20 : h - h // 20, w // 20 : w - w // 20]  # 10 % off in each dimension
        for attacked in (half, crop):
            det = wm.detect([attacked], truth=PAYLOAD)
            assert det.found and det.bit_accuracy >= 0.95 and det.payload == PAYLOAD


def test_watermark_survives_crf28_pooled(marked):
    enc = h264(marked, crf=28)
    det = wm.detect(enc[:25], truth=PAYLOAD)
    assert det.found and det.bit_accuracy >= 0.95 and det.crc_ok


def test_unmarked_frames_not_found(clip):
    assert not wm.detect(clip.frames[:1]).found
    assert not wm.detect(h264(clip.frames, crf=28)).found
    assert not wm.detect([sample_photo("takeo")[0]]).found


def test_watermark_integrity_check(monkeypatch):
    wm.check_integrity()
    monkeypatch.setattr(wm, "PATTERN_SHA256", "0" * 64)
    with pytest.raises(Exception, match="fingerprint"):
        wm.check_integrity()


def test_visible_label_marks_the_corner(einstein):
    img = einstein[0]
    out = visible_label(img)
    h, w = img.shape[:2]
    diff = np.abs(out.astype(int) - img).sum(2)
    assert diff[int(h * 0.85) :, int(w * 0.6) :].sum() > 0 and diff[: h // 2, : w // 2].sum() == 0


# --- verify -----------------------------------------------------------------------------------------


def test_verify_labelled_stripped_and_unrelated(workspace, clip, tmp_path):
    frames = [watermark_frame(workspace, f) for f in clip.frames]
    video = tmp_path / "result.mp4"
    write_clip(video, frames, 25.0)
    sign_output(workspace, video, model_name="m")
    still = tmp_path / "frame.png"
    write_image(still, frames[0])
    sign_output(workspace, still)

    rep = verify(video, workspace)
    assert rep.labelled and rep.manifest.valid and rep.watermark.found and rep.workspace_match

    stripped = tmp_path / "stripped.mp4"
    reencode_file(video, stripped, crf=28)  # another tool's re-encode: manifest gone
    rep = verify(stripped)
    assert not rep.manifest.present and rep.watermark.found and rep.watermark.crc_ok
    assert rep.watermark.payload == workspace_payload(workspace)

    unrelated = tmp_path / "unrelated.mp4"
    write_clip(unrelated, clip.frames, 25.0)

    code, out, err = run_cli("verify", str(stripped), "--json")
    assert code == 0, err
    assert json.loads(out)["watermark"]["payload"] == workspace_payload(workspace).hex()
    code, out, _ = run_cli("verify", str(still), "-w", str(workspace.root), "--json")
    rep = json.loads(out)
    assert code == 0 and rep["manifest"]["trusted"] and rep["watermark"]["found"] and rep["workspace_match"]
    code, out, err = run_cli("verify", str(unrelated))
    assert code == 1 and "NO" in out
    code, _, err = run_cli("verify", str(tmp_path / "missing.mp4"))
    assert code == 2 and "not found" in err and "Traceback" not in err
