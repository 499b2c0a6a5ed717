"""`facecast extract` on small synthetic clips rendered from the bundled real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.faces.align import invert, transform_points
from facecast.faces.aligned import list_aligned, read_aligned
from facecast.faces.extract import PROGRESS_FILE, REPORT_FILE, extract
from facecast.media.images import read_image, write_image
from facecast.media.synth import Actor, render_clip, sample_photo, two_person_clip

from conftest import run_cli


def _write_frames(ws, side, frames):
    for i, f in enumerate(frames):
        write_image(ws.data(side) / f"{i:05d}.png", f)


def test_extract_src_without_consent_stops_before_work(tmp_path):
    from facecast.errors import ConsentError
    from facecast.workspace import Workspace

    ws = Workspace.open(tmp_path / "bare", create=True)
    img, lm = sample_photo("takeo")
    _write_frames(ws, "src", render_clip([Actor(img, lm)], n_frames=2).frames)
    with pytest.raises(ConsentError, match="facecast consent add"):
        extract(ws, "src", size=64, workers=1, quiet=True)
    assert list(ws.aligned("src").iterdir()) == []


def test_explicit_frame_is_refused_and_nothing_written(workspace, monkeypatch):
    """The refusal path with a stub classifier (no explicit images in the repository)."""
    from facecast import provenance
    from facecast.errors import ContentRefused
    from facecast.provenance.content_gate import ContentGate

    monkeypatch.setattr(provenance, "content_gate", lambda: ContentGate(scorer=lambda img: 0.99))
    img, lm = sample_photo("takeo")
    _write_frames(workspace, "dst", render_clip([Actor(img, lm)], n_frames=2).frames)
    with pytest.raises(ContentRefused):
        extract(workspace, "dst", size=64, workers=1, quiet=True)
    assert list(workspace.aligned("dst").iterdir()) == []


@pytest.fixture(scope="module")
def crossing():
    return two_person_clip(n_frames=12)


def _nearest_actor(clip, frame, landmarks):
    d = [np.inf if g is None else np.abs(landmarks - g).mean() for g in clip.landmarks[frame]]
    return int(np.argmin(d))


def test_extract_writes_faces_that_round_trip(workspace):
    img, lm = sample_photo("takeo")
    clip = render_clip([Actor(img, lm, start=(0.4, 0.5), end=(0.6, 0.5), face_px=(90, 100))], n_frames=5)
    _write_frames(workspace, "dst", clip.frames)
    report = extract(workspace, "dst", size=160, workers=1, quiet=True)
    assert report["frames"] == 5 and report["faces_written"] == 5 and report["frames_without_face"] == 0
    files = list_aligned(workspace.aligned("dst"))
    assert [f.name for f in files] == [f"{i:05d}_0.jpg" for i in range(5)]
    for i, path in enumerate(files):
        face = read_aligned(path)
        m = face.meta
        assert face.image.shape == (160, 160, 3) and m.size == 160 and m.face_type == "whole_face"
        assert m.source.filename == f"{i:05d}.png" and tuple(m.source.frame_size) == (320, 240)
        assert set(m.pose) == {"yaw", "pitch", "roll"} and m.sharpness > 0 and not m.interpolated
        assert m.detector["name"] == "mediapipe+dlib" and "dlib" in m.detector["version"]
        # aligned -> frame lands on the source landmarks
        back = transform_points(m.landmarks_array, invert(m.matrix))
        assert np.abs(back - m.source_landmarks).max() < 1.5
        # and the landmarks are on the rendered face (ground truth from the photo's annotation)
        assert np.abs(m.source_landmarks - (clip.landmarks[i][0] - 1)).mean() < 4.0
        assert (workspace.aligned_debug / f"{i:05d}.jpg").is_file()
    saved = json.loads((workspace.data("dst") / REPORT_FILE).read_text())
    assert saved["faces_written"] == 5


def test_tracking_keeps_one_person_and_reference_picks_the_other(workspace, crossing, tmp_path):
    _write_frames(workspace, "dst", crossing.frames)
    report = extract(workspace, "dst", size=96, workers=1, quiet=True)
    assert report["identities_found"] == 2 and report["multi_face_frames"] > 0
    files = list_aligned(workspace.aligned("dst"))
    who = {_nearest_actor(crossing, i, read_aligned(f).meta.source_landmarks) for i, f in enumerate(files)}
    assert len(files) == 12 and len(who) == 1
    kept = who.pop()
    # reference = the other person's photo
    other = ("einstein", "takeo")[1 - kept]
    ref_img, _ = sample_photo(other)
    ref = tmp_path / f"{other}.jpg"
    write_image(ref, ref_img)
    report = extract(workspace, "dst", size=96, workers=1, quiet=True, reference=[ref])
    metas = {int(f.stem[:5]): read_aligned(f).meta for f in list_aligned(workspace.aligned("dst"))}
    detected = {i: m for i, m in metas.items() if not m.interpolated}
    # the other person is hidden while they cross: those frames are interpolated, not taken from the front face
    assert 0 < len(detected) < 12 and report["interpolated_frames"] == len(metas) - len(detected)
    assert {_nearest_actor(crossing, i, m.source_landmarks) for i, m in detected.items()} == {1 - kept}
    assert report["frames_detected_this_run"] == 0  # detections were reused


def test_gap_filling_marks_blanked_frames_interpolated(workspace):
    img, lm = sample_photo("einstein")
    clip = render_clip([Actor(img, lm, face_px=(100, 100))], n_frames=8, blank_frames=(3, 4))
    _write_frames(workspace, "dst", clip.frames)
    report = extract(workspace, "dst", size=96, workers=1, quiet=True, smooth=True)
    assert report["interpolated_frames"] == 2 and report["faces_written"] == 8
    for i, f in enumerate(list_aligned(workspace.aligned("dst"))):
        assert read_aligned(f).meta.interpolated == (i in (3, 4))


def test_resume_skips_work_and_redo_deleted(workspace):
    img, lm = sample_photo("takeo")
    _write_frames(workspace, "dst", render_clip([Actor(img, lm)], n_frames=4).frames)
    extract(workspace, "dst", size=96, workers=1, quiet=True)
    before = {p.name: p.stat().st_mtime_ns for p in list_aligned(workspace.aligned("dst"))}
    again = extract(workspace, "dst", size=96, workers=1, quiet=True)
    assert again["frames_detected_this_run"] == 0 and again["faces_written_this_run"] == 0
    assert before == {p.name: p.stat().st_mtime_ns for p in list_aligned(workspace.aligned("dst"))}
    (workspace.aligned_debug / "00002.jpg").unlink()
    redo = extract(workspace, "dst", size=96, workers=1, quiet=True, redo_deleted=True)
    assert redo["frames_detected_this_run"] == 1 and redo["faces_written_this_run"] == 1
    assert (workspace.aligned_debug / "00002.jpg").is_file()
    progress = json.loads((workspace.data("dst") / PROGRESS_FILE).read_text())
    assert set(progress["frames"]) == {f"{i:05d}.png" for i in range(4)}


def test_hand_placed_landmarks_override(workspace, tmp_path):
    img, lm = sample_photo("takeo")
    clip = render_clip([Actor(img, lm)], n_frames=3)
    _write_frames(workspace, "src", clip.frames)
    hand = clip.landmarks[1][0] + [2.0, 0.0]
    path = tmp_path / "lm.json"
    path.write_text(json.dumps({"00001.png": hand.tolist()}))
    report = extract(workspace, "src", size=96, workers=1, quiet=True, landmarks_file=path)
    assert report["manual_frames"] == 1
    meta = read_aligned(workspace.aligned("src") / "00001_0.jpg").meta
    assert np.allclose(meta.source_landmarks, hand, atol=1e-3) and meta.detector["name"] == "manual"
    path.write_text(json.dumps({"missing.png": hand.tolist()}))
    with pytest.raises(FacecastError, match="not among the frames"):
        extract(workspace, "src", size=96, workers=1, quiet=True, landmarks_file=path)


def test_errors(workspace):
    with pytest.raises(FacecastError, match="no frames in"):
        extract(workspace, "src", workers=1, quiet=True)
    _write_frames(workspace, "src", [np.full((120, 160, 3), 90, np.uint8)] * 2)
    with pytest.raises(FacecastError, match="no face found in any of the 2 frames"):
        extract(workspace, "src", workers=1, quiet=True)
    (workspace.data("src") / "00002.png").write_bytes(b"not an image")
    with pytest.raises(FacecastError, match="00002.png: not a readable image"):
        extract(workspace, "src", workers=1, quiet=True)
    with pytest.raises(FacecastError, match="unknown face type"):
        extract(workspace, "src", face_type="chin", workers=1, quiet=True)


def test_cli_extract_parallel_json(workspace):
    img, lm = sample_photo("takeo")
    _write_frames(workspace, "src", render_clip([Actor(img, lm)], n_frames=3).frames)
    code, out, err = run_cli("extract", "src", "-w", str(workspace.root), "--size", "64", "--workers", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["faces_written"] == 3
    code, out, err = run_cli("extract", "sideways", "-w", str(workspace.root))
    assert code != 0 and "side must be src or dst" in err and "Traceback" not in err


def test_workers_compute_the_trackers_descriptors(workspace, monkeypatch):
    """Phase 1 records a descriptor for every face on frames 0, REFRESH, 2*REFRESH, ... (the tracker's
    appearance samples), equal to one computed afresh; the parent then computes only what tracking adds."""
    from facecast.faces import identity
    from facecast.faces.extract import _detect_chunk
    from facecast.faces.track import REFRESH

    img, lm = sample_photo("takeo")
    n = REFRESH + 3
    _write_frames(workspace, "dst", render_clip([Actor(img, lm)], n_frames=n).frames)
    paths = sorted(str(p) for p in workspace.data("dst").iterdir())
    records = _detect_chunk(paths[:4], 0.5, [0, 1, 2, 3], 2)
    assert [("descriptor" in r["faces"][0]) for r in records] == [True, False, True, False]
    image = read_image(paths[2])
    again = identity.face_descriptor(image, np.asarray(records[2]["faces"][0]["landmarks"], np.float64))
    assert np.allclose(records[2]["faces"][0]["descriptor"], again, atol=1e-5)

    calls = []
    real = identity.face_descriptor
    monkeypatch.setattr(identity, "face_descriptor", lambda *a, **k: calls.append(1) or real(*a, **k))
    report = extract(workspace, "dst", size=96, workers=1, quiet=True)
    progress = json.loads((workspace.data("dst") / PROGRESS_FILE).read_text())
    described = sorted(int(name[:5]) for name, rec in progress["frames"].items() if any("descriptor" in f for f in rec["faces"]))
    assert described == [0, REFRESH]
    # in-process (workers=1) the worker-side calls show too: exactly the two sampled frames, nothing more
    assert len(calls) == 2 and report["descriptors_computed"] == 2


def test_a_box_with_no_face_in_it_is_not_a_face():
    from facecast.faces.detect import detect_faces, unseen
    from facecast.faces.landmarks import place_landmarks

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    empty = place_landmarks(noise, (200, 150, 400, 350))
    assert not empty.seen and unseen(empty, 0.5) and not unseen(empty, 0.9)  # strong boxes are kept
    image, _lm = sample_photo("takeo")
    (face,) = detect_faces(image)
    assert place_landmarks(image, face.rect).seen
