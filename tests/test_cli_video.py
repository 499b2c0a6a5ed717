"""`facecast frames` / `facecast video` as a user meets them: phone clips with rotation metadata, an
unfinished merge, the model named in the result's manifest, `src` beside a `src/` folder."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from facecast.media import video as V
from facecast.media.images import read_image, write_image
from facecast.media.synth import Actor, render_clip, sample_photo, write_clip
from facecast.workspace import Workspace

FPS = 12


def _rotated_clip(path: Path, frames: list[np.ndarray], degrees: int) -> Path:
    """What a phone writes: the picture stored turned, plus a display matrix that turns it back.

    The stored picture is the upright one turned `degrees` clockwise; the stream's display rotation
    (counter-clockwise, as PyAV's `set_display_rotation` takes it) undoes that."""
    import av

    stored = [np.ascontiguousarray(np.rot90(f, -(degrees // 90))) for f in frames]
    h, w = stored[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "12", "preset": "veryfast"}
        vs.set_display_rotation(degrees)
        for i, img in enumerate(stored):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def upright():
    img, lm = sample_photo("takeo")
    return render_clip([Actor(img, lm, start=(0.45, 0.5), end=(0.55, 0.5), face_px=(80, 90), rotation_deg=2.0)],
                       size=(240, 160), n_frames=4, fps=FPS)


@pytest.mark.parametrize("degrees", [90, 270])
def test_rotated_clip_decodes_upright(tmp_path, upright, degrees):
    clip = _rotated_clip(tmp_path / "phone.mp4", upright.frames, degrees)
    info = V.probe(clip)
    assert info.rotation == degrees and (info.width, info.height) == (240, 160)
    res = V.frames(clip, tmp_path / "frames", quiet=True)
    assert tuple(res.size) == (240, 160)
    for i, path in enumerate(sorted((tmp_path / "frames").glob("*.png"))):
        got = read_image(path).astype(float)
        assert got.shape == (160, 240, 3)
        assert np.abs(got - upright.frames[i]).mean() < 6  # upright, up to H.264 loss


def test_rotated_clip_extracts_upright_faces(workspace, upright):
    from facecast.faces.extract import extract

    clip = _rotated_clip(workspace.root / "data_dst.mp4", upright.frames, 90)
    V.frames(clip, workspace.data("dst"), quiet=True)
    report = extract(workspace, "dst", size=96, workers=1, quiet=True)
    assert report["faces_written"] == len(upright.frames)
    from facecast.faces.aligned import list_aligned, read_meta

    for i, path in enumerate(list_aligned(workspace.aligned("dst"))):
        meta = read_meta(path)
        assert abs(meta.pose["roll"]) < 15  # upright, not a quarter turn
        assert np.abs(meta.source_landmarks - (upright.landmarks[i][0] - 1)).mean() < 5.0


def test_rotated_clip_round_trips_upright_through_video(tmp_path, upright):
    clip = _rotated_clip(tmp_path / "phone.mp4", upright.frames, 90)
    V.frames(clip, tmp_path / "frames", quiet=True)
    out = V.video(tmp_path / "frames", tmp_path / "out.mp4", quiet=True)
    assert tuple(out.size) == (240, 160)
    back = V.probe(tmp_path / "out.mp4")
    assert back.rotation == 0 and (back.width, back.height) == (240, 160)  # rendered upright


def _merge_like(ws: Workspace, n: int, merged: int) -> None:
    """dst frames and the first `merged` of them as merge output, plus the merge session of model alice."""
    from facecast.merge.session import Session

    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        write_image(ws.data("dst") / f"{i + 1:05d}.png", img)
        if i < merged:
            write_image(ws.merged / f"{i + 1:05d}.png", img)
    ws.model("alice").mkdir(parents=True, exist_ok=True)
    Session(ws.model("alice") / "merge_session.json", "alice").save()


def test_video_refuses_an_unfinished_merge(tmp_path):
    ws = Workspace.open(tmp_path / "ws", create=True)
    _merge_like(ws, n=8, merged=3)
    code, out, err = run_cli("video", "-w", str(ws.root), "--fps", "12")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "lacks 5 of 8" in err and "00004.png" in err and "--allow-partial" in err
    assert not ws.result.exists()
    code, out, err = run_cli("video", "-w", str(ws.root), "--fps", "12", "--allow-partial", "--json")
    assert code == 0, err
    assert V.probe(ws.result).frame_count == 3


def test_video_manifest_names_the_model_and_verify_says_the_same(tmp_path):
    import json

    from facecast.provenance.c2pa import read_manifest
    from facecast.provenance.verify import c2pa_line, trust_anchor

    ws = Workspace.open(tmp_path / "ws", create=True)
    _merge_like(ws, n=4, merged=4)
    code, out, err = run_cli("video", "-w", str(ws.root), "--fps", "12", "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "alice"
    manifest = read_manifest(ws.result, ws)
    assert manifest.claims["model"] == "alice" and manifest.trusted
    line = c2pa_line(manifest, trust_anchor(ws))
    assert line.startswith("valid, signed by workspace ") and "model alice" in line
    assert f"trusted against the CA of workspace {ws.root}" in line
    code, out, err = run_cli("verify", str(ws.result), "-w", str(ws.root), "--json")
    assert json.loads(out)["c2pa"] == line  # verify prints exactly the demo's wording
    code, out, err = run_cli("verify", str(ws.result), "--json")
    assert "trust not checked" in json.loads(out)["c2pa"] and "NOT" not in json.loads(out)["c2pa"]


def test_src_means_the_workspace_side_beside_a_src_folder(tmp_path):
    import subprocess
    import sys

    ws = Workspace.open(tmp_path / "ws", create=True)
    img, lm = sample_photo("einstein")
    write_clip(ws.video("src"), render_clip([Actor(img, lm)], size=(96, 64), n_frames=3, fps=FPS).frames, FPS)
    checkout = tmp_path / "checkout"
    (checkout / "src").mkdir(parents=True)  # like any code checkout
    proc = subprocess.run([sys.executable, "-m", "facecast", "frames", "src", "-w", str(ws.root), "--json"],
                          cwd=checkout, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(list(ws.data("src").glob("*.png"))) == 3
    # `./src` still means the folder: an (empty) image folder, refused as such, not the workspace video
    proc = subprocess.run([sys.executable, "-m", "facecast", "frames", "./src", str(tmp_path / "o")],
                          cwd=checkout, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no image files" in proc.stderr
    shutil.rmtree(checkout)
