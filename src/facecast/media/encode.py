"""`video`: numbered frames -> a video with the reference audio, labelled by the step its caller passes.

This module only encodes. Labelling (the C2PA manifest naming the model and the consent records) is
the caller's step, passed as `label(tmp_path) -> bool`; a caller that passes none gets the default
labeller (the workspace the output lies in, no model name), so no result can leave unlabelled.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from facecast.console import make_progress
from facecast.errors import FacecastError
from facecast.media import container
from facecast.media.audio import audio_copy_allowed, copy_audio, layout_name, reencode_audio
from facecast.media.container import open_input
from facecast.media.frame_files import FramesMeta, check_same_size, list_frames, read_frames_meta
from facecast.media.images import atomic_write_with, read_image

# The labelling step: signs the finished temporary file; False when its container cannot carry C2PA.
Labeller = Callable[[Path], bool]

CODECS = ("h264", "hevc", "prores", "ffv1")
# Which containers each codec may go into (checked before any work starts).
CONTAINERS: dict[str, tuple[str, ...]] = {
    "h264": (".mp4", ".mov", ".mkv", ".m4v"),
    "hevc": (".mp4", ".mov", ".mkv", ".m4v"),
    "prores": (".mov", ".mkv"),
    "ffv1": (".mkv",),
}


@dataclass
class VideoResult:
    path: str
    codec: str
    frame_count: int
    fps: float
    size: tuple[int, int]
    duration: float
    audio: str  # "copied", "re-encoded (aac)" or "none"
    audio_source: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _encoder_setup(codec: str, crf: int, alpha: bool) -> tuple[str, str, dict[str, str]]:
    """(FFmpeg encoder, pixel format, options) per codec; ffv1 in RGB (bgr0) so it is bit-exact."""
    if codec == "h264":
        return "libx264", "yuv420p", {"crf": str(crf), "preset": "medium"}
    if codec == "hevc":
        return "libx265", "yuv420p", {"crf": str(crf), "preset": "medium", "x265-params": "log-level=error"}
    if codec == "prores":
        if alpha:
            return "prores_ks", "yuva444p10le", {"profile": "4", "alpha_bits": "16"}
        return "prores_ks", "yuv422p10le", {"profile": "3"}
    return "ffv1", "bgr0", {"level": "3", "slicecrc": "1", "slices": "4", "g": "1"}



def _read_ahead(paths: list[Path], masks: list[Path] | None, workers: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Decode frame images on threads, in order, a few ahead of the encoder."""
    import cv2

    def load(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        img = read_image(paths[i])
        mask = read_image(masks[i], cv2.IMREAD_GRAYSCALE) if masks else None
        return img, mask

    with ThreadPoolExecutor(max(1, workers)) as pool:
        ahead = max(2, workers * 2)
        futures = [pool.submit(load, i) for i in range(min(ahead, len(paths)))]
        for i in range(len(paths)):
            result = futures[i].result()
            nxt = i + ahead
            if nxt < len(paths):
                futures.append(pool.submit(load, nxt))
            futures[i] = None  # type: ignore[call-overload]
            yield result


def _check_request(codec: str, out_path: Path, crf: int, mask_dir: str | Path | None) -> None:
    """Refuse an impossible request before any work: codec, container, quality, alpha."""
    if codec not in CODECS:
        raise FacecastError(f"--codec {codec!r}: choose one of {', '.join(CODECS)}")
    suffix = out_path.suffix.lower()
    if suffix not in CONTAINERS[codec]:
        raise FacecastError(
            f"{out_path}: {codec} cannot go into a '{suffix or 'suffixless'}' file; use {' or '.join(CONTAINERS[codec])}"
        )
    if not 0 <= crf <= 51:
        raise FacecastError(f"--crf {crf}: must be 0-51 (lower is better; 18 is visually lossless)")
    if mask_dir is not None and codec != "prores":
        raise FacecastError("--mask-dir gives an alpha channel, which only --codec prores (4444) carries")


def _mask_paths(paths: list[Path], mask_dir: Path, size: tuple[int, int]) -> list[Path]:
    """One mask per frame (same names, same size), for a prores 4444 alpha channel."""
    by_stem = {p.stem: p for p in list_frames(mask_dir)}
    missing = [p.name for p in paths if p.stem not in by_stem]
    if missing:
        raise FacecastError(f"{mask_dir}: no mask for {missing[0]} ({len(missing)} missing); masks need the frames' names")
    masks = [by_stem[p.stem] for p in paths]
    msize = check_same_size(masks, "mask")
    if msize != size:
        raise FacecastError(f"{mask_dir}: masks are {msize[0]}x{msize[1]} but frames are {size[0]}x{size[1]}")
    return masks


def _frame_rate(fps: float | None, meta: FramesMeta | None, frames_dir: Path) -> Fraction:
    """`--fps`, else the rate the frames were extracted at (frames.json)."""
    if fps is None:
        if meta is None:
            raise FacecastError(f"{frames_dir}: no frames.json to take the frame rate from; pass --fps")
        return Fraction(meta.fps_fraction)
    if not 0 < float(fps) <= 1000:
        raise FacecastError(f"--fps {fps}: must be above 0 and at most 1000")
    return Fraction(fps).limit_denominator(1001)


def _audio_offset(audio_path: Path, meta: FramesMeta | None) -> float:
    """Where in `audio_path` the frames start: their --start when they were extracted from that file."""
    if not audio_path.is_file():
        raise FacecastError(f"--audio-from {audio_path}: file not found")
    with open_input(audio_path):  # unreadable audio source: fail before encoding anything
        pass
    if meta is not None and meta.source_kind == "video" and Path(meta.source) == audio_path.resolve():
        return meta.start
    return 0.0


def video(
    frames_dir: str | Path,
    out_path: str | Path,
    fps: float | None = None,
    codec: str = "h264",
    crf: int = 18,
    audio_from: str | Path | None = None,
    mask_dir: str | Path | None = None,
    quiet: bool = False,
    finalize: Callable[[Path], None] | None = None,
    workers: int | None = None,
    visible_label: bool = False,
    label: Labeller | None = None,
) -> VideoResult:
    """Numbered frames -> video, with the audio of `audio_from` (the matching piece of it when the
    frames were extracted from that file with --start/--end).

    Audio is stream-copied when the container accepts its codec, else re-encoded to AAC; without
    `audio_from` (or when it has no audio) the video is silent. The video is written to a temporary
    sibling, `finalize(tmp)` runs on it, then `label(tmp)` (the caller's labelling step: C2PA manifest
    with the model name; `default_labeller` when None), then it is renamed."""
    import av

    frames_dir, out_path = Path(frames_dir), Path(out_path)
    codec = codec.lower()
    suffix = out_path.suffix.lower()
    _check_request(codec, out_path, int(crf), mask_dir)
    paths = list_frames(frames_dir)
    if not paths:
        raise FacecastError(f"{frames_dir}: no frame images found (zero frames); run `facecast frames` or merge first")
    width, height = check_same_size(paths)
    masks = _mask_paths(paths, Path(mask_dir), (width, height)) if mask_dir is not None else None
    meta = read_frames_meta(frames_dir)
    rate = _frame_rate(fps, meta, frames_dir)
    notes: list[str] = []
    encoder, pix_fmt, options = _encoder_setup(codec, int(crf), masks is not None)
    enc_w, enc_h = width, height
    if pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
        enc_w, enc_h = width - width % 2, height - height % 2
        notes.append(f"odd size {width}x{height} cropped to {enc_w}x{enc_h} (yuv420p needs even sizes)")
    audio_path = Path(audio_from) if audio_from is not None else None
    audio_offset = _audio_offset(audio_path, meta) if audio_path is not None else 0.0
    n = len(paths)
    duration = n / float(rate)
    workers = workers or min(4, os.cpu_count() or 1)
    state = {"audio": "none"}

    def write(tmp: Path) -> None:
        with av.open(str(tmp), "w") as out:
            vs = out.add_stream(encoder, rate=rate)
            vs.width, vs.height, vs.pix_fmt = enc_w, enc_h, pix_fmt
            vs.options = options
            if suffix in (".mp4", ".m4v", ".mov") and codec == "hevc":
                vs.codec_tag = "hvc1"  # so Apple players accept it
            vs.thread_type = "AUTO"
            ain = abox = None
            if audio_path is not None:
                abox = open_input(audio_path)
                if abox.streams.audio:
                    ain = abox.streams.audio[0]
                else:
                    notes.append(f"{audio_path.name} has no audio; video written without audio")
            try:
                aout = None
                copy = False
                if ain is not None:
                    copy = audio_copy_allowed(audio_path, suffix)
                    if copy:
                        aout = out.add_stream_from_template(ain)
                    else:
                        sr = ain.codec_context.sample_rate or 48000
                        aout = out.add_stream("aac", rate=sr)
                        aout.layout = layout_name(ain.codec_context)
                with make_progress(quiet) as progress:
                    task = progress.add_task(f"video {out_path.name}", total=n)
                    fmt_in = "rgba" if masks else "rgb24"
                    for i, (img, mask) in enumerate(_read_ahead(paths, masks, workers)):
                        if img.shape[1] != width or img.shape[0] != height:
                            raise FacecastError(f"{paths[i]}: size changed while encoding; do not edit frames during `video`")
                        if visible_label:  # corner text "synthetic" for distribution copies
                            from facecast.provenance.visible import visible_label as _label

                            img = _label(img)
                        if mask is not None:
                            img = np.dstack([img, mask])
                        arr = np.ascontiguousarray(img[:enc_h, :enc_w])
                        vf = av.VideoFrame.from_ndarray(arr, format=fmt_in)
                        vf.pts = i
                        vf.time_base = Fraction(1) / rate
                        container.mux(out, vs.encode(vf))
                        progress.update(task, completed=i + 1)
                    container.mux(out, vs.encode(None))
                if ain is not None and aout is not None:
                    if copy:
                        copy_audio(out, abox, ain, aout, audio_offset, duration)
                        state["audio"] = "copied"
                    else:
                        reencode_audio(out, abox, ain, aout, audio_offset, duration)
                        state["audio"] = "re-encoded (aac)"
            finally:
                if abox is not None:
                    abox.close()
        if finalize is not None:
            finalize(tmp)
        if (label or default_labeller(out_path, frames_dir))(tmp):
            notes.append("labelled: C2PA manifest signed (check with `facecast verify`)")
        else:
            notes.append(f"{suffix} cannot carry a C2PA manifest: labelled only by the frames' watermark")

    try:
        if out_path.parent.exists() and not out_path.parent.is_dir():
            raise FacecastError(f"{out_path}: its folder {out_path.parent} is a file; choose another output path")
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FacecastError(f"cannot create folder for {out_path}: {err.strerror or err}") from None
        atomic_write_with(out_path, write)
    except FacecastError:
        raise
    except (OSError, av.error.FFmpegError) as err:
        code = getattr(err, "errno", None)
        why = "disk full" if code == errno.ENOSPC else (getattr(err, "strerror", None) or str(err))
        raise FacecastError(f"cannot write {out_path}: {why}; nothing was written") from None
    return VideoResult(str(out_path), codec, n, float(rate), (enc_w, enc_h), duration, state["audio"],
                       str(audio_path) if audio_path and state["audio"] != "none" else None, notes)


def default_labeller(out_path: Path, frames_dir: Path) -> Labeller:
    """Label with the workspace the output (else the frames) lies in, or the per-user key; no model name.

    Callers that know the model pass their own (`functools.partial(label_result_file, ws=..., model_name=...)`).
    """
    from facecast.provenance import find_workspace, label_result_file

    ws = find_workspace(out_path.parent) or find_workspace(frames_dir)
    return lambda tmp: label_result_file(tmp, ws=ws)
