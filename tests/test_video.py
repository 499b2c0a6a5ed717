"""Video in/out: round trips on clips rendered from real photos, resume, and every bad input.

Clips are tiny (160x120, 24 frames at 12 fps) so the whole file runs in seconds."""

from __future__ import annotations

import errno
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.media import container
from facecast.media import decode as decode_mod
from facecast.media import video as V
from facecast.media.images import read_image, write_image
from tests.conftest import run_cli

FPS = 12
N = 24
SIZE = (160, 120)


# ----------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """An H.264 + AAC clip of Einstein's face moving over a background (real photo, synthetic motion)."""
    from facecast.media.synth import Actor, render_clip, sample_photo, write_clip

    img, lm = sample_photo("einstein")
    frames = render_clip(
        [Actor(img, lm, start=(0.3, 0.5), end=(0.7, 0.45), face_px=(50, 62))], size=SIZE, n_frames=N, fps=FPS
    ).frames
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames, FPS)


@pytest.fixture(scope="module")
def extracted(clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("frames") / "frames"
    V.frames(clip, out, quiet=True)
    return out


def decode(path: Path) -> tuple[list[np.ndarray], float, float]:
    """All frames as RGB, the stream's fps, and the duration the frames span (last pts - first + 1 frame)."""
    import av

    with av.open(str(path)) as box:
        vs = box.streams.video[0]
        rate = float(vs.average_rate)
        imgs, times = [], []
        for fr in box.decode(vs):
            imgs.append(fr.to_ndarray(format="rgb24"))
            times.append(float(fr.pts * vs.time_base))
    return imgs, rate, times[-1] - times[0] + 1 / rate


def audio_seconds(path: Path) -> float | None:
    """Decoded audio length (samples / rate): what a player actually plays."""
    import av

    with av.open(str(path)) as box:
        if not box.streams.audio:
            return None
        a = box.streams.audio[0]
        samples = sum(fr.samples for fr in box.decode(a))
        return samples / a.codec_context.sample_rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------- probe


def test_probe_reads_stream_facts(clip):
    info = V.probe(clip)
    assert (info.width, info.height) == SIZE
    assert info.fps == FPS and info.frame_count == N
    assert info.codec == "h264" and info.has_audio and info.audio_codec == "aac"
    assert abs(info.duration - N / FPS) < 1 / FPS


def test_frames_writes_numbered_frames_and_metadata(clip, extracted):
    names = sorted(p.name for p in extracted.glob("*.png"))
    assert names == [f"{i:05d}.png" for i in range(1, N + 1)]
    meta = json.loads((extracted / "frames.json").read_text())
    assert meta["frame_count"] == N and meta["fps"] == FPS and meta["complete"]
    assert meta["has_audio"] and meta["audio"]["sample_rate"] == 44100
    assert meta["size"] == list(SIZE) and meta["time_base"] and meta["source"] == str(clip.resolve())
    # frames are the decoded video, exactly
    decoded, _, _ = decode(clip)
    assert np.array_equal(read_image(extracted / "00007.png"), decoded[6])


# -------------------------------------------------------------------------------------- round trips


def test_roundtrip_h264_keeps_timing_audio_and_quality(clip, extracted, tmp_path):
    out = tmp_path / "out.mp4"
    res = V.video(extracted, out, codec="h264", crf=18, audio_from=clip, quiet=True)
    assert res.audio == "copied"
    imgs, rate, dur = decode(out)
    assert abs(len(imgs) - N) <= 1 and rate == FPS
    assert abs(dur - N / FPS) <= 1 / FPS
    assert abs(audio_seconds(out) - audio_seconds(clip)) <= 0.05
    src = [read_image(p) for p in sorted(extracted.glob("*.png"))]
    worst = min(psnr(a, b) for a, b in zip(src, imgs))
    assert worst >= 32.0, worst


def test_roundtrip_ffv1_is_lossless(clip, extracted, tmp_path):
    out = tmp_path / "out.mkv"
    V.video(extracted, out, codec="ffv1", audio_from=clip, quiet=True)
    imgs, rate, dur = decode(out)
    src = [read_image(p) for p in sorted(extracted.glob("*.png"))]
    assert len(imgs) == N and rate == FPS and abs(dur - N / FPS) <= 1 / FPS
    assert all(np.array_equal(a, b) for a, b in zip(src, imgs))
    assert abs(audio_seconds(out) - audio_seconds(clip)) <= 0.05


@pytest.mark.parametrize("codec,suffix", [("hevc", ".mp4"), ("prores", ".mov")])
def test_hevc_and_prores_are_playable(extracted, codec, suffix, tmp_path):
    out = tmp_path / f"out{suffix}"
    V.video(extracted, out, codec=codec, quiet=True)  # no audio: must still work
    imgs, rate, _ = decode(out)
    assert len(imgs) == N and rate == FPS
    src = read_image(extracted / "00010.png")
    assert psnr(src, imgs[9]) >= 30
    assert audio_seconds(out) is None


def test_prores_4444_carries_the_mask_as_alpha(extracted, tmp_path):
    import av

    masks = tmp_path / "masks"
    masks.mkdir()
    for p in sorted(extracted.glob("*.png")):
        m = np.zeros(SIZE[::-1], np.uint8)
        m[30:90, 40:120] = 255
        write_image(masks / p.name, m)
    out = tmp_path / "alpha.mov"
    V.video(extracted, out, codec="prores", mask_dir=masks, quiet=True)
    with av.open(str(out)) as box:
        fr = next(box.decode(video=0))
        assert fr.format.name.startswith("yuva444p")
        alpha = fr.to_ndarray(format="rgba")[..., 3]
    assert alpha[60, 80] > 250 and alpha[5, 5] < 5


def test_finalize_hook_runs_on_the_temporary_file(extracted, tmp_path):
    out = tmp_path / "signed.mp4"
    seen = []

    def finalize(tmp: Path) -> None:
        seen.append((tmp, tmp.stat().st_size, out.exists()))
        with open(tmp, "ab") as fh:  # stands in for the provenance signer rewriting the file
            fh.write(b"")

    V.video(extracted, out, quiet=True, finalize=finalize)
    (tmp, size, existed), = seen
    assert tmp != out and tmp.parent == out.parent and size > 0 and not existed
    assert out.exists() and not tmp.exists()

    def broken(tmp: Path) -> None:
        raise FacecastError("signing failed")

    with pytest.raises(FacecastError, match="signing failed"):
        V.video(extracted, tmp_path / "unsigned.mp4", quiet=True, finalize=broken)
    assert not (tmp_path / "unsigned.mp4").exists() and not leftovers(tmp_path)


def test_audio_is_reencoded_when_the_container_refuses_it(tmp_path, extracted):
    """PCM audio cannot be copied into mp4: it must arrive as AAC of the same length."""
    import av

    wav_src = tmp_path / "pcm.mkv"
    sr = 48000
    with av.open(str(wav_src), "w") as box:
        a = box.add_stream("pcm_s16le", rate=sr)
        a.layout = "stereo"
        t = np.arange(sr * 2) / sr
        pcm = (np.sin(2 * np.pi * 330 * t) * 8000).astype(np.int16)
        inter = np.repeat(pcm, 2)[None, :]
        for i in range(0, inter.shape[1], 4096):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(inter[:, i : i + 4096]), format="s16", layout="stereo")
            fr.sample_rate, fr.pts = sr, i // 2
            for pkt in a.encode(fr):
                box.mux(pkt)
        for pkt in a.encode(None):
            box.mux(pkt)
    out = tmp_path / "out.mp4"
    res = V.video(extracted, out, audio_from=wav_src, quiet=True)
    assert res.audio.startswith("re-encoded")
    assert V.probe(out).audio_codec == "aac"
    assert abs(audio_seconds(out) - N / FPS) <= 0.05  # cut to the video's length


def test_start_end_and_audio_piece(clip, extracted, tmp_path):
    part = tmp_path / "part"
    res = V.frames(clip, part, start="f5", end="f12", quiet=True)
    assert res.frame_count == 8
    assert np.array_equal(read_image(part / "00001.png"), read_image(extracted / "00005.png"))
    assert np.array_equal(read_image(part / "00008.png"), read_image(extracted / "00012.png"))
    out = tmp_path / "part.mp4"
    V.video(part, out, audio_from=clip, quiet=True)
    imgs, _, dur = decode(out)
    assert len(imgs) == 8 and abs(dur - 8 / FPS) <= 1 / FPS
    assert abs(audio_seconds(out) - 8 / FPS) <= 0.05
    # timecode and seconds give the same cut
    tc = V.frames(clip, tmp_path / "tc", start="00:00.5", end="1.5", quiet=True)
    assert tc.frame_count == 12
    assert np.array_equal(read_image(tmp_path / "tc" / "00001.png"), read_image(extracted / "00007.png"))


def test_fps_resampling_keeps_duration(clip, extracted, tmp_path):
    res = V.frames(clip, tmp_path / "half", fps=6, quiet=True)
    assert res.frame_count == N // 2
    assert np.array_equal(read_image(tmp_path / "half" / "00002.png"), read_image(extracted / "00003.png"))
    out = tmp_path / "half.mp4"
    V.video(tmp_path / "half", out, audio_from=clip, quiet=True)
    _, rate, dur = decode(out)
    assert rate == 6 and abs(dur - N / FPS) <= 1 / 6


def test_variable_frame_rate_lands_on_a_constant_grid(tmp_path):
    """Frames at irregular times are duplicated/dropped by timestamp (nearest slot, last one wins)."""
    import av

    path = tmp_path / "vfr.mkv"
    times_ms = [0, 100, 300, 350, 400, 700]
    with av.open(str(path), "w") as box:
        vs = box.add_stream("ffv1", rate=1000)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "bgr0"
        for i, ms in enumerate(times_ms):
            vf = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 10 * i, np.uint8), format="rgb24")
            vf.pts, vf.time_base = ms, Fraction(1, 1000)
            box.mux(vs.encode(vf))
        box.mux(vs.encode(None))
    out = tmp_path / "grid"
    res = V.frames(path, out, fps=10, quiet=True)
    levels = [int(read_image(p)[0, 0, 0]) for p in sorted(out.glob("*.png"))]
    assert res.frame_count in (7, 8)  # 8 when the container counts the last frame's 1 ms
    assert levels[:7] == [0, 10, 10, 20, 40, 40, 40]


@pytest.mark.parametrize("bad", ["1:2:3:4", "abc", "f0", "-1"])
def test_bad_times_are_refused(bad):
    with pytest.raises(FacecastError, match="--start"):
        V.parse_time(bad, 25, "start")


# ------------------------------------------------------------------------------------------- resume


def test_resume_skips_written_frames(clip, extracted, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(extracted, out)
    for name in ("00003.png", "00020.png"):
        (out / name).unlink()
    before = (out / "00010.png").stat().st_mtime_ns
    res = V.frames(clip, out, quiet=True)
    assert (res.written, res.skipped) == (2, N - 2)
    assert (out / "00010.png").stat().st_mtime_ns == before
    assert np.array_equal(read_image(out / "00003.png"), read_image(extracted / "00003.png"))
    again = V.frames(clip, out, quiet=True)  # finished: nothing decoded or written again
    assert (again.written, again.skipped, again.frame_count) == (0, N, N)
    with pytest.raises(FacecastError, match="different extraction"):
        V.frames(clip, out, fps=6, quiet=True)


def test_interrupt_leaves_complete_frames_and_resumes(clip, extracted, tmp_path, monkeypatch):
    out = tmp_path / "ctrl_c"
    real = decode_mod._save_frame
    calls = {"n": 0}

    def flaky(path, img, fmt, quality):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        real(path, img, fmt, quality)

    monkeypatch.setattr(decode_mod, "_save_frame", flaky)
    with pytest.raises(KeyboardInterrupt):
        V.frames(clip, out, quiet=True, workers=1)
    done = sorted(out.glob("*.png"))
    assert 1 <= len(done) <= 5 and not leftovers(out)
    assert all(np.array_equal(read_image(p), read_image(extracted / p.name)) for p in done)
    monkeypatch.setattr(decode_mod, "_save_frame", real)
    res = V.frames(clip, out, quiet=True)
    assert res.skipped == len(done) and res.frame_count == N


# ------------------------------------------------------------------------------------ image folders


def test_image_folder_is_renumbered_in_natural_order(astronaut, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    small = astronaut[:120, :160]
    for i in (1, 2, 10):
        img = small.copy()
        img[0, 0] = i  # mark each file
        write_image(src / f"shot{i}.png", img)
    res = V.frames(src, tmp_path / "out", fmt="png", quiet=True)
    assert res.frame_count == 3 and res.fps == V.DEFAULT_IMAGE_FPS
    marks = [read_image(tmp_path / "out" / f"0000{k}.png")[0, 0, 0] for k in (1, 2, 3)]
    assert marks == [1, 2, 10]
    assert (tmp_path / "out" / "00003.png").read_bytes() == (src / "shot10.png").read_bytes()


# ------------------------------------------------------------------------------------- bad input


def _check_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err  # (a progress bar line may precede it)
    for n in needles:
        assert n in errors[0], err


def test_missing_file(tmp_path):
    code, _, err = run_cli("frames", str(tmp_path / "nope.mp4"), str(tmp_path / "out"))
    _check_error(code, err, "nope.mp4", "file not found")
    assert not (tmp_path / "out").exists()


def test_not_a_video(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n")
    code, _, err = run_cli("frames", str(fake), str(tmp_path / "out"))
    _check_error(code, err, "fake.mp4", "not a video file")
    assert not (tmp_path / "out").exists()


def _mux_silence(box) -> None:
    """Add a short silent AAC stream to an open PyAV output container."""
    import av

    a = box.add_stream("aac", rate=44100)
    a.layout = "mono"
    fr = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="flt", layout="mono")
    fr.sample_rate, fr.pts = 44100, 0
    for p in [*a.encode(fr), *a.encode(None)]:
        box.mux(p)


def test_audio_only_file(tmp_path):
    import av

    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as box:
        _mux_silence(box)
    code, _, err = run_cli("frames", str(path), str(tmp_path / "out"))
    _check_error(code, err, "voice.m4a", "no video stream")
    assert not (tmp_path / "out").exists()


def test_zero_frames(tmp_path):
    import av

    path = tmp_path / "empty.mkv"  # a video stream that holds zero frames (beside a little audio)
    with av.open(str(path), "w") as box:
        vs = box.add_stream("ffv1", rate=12)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "bgr0"
        _mux_silence(box)
    code, _, err = run_cli("frames", str(path), str(tmp_path / "out"))
    _check_error(code, err, "empty.mkv", "no frames")
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "no_frames"
    empty.mkdir()
    code, _, err = run_cli("video", str(empty), str(tmp_path / "o.mp4"))
    _check_error(code, err, "zero frames")
    assert not (tmp_path / "o.mp4").exists() and not leftovers(tmp_path)


def test_unreadable_audio_source(extracted, tmp_path):
    fake = tmp_path / "voice.mp4"
    fake.write_text("not audio")
    code, _, err = run_cli("video", str(extracted), str(tmp_path / "o.mp4"), "--audio-from", str(fake))
    _check_error(code, err, "voice.mp4", "not a video file")
    assert not (tmp_path / "o.mp4").exists() and not leftovers(tmp_path)


def test_unwritable_output(clip, extracted, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli("frames", str(clip), str(blocker / "frames"))
    _check_error(code, err, "cannot create output folder")
    code, _, err = run_cli("video", str(extracted), str(blocker / "out.mp4"))
    _check_error(code, err, "is a file")
    assert blocker.read_text() == "x" and not leftovers(tmp_path)


def test_full_disk_while_writing_frames(clip, tmp_path, monkeypatch):
    import os as _os

    real = _os.replace
    calls = {"n": 0}

    def replace(a, b):
        calls["n"] += 1
        if calls["n"] > 4:  # frames.json and a few frames succeed, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(a, b)

    monkeypatch.setattr("facecast.media.images.os.replace", replace)
    out = tmp_path / "full"
    with pytest.raises(FacecastError, match="No space left on device"):
        V.frames(clip, out, quiet=True, workers=1)
    assert not leftovers(out)
    monkeypatch.undo()
    assert V.frames(clip, out, quiet=True).frame_count == N  # resumes once there is room


def test_full_disk_while_writing_video(clip, extracted, tmp_path, monkeypatch):
    real = container.mux
    calls = {"n": 0}

    def mux(box, packets):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(box, packets)

    monkeypatch.setattr(container, "mux", mux)
    out = tmp_path / "out.mp4"
    with pytest.raises(FacecastError, match="disk full"):
        V.video(extracted, out, audio_from=clip, quiet=True)
    assert not out.exists() and not leftovers(tmp_path)


def test_mixed_sizes(extracted, astronaut, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(extracted, mixed)
    write_image(mixed / "00005.png", astronaut[:100, :100])
    code, _, err = run_cli("video", str(mixed), str(tmp_path / "o.mp4"))
    _check_error(code, err, "00005.png", "100x100", "160x120")
    assert not (tmp_path / "o.mp4").exists() and not leftovers(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    write_image(imgs / "a.png", astronaut[:120, :160])
    write_image(imgs / "b.png", astronaut[:100, :100])
    code, _, err = run_cli("frames", str(imgs), str(tmp_path / "out"))
    _check_error(code, err, "b.png", "differs")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- workspace CLI


def test_workspace_frames_and_video_cli(clip, workspace):
    shutil.copy(clip, workspace.video("dst"))
    code, out, err = run_cli("frames", "dst", "-w", str(workspace.root), "--json")
    assert code == 0, err
    assert json.loads(out)["frame_count"] == N
    assert (workspace.data("dst") / "frames.json").is_file()
    for p in workspace.data("dst").glob("*.png"):  # stand-in for merged frames
        shutil.copy(p, workspace.merged / p.name)
    code, out, err = run_cli("video", "-w", str(workspace.root), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["path"] == str(workspace.result) and summary["audio"] == "copied"
    imgs, rate, _ = decode(workspace.result)
    assert len(imgs) == N and rate == FPS
    assert abs(audio_seconds(workspace.result) - audio_seconds(clip)) <= 0.05
