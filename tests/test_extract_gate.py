"""extract's sampled content gate, resume re-checks, the gate verdict in the metadata, and workers that die
with their parent (issue 15 gate policy, issue 13 bypass 2, issue 11 item 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facecast.errors import ContentRefused
from facecast.faces.aligned import list_aligned, read_aligned
from facecast.faces.extract import extract
from facecast.faces.framegate import EVERY, SampledGate
from facecast.media.images import write_image
from facecast.media.synth import Actor, render_clip, sample_photo
from facecast.provenance.content_gate import ContentGate

MARK = np.array([255, 0, 255], np.uint8)


def _marked(frame: np.ndarray, where: tuple[float, float], frac: float = 1 / 16) -> np.ndarray:
    """The frame with a solid marker square covering `frac` of its area (the stand-in 'explicit' content)."""
    out = frame.copy()
    h, w = out.shape[:2]
    side = int(np.sqrt(frac * h * w))
    y, x = int(where[1] * (h - side)), int(where[0] * (w - side))
    out[y:y + side, x:x + side] = MARK
    return out


def _marker_scorer(img: np.ndarray) -> float:
    """Stand-in classifier: 'explicit' when >= 1 % of the pixels are marker-coloured."""
    m = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] > 200)
    return 0.99 if m.mean() >= 0.01 else 0.01


def _stand_in(monkeypatch) -> ContentGate:
    from facecast import provenance

    gate = ContentGate(scorer=_marker_scorer)
    monkeypatch.setattr(provenance, "content_gate", lambda: gate)
    return gate


@pytest.fixture(scope="module")
def slow_clip():
    """A talking-head-like clip: the face drifts slowly, so most frames are covered rather than scored."""
    img, lm = sample_photo("takeo")
    return render_clip([Actor(img, lm, start=(0.48, 0.5), end=(0.52, 0.5), face_px=(90, 92), rotation_deg=2,
                              brightness=0.03)], size=(320, 240), n_frames=24, fps=25)


def _run_gate(frames: list[np.ndarray]) -> SampledGate:
    sampled = SampledGate(ContentGate(scorer=_marker_scorer))
    for i, f in enumerate(frames):
        sampled(f"{i:05d}", f)
    return sampled


def test_policy_samples_a_quiet_clip(slow_clip):
    sampled = _run_gate(slow_clip.frames)
    assert sampled.frames == 24 and sampled.scored < 24  # it does skip frames (the point of the policy)
    assert sampled.scored >= -(-24 // EVERY)  # and scores at least every EVERY-th


@pytest.mark.parametrize("length", [1, 2, 3])
def test_a_short_marked_segment_is_caught_at_every_position(slow_clip, length):
    frames = slow_clip.frames
    rng = np.random.default_rng(length)
    for start in range(len(frames) - length + 1):
        where = tuple(rng.uniform(0, 1, 2))
        clip = [(_marked(f, where) if start <= i < start + length else f) for i, f in enumerate(frames)]
        with pytest.raises(ContentRefused):
            _run_gate(clip)


def test_a_marker_fading_in_slowly_is_caught(slow_clip):
    """Slow drift adds up against the last *scored* frame, so a gradual change is scored before it passes."""
    frames = []
    for i, f in enumerate(slow_clip.frames):
        a = min(1.0, max(0.0, (i - 4) / 14))
        frames.append(np.clip(f * (1 - a) + _marked(f, (0.3, 0.3)) * a, 0, 255).astype(np.uint8))
    with pytest.raises(ContentRefused):
        _run_gate(frames)


def _write_frames(ws, side, frames):
    for i, f in enumerate(frames):
        write_image(ws.data(side) / f"{i:05d}.png", f)


def _gate_meta(meta) -> dict:
    return getattr(meta, "content_gate", None) or meta.extra.get("content_gate")


def test_extract_refuses_a_marked_segment_and_writes_nothing(workspace, monkeypatch, slow_clip):
    _stand_in(monkeypatch)
    frames = [(_marked(f, (0.1, 0.8)) if i in (13, 14) else f) for i, f in enumerate(slow_clip.frames[:16])]
    _write_frames(workspace, "dst", frames)
    with pytest.raises(ContentRefused, match="0001[34].png"):
        extract(workspace, "dst", size=64, workers=1, quiet=True)
    assert list(workspace.aligned("dst").iterdir()) == []


def test_faces_carry_their_frame_gate_verdict(workspace, monkeypatch, slow_clip):
    _stand_in(monkeypatch)
    _write_frames(workspace, "dst", slow_clip.frames[:10])
    extract(workspace, "dst", size=64, workers=1, quiet=True)
    verdicts = [_gate_meta(read_aligned(p).meta) for p in list_aligned(workspace.aligned("dst"))]
    assert len(verdicts) == 10
    for v in verdicts:
        assert v["verdict"] == "ok" and v["model"] == "stand-in" and v["score"] < 0.5
    policies = {v["policy"].split(" (")[0].split(" by ")[0] for v in verdicts}
    assert "scored" in policies and "covered" in policies  # sampled frames say what covered them


def test_resume_gates_frames_swapped_in_since(workspace, monkeypatch, slow_clip):
    """A frame replaced after detection is never written from unchecked bytes, whether or not its file
    looks unchanged (same size class and mtime restored)."""
    _stand_in(monkeypatch)
    _write_frames(workspace, "dst", slow_clip.frames[:8])
    extract(workspace, "dst", size=64, workers=1, quiet=True)
    aligned = workspace.aligned("dst")
    before = {p.name: p.stat().st_mtime_ns for p in list_aligned(aligned)}
    frame = workspace.data("dst") / "00005.png"
    st = frame.stat()
    write_image(frame, _marked(slow_clip.frames[5], (0.5, 0.5)))
    # 1. the swap keeps the old mtime: detection is reused, but the rewrite reads the frame and checks it
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns))
    (aligned / "00005_0.jpg").unlink()
    with pytest.raises(ContentRefused, match="00005.png"):
        extract(workspace, "dst", size=64, workers=1, quiet=True)
    assert not (aligned / "00005_0.jpg").exists()
    # 2. a plain swap (new mtime): the frame is detected and gated again
    write_image(frame, _marked(slow_clip.frames[5], (0.2, 0.2)))
    with pytest.raises(ContentRefused, match="00005.png"):
        extract(workspace, "dst", size=64, workers=1, quiet=True)
    after = {p.name: p.stat().st_mtime_ns for p in list_aligned(aligned)}
    assert after == {k: v for k, v in before.items() if k != "00005_0.jpg"}  # nothing else rewritten


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stderr(proc) -> str:
    return proc.stderr.read().decode(errors="replace")[-2000:] if proc.poll() is not None else "(running)"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
def test_workers_die_with_a_killed_extract(bare_workspace):
    import facecast

    img, lm = sample_photo("takeo")
    clip = render_clip([Actor(img, lm, face_px=(60, 62))], size=(160, 120), n_frames=60)
    _write_frames(bare_workspace, "dst", clip.frames)
    src = str(Path(facecast.__file__).resolve().parents[1])
    code = ("from facecast.workspace import Workspace\nfrom facecast.faces.extract import extract\n"
            f"extract(Workspace.open({str(bare_workspace.root)!r}), 'dst', size=64, workers=2, quiet=True)\n")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p in _children(proc.pid)
                       if b"spawn_main" in _cmdline(p)]
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, f"extract did not start its two workers: {proc.poll()} {_stderr(proc)}"
        time.sleep(1.5)  # mid-run: the workers are loading models or detecting
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "worker processes outlived the killed extract"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_small_size_scoring_agrees_with_the_full_frame():
    """The real model on gate_thumbnail (what extract scores) against the whole photo."""
    from facecast.provenance import content_gate
    from facecast.provenance.content_gate import GATE_INPUT_PX, gate_thumbnail

    gate = content_gate()
    for name in ("takeo", "astronaut", "einstein", "breakingbad"):
        photo = sample_photo(name)[0]
        big = np.ascontiguousarray(np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1))  # > 512 px: the two-step path
        for img in (photo, big):
            thumb = gate_thumbnail(img)
            assert thumb.shape == (GATE_INPUT_PX, GATE_INPUT_PX, 3)
            assert abs(gate.score(thumb) - gate.score(img)) < 0.01
