"""faces/manual.py: manual re-extract of one frame writes what extract writes; the review queue."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facecast.errors import ConsentError, ContentRefused, FacecastError
from facecast.faces import manual
from facecast.faces.aligned import list_aligned, read_aligned, update_meta
from facecast.faces.extract import extract
from facecast.media.images import read_image, write_image
from facecast.media.synth import Actor, render_clip, sample_photo


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A dst side of 6 frames extracted by `extract` (the reference a manual fix must match)."""
    from facecast.provenance.consent import add_consent
    from facecast.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("manual") / "ws", create=True)
    add_consent(ws, "sample", "bundled test photos, used only by the tests", "facecast tests", src=True)
    img, lm = sample_photo("takeo")
    clip = render_clip([Actor(img, lm, face_px=(90, 100))], n_frames=6, blank_frames=(4,))
    for i, f in enumerate(clip.frames):
        write_image(ws.data("dst") / f"{i:05d}.png", f)
    extract(ws, "dst", size=128, workers=1, quiet=True, smooth=True)
    return ws, clip


def test_given_true_landmarks_the_manual_face_matches_extract(extracted, tmp_path):
    ws, _ = extracted
    path = ws.aligned("dst") / "00001_0.jpg"
    ref = read_aligned(path)
    ref_bytes = path.read_bytes()
    result = manual.save_manual_face(ws, "dst", "00001.png", ref.meta.source_landmarks,
                                     rect=ref.meta.source.rect)
    assert result["path"] == str(path) and result["replaced"]
    again = read_aligned(path)
    # same pixels (same warp, same JPEG encoder and quality) and the same geometry in the metadata
    assert np.array_equal(again.image, ref.image)
    assert np.allclose(again.meta.matrix, ref.meta.matrix) and np.allclose(again.meta.landmarks_array, ref.meta.landmarks_array)
    assert again.meta.face_type == ref.meta.face_type and again.meta.size == ref.meta.size == 128
    assert again.meta.pose == pytest.approx(ref.meta.pose) and again.meta.sharpness == pytest.approx(ref.meta.sharpness)
    assert again.meta.identity == ref.meta.identity and tuple(again.meta.source.frame_size) == (320, 240)
    # marked as placed by hand, and remembered for a later `extract --landmarks`
    assert again.meta.detector["name"] == "manual" and again.meta.extra["manual"] is True
    gate = getattr(again.meta, "content_gate", None) or again.meta.extra["content_gate"]
    assert gate["verdict"] == "ok" and 0.0 <= gate["score"] < 0.5  # the frame passed the content gate
    saved = json.loads((ws.data("dst") / manual.MANUAL_LANDMARKS_FILE).read_text())
    assert np.allclose(saved["00001.png"], ref.meta.source_landmarks, atol=1e-3)
    assert path.read_bytes() != ref_bytes  # metadata changed, pixels not


def test_moved_landmarks_rewrite_the_face_and_carry_polygons(extracted):
    ws, _ = extracted
    path = ws.aligned("dst") / "00002_0.jpg"
    ref = read_aligned(path)
    poly = [{"type": "include", "points": [[30.0, 30.0], [90.0, 30.0], [60.0, 100.0]]}]
    ref.meta.mask_polygons = poly
    ref.meta.extra["original_name"] = "00002_0.jpg"
    update_meta(path, ref.meta)
    lm = ref.meta.source_landmarks + np.array([6.0, -4.0])  # the whole face placed 6 px right, 4 up
    manual.save_manual_face(ws, "dst", "00002.png", lm)
    new = read_aligned(path)
    assert np.abs(new.image.astype(int) - ref.image.astype(int)).mean() > 2  # a different crop
    assert np.allclose(new.meta.source_landmarks, lm)
    assert np.allclose(new.meta.landmarks_array, ref.meta.landmarks_array, atol=1e-6)  # pure shift
    # polygons follow the face: same frame position, new aligned coordinates (shifted by the new warp)
    from facecast.faces.align import invert, transform_points

    old_frame = transform_points(np.array(poly[0]["points"]), invert(ref.meta.matrix))
    new_frame = transform_points(np.array(new.meta.mask_polygons[0]["points"]), invert(new.meta.matrix))
    assert np.allclose(old_frame, new_frame, atol=0.01)
    assert new.meta.extra["original_name"] == "00002_0.jpg"


def test_missed_frame_gets_a_face_from_a_box(extracted):
    ws, clip = extracted
    frame = ws.data("dst") / "00003.png"
    (ws.aligned("dst") / "00003_0.jpg").unlink()
    truth = clip.landmarks[3][0] - 1
    lo, hi = truth.min(0), truth.max(0)
    lm = manual.landmarks_in_box(read_image(frame), (lo[0], lo[1], hi[0], hi[1]))
    assert np.abs(lm - truth).mean() < 6.0  # the landmark model found the face inside the user's box
    manual.save_manual_face(ws, "dst", "00003.png", lm, rect=(lo[0], lo[1], hi[0], hi[1]))
    face = read_aligned(ws.aligned("dst") / "00003_0.jpg")
    assert face.meta.source.filename == "00003.png" and face.image.shape == (128, 128, 3)
    assert (ws.aligned_debug / "00003.jpg").is_file()


def test_review_queue_orders_missed_interpolated_then_outliers(extracted):
    ws, _ = extracted
    # one face missing (missed), one with a distorted shape (outlier), one low score
    (ws.aligned("dst") / "00005_0.jpg").unlink()
    p0 = ws.aligned("dst") / "00000_0.jpg"
    meta = read_aligned(p0).meta
    lm = meta.landmarks_array.copy()
    lm[0:17] += np.array([0.0, 25.0])  # the jaw dragged down: a broken landmark set
    meta.landmarks = lm.tolist()
    meta.extra["score"] = 0.3
    update_meta(p0, meta)
    queue = manual.review_queue(ws, "dst")
    by_frame = {e["frame"]: e["reasons"] for e in queue}
    assert by_frame["00005.png"] == ["missed"]
    assert "interpolated" in by_frame["00004.png"]
    assert {"low_confidence", "outlier_landmarks"} <= set(by_frame["00000.png"])
    order = [e["frame"] for e in queue]
    assert order.index("00005.png") < order.index("00004.png") < order.index("00000.png")
    # a hand-fixed face is not queued again as low confidence or outlier
    assert "00001.png" not in by_frame
    # DeepFaceLab's way of marking a bad face: delete its aligned_debug image
    (ws.aligned_debug / "00001.jpg").unlink()
    by_frame = {e["frame"]: e["reasons"] for e in manual.review_queue(ws, "dst")}
    assert by_frame["00001.png"] == ["debug_deleted"]


def test_refusals(extracted, monkeypatch, tmp_path):
    ws, _ = extracted
    with pytest.raises(FacecastError, match="68"):
        manual.save_manual_face(ws, "dst", "00001.png", [[0, 0]] * 5)
    with pytest.raises(FacecastError, match="not a frame name"):
        manual.save_manual_face(ws, "dst", "../00001.png", np.zeros((68, 2)))
    with pytest.raises(FacecastError, match="box"):
        manual.landmarks_in_box(np.zeros((50, 50, 3), np.uint8), (10, 10, 11, 11))
    # the content gate holds as in extract: a refused frame writes nothing
    from facecast import provenance
    from facecast.provenance.content_gate import ContentGate

    path = ws.aligned("dst") / "00002_0.jpg"
    before = path.read_bytes()
    monkeypatch.setattr(provenance, "content_gate", lambda: ContentGate(scorer=lambda img: 0.99))
    lm = read_aligned(path).meta.source_landmarks
    with pytest.raises(ContentRefused):
        manual.save_manual_face(ws, "dst", "00002.png", lm + 3)
    assert path.read_bytes() == before
    monkeypatch.undo()
    # src needs the source person's consent, as extract src does
    from facecast.workspace import Workspace

    bare = Workspace.open(tmp_path / "bare", create=True)
    img, _ = sample_photo("takeo")
    write_image(bare.data("src") / "a.png", img)
    with pytest.raises(ConsentError):
        manual.save_manual_face(bare, "src", "a.png", lm)
    assert list_aligned(bare.aligned("src")) == []
