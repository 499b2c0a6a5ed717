"""Video in and out with PyAV: `probe`, `frames` (video or image folder -> numbered frames) and
`video` (numbered frames -> video with the reference audio).

Why these choices:
- PyAV ships FFmpeg's libraries, so no system ffmpeg is needed and every failure arrives as a Python
  exception we can turn into one clear line.
- `frames` samples the source onto a constant frame grid (`start + k / fps`): a constant-rate source at
  its own rate maps 1:1, a variable-rate source or a different `--fps` gets frames duplicated or dropped
  by timestamp (FFmpeg's `fps` filter rule, rounding to the nearest slot), so `frame_count / fps` is the
  clip's duration and the rebuilt video keeps its timing.
- `frames.json` beside the frames records the source, grid, time base and audio, so `video` can rebuild
  the clip with the same rate and the matching piece of the source's audio.
- Every file appears atomically (temporary sibling + rename): a frame that exists is complete, which is
  what makes re-running `frames` resumable and Ctrl-C safe, and a video is only ever seen finished.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from facecast.console import make_progress
from facecast.errors import FacecastError
from facecast.media.images import (
    atomic_write_bytes,
    atomic_write_with,
    clean_partials,
    encode_image,
    is_image_path,
    read_image,
)

FRAMES_JSON = "frames.json"
FRAMES_SCHEMA = "facecast.frames/1"
FRAME_FORMATS = ("png", "jpg")
CODECS = ("h264", "hevc", "prores", "ffv1")
# Which containers each codec may go into (checked before any work starts).
CONTAINERS: dict[str, tuple[str, ...]] = {
    "h264": (".mp4", ".mov", ".mkv", ".m4v"),
    "hevc": (".mp4", ".mov", ".mkv", ".m4v"),
    "prores": (".mov", ".mkv"),
    "ffv1": (".mkv",),
}
_FORMAT_NAMES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_IMAGE_FPS = 25.0
# Audio codecs stream-copied into mp4/mov. A list as well as a trial mux, because the mp4 muxer takes
# PCM in the header and only fails at the trailer (measured with PyAV 18.1's FFmpeg); mkv takes the trial.
_COPY_OK: dict[str, frozenset[str]] = {
    ".mp4": frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}),
    ".m4v": frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),
    ".mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be",
                       "pcm_s24be", "pcm_f32le"}),
}


# ----------------------------------------------------------------------------------------------- probe


@dataclass
class VideoInfo:
    """What `probe` learns about a video file (JSON-serialisable)."""

    path: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    fps_fraction: str
    frame_count: int  # from the container; estimated from duration when it does not say
    time_base: str
    duration: float
    start_time: float
    pix_fmt: str | None
    has_audio: bool
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _open_input(path: Path):
    """Open a media file for reading; every way it can fail becomes one clear line."""
    import av

    if not path.exists():
        raise FacecastError(f"{path}: file not found")
    if path.is_dir():
        raise FacecastError(f"{path}: is a folder, expected a video file")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as err:
        raise FacecastError(
            f"{path}: not a video file FFmpeg can read ({_ff_message(err)}); check the file is complete"
        ) from None
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror or err})") from None


def _ff_message(err: Exception) -> str:
    msg = getattr(err, "strerror", None) or str(err)
    return str(msg).split(": '")[0].strip()


def _stream_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(DEFAULT_IMAGE_FPS)


def probe(path: str | Path) -> VideoInfo:
    """Read a video's stream facts without decoding it; refuses files with no video stream."""
    path = Path(path)
    with _open_input(path) as box:
        if not box.streams.video:
            kinds = ", ".join(sorted({s.type for s in box.streams})) or "no streams"
            raise FacecastError(f"{path}: has no video stream ({kinds}); give a video file")
        vs = box.streams.video[0]
        rate = _stream_rate(vs)
        tb = vs.time_base or Fraction(1, 1_000_000)
        if vs.duration is not None:
            duration = float(vs.duration * tb)
        elif box.duration is not None:
            duration = box.duration / 1_000_000
        else:
            duration = 0.0
        start = float(vs.start_time * tb) if vs.start_time is not None else 0.0
        frame_count = int(vs.frames) if vs.frames else int(round(duration * rate))
        info = VideoInfo(
            path=str(path.resolve()),
            container=box.format.name,
            codec=vs.codec_context.name,
            width=vs.codec_context.width,
            height=vs.codec_context.height,
            fps=float(rate),
            fps_fraction=f"{rate.numerator}/{rate.denominator}",
            frame_count=frame_count,
            time_base=f"{tb.numerator}/{tb.denominator}",
            duration=duration,
            start_time=start,
            pix_fmt=vs.codec_context.format.name if vs.codec_context.format else None,
            has_audio=bool(box.streams.audio),
        )
        if box.streams.audio:
            a = box.streams.audio[0]
            info.audio_codec = a.codec_context.name
            info.audio_sample_rate = a.codec_context.sample_rate
            info.audio_channels = a.codec_context.channels
            if a.duration is not None and a.time_base:
                info.audio_duration = float(a.duration * a.time_base)
    return info


# ------------------------------------------------------------------------------------- times, frames


def parse_time(text: str | float | int | None, fps: float, what: str = "time") -> float | None:
    """`1.5` (seconds), `00:01.5` / `1:02:03.5` (timecode) or `f120` (frame number, 1-based like the
    frame files, so `--start f120` starts at 00120.png) -> seconds. For `--end`, `fN` includes frame N."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip().lower()
        try:
            if s.startswith("f"):
                n = int(s[1:])
                if n < 1:
                    raise ValueError
                value = (n - 1) / fps if what == "start" else n / fps
            elif ":" in s:
                parts = [float(p) for p in s.split(":")]
                if len(parts) > 3 or any(p < 0 for p in parts):
                    raise ValueError
                value = 0.0
                for p in parts:
                    value = value * 60 + p
            else:
                value = float(s)
        except ValueError:
            raise FacecastError(
                f"--{what} {text!r}: use seconds (1.5), a timecode (00:01.5) or a frame number (f120)"
            ) from None
    if value < 0 or value != value:
        raise FacecastError(f"--{what} {text!r} must not be negative")
    return value


def frame_name(index: int, digits: int, fmt: str) -> str:
    """DeepFaceLab-like 1-based names: 00001.png, 00002.png, ..."""
    return f"{index + 1:0{digits}d}.{fmt}"


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files in natural order (img2 before img10), so hand-named folders keep their order."""
    if not folder.exists():
        raise FacecastError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise FacecastError(f"{folder}: is not a folder of frames")
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_path(p)), key=_natural_key)


def _image_size(path: Path) -> tuple[int, int]:
    """Width and height from the file header only (fast: no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError):
        raise FacecastError(f"{path}: not a readable image (corrupt or unsupported); remove or replace it") from None


def check_same_size(paths: list[Path], what: str = "frame") -> tuple[int, int]:
    """All images must share one size (a video has one); returns it or names the first odd file."""
    if not paths:
        raise FacecastError("no frames")
    first = _image_size(paths[0])
    for p in paths[1:]:
        size = _image_size(p)
        if size != first:
            raise FacecastError(
                f"{p}: {what} size {size[0]}x{size[1]} differs from {paths[0].name} ({first[0]}x{first[1]});"
                " all frames of a video must have one size - resize or remove the odd ones"
            )
    return first


@dataclass
class FramesMeta:
    """frames.json: everything needed to rebuild the clip the frames came from."""

    source: str
    source_kind: str  # "video" or "images"
    fps: float  # the grid the frames are on
    fps_fraction: str
    format: str
    jpeg_quality: int
    start: float
    end: float | None
    size: tuple[int, int] | list[int]
    digits: int
    frame_count: int = 0
    complete: bool = False
    source_fps: float | None = None
    source_frame_count: int | None = None
    source_size_bytes: int | None = None
    source_mtime: float | None = None
    codec: str | None = None
    time_base: str | None = None
    duration: float = 0.0
    has_audio: bool = False
    audio: dict[str, Any] | None = None
    schema: str = FRAMES_SCHEMA

    def settings_key(self) -> dict[str, Any]:
        """The fields that must match for a re-run to resume instead of mixing two extractions."""
        return {
            "source": self.source,
            "source_size_bytes": self.source_size_bytes,
            "source_mtime": self.source_mtime,
            "fps_fraction": self.fps_fraction,
            "format": self.format,
            "jpeg_quality": self.jpeg_quality if self.format == "jpg" else None,
            "start": round(self.start, 6),
            "end": None if self.end is None else round(self.end, 6),
        }


def read_frames_meta(folder: Path) -> FramesMeta | None:
    """frames.json in `folder` (or its parent: merged/ frames sit inside the data_dst/ they came from)."""
    for cand in (folder / FRAMES_JSON, folder.parent / FRAMES_JSON):
        if cand.is_file():
            try:
                data = json.loads(cand.read_text())
                if data.get("schema") != FRAMES_SCHEMA:
                    raise ValueError("schema")
                known = FramesMeta.__dataclass_fields__
                return FramesMeta(**{k: v for k, v in data.items() if k in known})
            except (ValueError, TypeError):
                raise FacecastError(f"{cand}: not a valid facecast frames.json; delete it and extract again") from None
    return None


def _write_meta(folder: Path, meta: FramesMeta) -> None:
    atomic_write_bytes(folder / FRAMES_JSON, (json.dumps(asdict(meta), indent=2) + "\n").encode())


@dataclass
class FramesResult:
    out_dir: str
    frame_count: int
    written: int
    skipped: int
    fps: float
    size: tuple[int, int]
    has_audio: bool
    meta_path: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prepare_out_dir(out_dir: Path) -> bool:
    """Create the output folder; returns whether we created it (to remove it again on failure)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FacecastError(f"{out_dir}: exists and is not a folder; choose another output folder")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FacecastError(f"cannot create output folder {out_dir}: {err.strerror or err}") from None
    if not os.access(out_dir, os.W_OK):
        raise FacecastError(f"{out_dir}: output folder is not writable")
    return created


def _check_resume(out_dir: Path, meta: FramesMeta) -> FramesMeta | None:
    """Refuse to mix two different extractions in one folder; allow resuming the same one (returned)."""
    old = None
    if (out_dir / FRAMES_JSON).is_file():
        old = read_frames_meta(out_dir)
    existing = [p for p in out_dir.iterdir() if p.is_file() and is_image_path(p)]
    if old is None:
        if existing:
            raise FacecastError(
                f"{out_dir}: already holds {len(existing)} images not written by `facecast frames`;"
                " choose an empty output folder or remove them"
            )
        return None
    if old.settings_key() != meta.settings_key():
        diff = [k for k, v in meta.settings_key().items() if old.settings_key().get(k) != v]
        raise FacecastError(
            f"{out_dir}: holds frames of a different extraction ({', '.join(diff)} differ);"
            " choose another output folder or empty this one"
        )
    return old


def _already_done(out_dir: Path, old: FramesMeta | None) -> FramesResult | None:
    """A finished extraction whose frames are all still there: nothing to decode again."""
    if old is None or not old.complete or old.frame_count < 1:
        return None
    if not all((out_dir / frame_name(k, old.digits, old.format)).is_file() for k in range(old.frame_count)):
        return None
    return FramesResult(str(out_dir), old.frame_count, 0, old.frame_count, old.fps, tuple(old.size),
                        old.has_audio, str(out_dir / FRAMES_JSON))


class _Writer:
    """Encodes and writes frames on a few threads (OpenCV releases the GIL), bounded so memory stays flat."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max(1, workers))
        self.pending: list[Future] = []
        self.limit = max(2, workers * 2)

    def submit(self, fn: Callable[[], None]) -> None:
        self.pending.append(self.pool.submit(fn))
        while len(self.pending) >= self.limit:
            self.pending.pop(0).result()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for f in self.pending:
                f.cancel()
        try:
            for f in self.pending:
                if not f.cancelled():
                    f.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=cancel)


def _save_frame(path: Path, img: np.ndarray, fmt: str, quality: int) -> None:
    atomic_write_bytes(path, encode_image(img, "." + fmt, jpeg_quality=quality))


def _grid(decoded: Iterator[tuple[float, Any]], t0: float, fps: Fraction, n_max: int | None) -> Iterator[tuple[int, Any]]:
    """Map (time, frame) pairs onto slots k = round((t - t0) * fps): duplicate to fill gaps, keep the
    last frame when several land in one slot; a frame before t0 stands in for slot 0."""
    pending: Any = None
    pending_slot = 0
    next_slot = 0
    f = float(fps)
    for t, frame in decoded:
        slot = int(np.floor((t - t0) * f + 0.5 + 1e-6))
        if slot < 0:
            pending, pending_slot = frame, 0
            continue
        if pending is not None and slot > pending_slot:
            last = slot if n_max is None else min(slot, n_max)
            for k in range(max(next_slot, pending_slot), last):
                yield k, pending
            next_slot = max(next_slot, last)
            if n_max is not None and next_slot >= n_max:
                return
        pending, pending_slot = frame, max(slot, next_slot)
    if pending is not None and (n_max is None or pending_slot < n_max):
        yield pending_slot, pending


def frames(
    input: str | Path,
    out_dir: str | Path,
    fps: float | None = None,
    fmt: str = "png",
    jpeg_quality: int = 95,
    start: str | float | None = None,
    end: str | float | None = None,
    quiet: bool = False,
    workers: int | None = None,
) -> FramesResult:
    """Video (or a folder of images) -> numbered frames in `out_dir` plus frames.json.

    Re-running with the same settings skips frames already written (each frame file appears atomically,
    so an existing one is complete). A folder of images is checked (readable, one size: mixed sizes are
    refused, since a video has one size), renumbered in natural name order, copied byte-for-byte when
    already in the wanted format and re-encoded otherwise; its fps is `fps` or 25."""
    input, out_dir = Path(input), Path(out_dir)
    fmt = fmt.lower().lstrip(".").replace("jpeg", "jpg")
    if fmt not in FRAME_FORMATS:
        raise FacecastError(f"--format {fmt!r}: choose png or jpg")
    if not 1 <= int(jpeg_quality) <= 100:
        raise FacecastError(f"--jpeg-quality {jpeg_quality}: must be 1-100")
    if fps is not None and not (0 < float(fps) <= 1000):
        raise FacecastError(f"--fps {fps}: must be above 0 and at most 1000")
    workers = workers or min(4, os.cpu_count() or 1)
    if input.is_dir():
        return _frames_from_images(input, out_dir, fps, fmt, jpeg_quality, start, end, quiet, workers)
    info = probe(input)
    rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(info.fps_fraction)
    t_start = parse_time(start, info.fps, "start") or 0.0
    t_end = parse_time(end, info.fps, "end")
    if t_end is not None and t_end <= t_start:
        raise FacecastError(f"--end ({t_end:.3f}s) must be after --start ({t_start:.3f}s)")
    if info.duration and t_start >= info.duration + info.start_time:
        raise FacecastError(f"{input}: --start {t_start:.3f}s is past the end of the video ({info.duration:.3f}s)")
    span = (t_end if t_end is not None else info.duration + info.start_time) - t_start
    expected = max(1, int(round(span * float(rate)))) if span > 0 else info.frame_count
    # cap the grid at the source's end too, so resampling never adds a frame past it
    n_max = int(np.ceil(span * float(rate) - 1e-6)) if span > 0 else None
    stat = input.stat()
    meta = FramesMeta(
        source=str(input.resolve()), source_kind="video", fps=float(rate),
        fps_fraction=f"{rate.numerator}/{rate.denominator}", format=fmt, jpeg_quality=int(jpeg_quality),
        start=t_start, end=t_end, size=(info.width, info.height), digits=max(5, len(str(expected))),
        source_fps=info.fps, source_frame_count=info.frame_count, source_size_bytes=stat.st_size,
        source_mtime=stat.st_mtime, codec=info.codec, time_base=info.time_base, has_audio=info.has_audio,
        audio=(
            {"codec": info.audio_codec, "sample_rate": info.audio_sample_rate,
             "channels": info.audio_channels, "duration": info.audio_duration}
            if info.has_audio else None
        ),
    )
    created = _prepare_out_dir(out_dir)
    clean_partials(out_dir)
    done = _already_done(out_dir, _check_resume(out_dir, meta))
    if done is not None:
        return done
    _write_meta(out_dir, meta)
    written = skipped = count = 0
    writer = _Writer(workers)
    ok = False
    try:
        with _open_input(input) as box, make_progress(quiet) as progress:
            vs = box.streams.video[0]
            vs.thread_type = "AUTO"
            if t_start > 0:
                box.seek(int(t_start / vs.time_base), stream=vs, backward=True)
            task = progress.add_task(f"frames {input.name}", total=n_max or expected)

            def decoded() -> Iterator[tuple[float, Any]]:
                for fr in box.decode(vs):
                    if fr.pts is None:
                        continue
                    t = float(fr.pts * vs.time_base) - info.start_time
                    if t_end is not None and t >= t_end + 0.5 / float(rate):
                        return
                    yield t, fr

            for k, fr in _grid(decoded(), t_start, rate, n_max):
                if (fr.width, fr.height) != (info.width, info.height):
                    raise FacecastError(
                        f"{input}: frame size changes mid-stream ({info.width}x{info.height} -> "
                        f"{fr.width}x{fr.height}); facecast needs one size per video"
                    )
                path = out_dir / frame_name(k, meta.digits, fmt)
                count = k + 1
                progress.update(task, completed=count)
                if path.exists():
                    skipped += 1
                    continue
                img = fr.to_ndarray(format="rgb24")
                writer.submit(lambda p=path, im=img: _save_frame(p, im, fmt, jpeg_quality))
                written += 1
        writer.close()
        ok = True
    except BaseException:
        writer.close(cancel=True)
        raise
    finally:
        if not ok and count == 0 and written == 0:
            _remove_empty_output(out_dir, created)
    if count == 0:
        _remove_empty_output(out_dir, created)
        raise FacecastError(f"{input}: no frames decoded (empty video or --start/--end select nothing)")
    meta.frame_count, meta.complete = count, True
    meta.duration = count / float(rate)
    _write_meta(out_dir, meta)
    return FramesResult(str(out_dir), count, written, skipped, float(rate), tuple(meta.size), info.has_audio,
                        str(out_dir / FRAMES_JSON))


def _remove_empty_output(out_dir: Path, created: bool) -> None:
    """Leave nothing behind when no frame was produced."""
    (out_dir / FRAMES_JSON).unlink(missing_ok=True)
    clean_partials(out_dir)
    if created:
        try:
            out_dir.rmdir()
        except OSError:
            pass


def _frames_from_images(
    folder: Path, out_dir: Path, fps: float | None, fmt: str, quality: int,
    start: str | float | None, end: str | float | None, quiet: bool, workers: int,
) -> FramesResult:
    paths = list_frames(folder)
    if not paths:
        raise FacecastError(f"{folder}: no image files found (zero frames); give a video or a folder of images")
    if out_dir.resolve() == folder.resolve():
        raise FacecastError(f"{folder}: output folder must differ from the input folder")
    rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(DEFAULT_IMAGE_FPS)
    t_start = parse_time(start, float(rate), "start") or 0.0
    t_end = parse_time(end, float(rate), "end")
    first = int(round(t_start * float(rate)))
    last = len(paths) if t_end is None else min(len(paths), int(round(t_end * float(rate))))
    chosen = paths[first:last]
    if not chosen:
        raise FacecastError(f"{folder}: --start/--end select no frames (the folder has {len(paths)})")
    size = check_same_size(chosen)
    meta = FramesMeta(
        source=str(folder.resolve()), source_kind="images", fps=float(rate),
        fps_fraction=f"{rate.numerator}/{rate.denominator}", format=fmt, jpeg_quality=int(quality),
        start=t_start, end=t_end, size=size, digits=max(5, len(str(len(chosen)))),
        source_fps=float(rate), source_frame_count=len(paths),
        source_mtime=max(p.stat().st_mtime for p in chosen),
    )
    _prepare_out_dir(out_dir)
    clean_partials(out_dir)
    done = _already_done(out_dir, _check_resume(out_dir, meta))
    if done is not None:
        return done
    _write_meta(out_dir, meta)
    written = skipped = 0
    writer = _Writer(workers)

    def convert(src: Path, dst: Path) -> None:
        if src.suffix.lower().lstrip(".").replace("jpeg", "jpg") == fmt:
            data = src.read_bytes()
            from facecast.media.images import decode_image

            decode_image(data, str(src))  # refuse corrupt files before copying them
            atomic_write_bytes(dst, data)
        else:
            _save_frame(dst, read_image(src), fmt, quality)

    try:
        with make_progress(quiet) as progress:
            task = progress.add_task(f"frames {folder.name}", total=len(chosen))
            for k, src in enumerate(chosen):
                dst = out_dir / frame_name(k, meta.digits, fmt)
                if dst.exists():
                    skipped += 1
                else:
                    writer.submit(lambda s=src, d=dst: convert(s, d))
                    written += 1
                progress.update(task, completed=k + 1)
        writer.close()
    except BaseException:
        writer.close(cancel=True)
        raise
    meta.frame_count, meta.complete, meta.duration = len(chosen), True, len(chosen) / float(rate)
    _write_meta(out_dir, meta)
    return FramesResult(str(out_dir), len(chosen), written, skipped, float(rate), size, False,
                        str(out_dir / FRAMES_JSON))


# ----------------------------------------------------------------------------------------------- video


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


def _audio_copy_allowed(audio_path: Path, suffix: str) -> bool:
    """A known-good list for mp4/mov, then the muxer tried for real in memory with the first packets:
    FFmpeg knows best which codec a container accepts."""
    import av

    with av.open(str(audio_path)) as src:
        name = src.streams.audio[0].codec_context.name
    if suffix in _COPY_OK and name not in _COPY_OK[suffix]:
        return False
    try:
        with av.open(str(audio_path)) as src, av.open(io.BytesIO(), "w", format=_FORMAT_NAMES[suffix]) as trial:
            ain = src.streams.audio[0]
            aout = trial.add_stream_from_template(ain)
            n = 0
            for packet in src.demux(ain):
                if packet.dts is None:
                    continue
                packet.stream = aout
                trial.mux(packet)
                n += 1
                if n >= 8:
                    break
        return True
    except (av.error.FFmpegError, ValueError, NotImplementedError):
        return False


def _mux(box, packets) -> None:
    """One place every packet goes through (so a full disk can be simulated in tests)."""
    for packet in packets:
        box.mux(packet)


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
) -> VideoResult:
    """Numbered frames -> video, with the audio of `audio_from` (the matching piece of it when the
    frames were extracted from that file with --start/--end).

    Audio is stream-copied when the container accepts its codec, else re-encoded to AAC; without
    `audio_from` (or when it has no audio) the video is silent. The video is written to a temporary
    sibling, `finalize(tmp)` runs on it (the provenance stage signs it there), then it is renamed."""
    import av

    frames_dir, out_path = Path(frames_dir), Path(out_path)
    codec = codec.lower()
    if codec not in CODECS:
        raise FacecastError(f"--codec {codec!r}: choose one of {', '.join(CODECS)}")
    suffix = out_path.suffix.lower()
    if suffix not in CONTAINERS[codec]:
        raise FacecastError(
            f"{out_path}: {codec} cannot go into a '{suffix or 'suffixless'}' file; use {' or '.join(CONTAINERS[codec])}"
        )
    if not 0 <= int(crf) <= 51:
        raise FacecastError(f"--crf {crf}: must be 0-51 (lower is better; 18 is visually lossless)")
    if mask_dir is not None and codec != "prores":
        raise FacecastError("--mask-dir gives an alpha channel, which only --codec prores (4444) carries")
    paths = list_frames(frames_dir)
    if not paths:
        raise FacecastError(f"{frames_dir}: no frame images found (zero frames); run `facecast frames` or merge first")
    width, height = check_same_size(paths)
    masks: list[Path] | None = None
    if mask_dir is not None:
        mask_dir = Path(mask_dir)
        by_stem = {p.stem: p for p in list_frames(mask_dir)}
        missing = [p.name for p in paths if p.stem not in by_stem]
        if missing:
            raise FacecastError(f"{mask_dir}: no mask for {missing[0]} ({len(missing)} missing); masks need the frames' names")
        masks = [by_stem[p.stem] for p in paths]
        msize = check_same_size(masks, "mask")
        if msize != (width, height):
            raise FacecastError(f"{mask_dir}: masks are {msize[0]}x{msize[1]} but frames are {width}x{height}")
    meta = read_frames_meta(frames_dir)
    if fps is None:
        if meta is None:
            raise FacecastError(f"{frames_dir}: no frames.json to take the frame rate from; pass --fps")
        rate = Fraction(meta.fps_fraction)
    else:
        if not 0 < float(fps) <= 1000:
            raise FacecastError(f"--fps {fps}: must be above 0 and at most 1000")
        rate = Fraction(fps).limit_denominator(1001)
    notes: list[str] = []
    encoder, pix_fmt, options = _encoder_setup(codec, int(crf), masks is not None)
    enc_w, enc_h = width, height
    if pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
        enc_w, enc_h = width - width % 2, height - height % 2
        notes.append(f"odd size {width}x{height} cropped to {enc_w}x{enc_h} (yuv420p needs even sizes)")
    audio_path = Path(audio_from) if audio_from is not None else None
    audio_offset = 0.0
    if audio_path is not None:
        if not audio_path.is_file():
            raise FacecastError(f"--audio-from {audio_path}: file not found")
        with _open_input(audio_path):  # unreadable audio source: fail before encoding anything
            pass
        if meta is not None and meta.source_kind == "video" and Path(meta.source) == audio_path.resolve():
            audio_offset = meta.start
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
                abox = _open_input(audio_path)
                if abox.streams.audio:
                    ain = abox.streams.audio[0]
                else:
                    notes.append(f"{audio_path.name} has no audio; video written without audio")
            try:
                aout = None
                copy = False
                if ain is not None:
                    copy = _audio_copy_allowed(audio_path, suffix)
                    if copy:
                        aout = out.add_stream_from_template(ain)
                    else:
                        sr = ain.codec_context.sample_rate or 48000
                        aout = out.add_stream("aac", rate=sr)
                        aout.layout = _layout_name(ain.codec_context)
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
                        _mux(out, vs.encode(vf))
                        progress.update(task, completed=i + 1)
                    _mux(out, vs.encode(None))
                if ain is not None and aout is not None:
                    if copy:
                        _copy_audio(out, abox, ain, aout, audio_offset, duration)
                        state["audio"] = "copied"
                    else:
                        _reencode_audio(out, abox, ain, aout, audio_offset, duration)
                        state["audio"] = "re-encoded (aac)"
            finally:
                if abox is not None:
                    abox.close()
        if finalize is not None:
            finalize(tmp)
        # Always labelled: a C2PA manifest for every container that can carry one (the watermark is in
        # the merged frames themselves). The temporary file sits in the output folder, so the workspace
        # is found from there; with none, a per-user signing key is used.
        from facecast.provenance import find_workspace, label_result_file

        if label_result_file(tmp, ws=find_workspace(out_path.parent) or find_workspace(frames_dir)):
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


def _copy_audio(out, abox, ain, aout, offset: float, duration: float) -> None:
    """Remux the audio packets that overlap [offset, offset + duration), shifted to start at 0."""
    tb = ain.time_base
    start_pts = int(round(offset / tb)) if offset else 0
    if offset:
        abox.seek(start_pts, stream=ain, backward=True)
    packets = []
    for packet in abox.demux(ain):
        if packet.pts is None or packet.dts is None:
            continue
        t = float(packet.pts * tb)
        pdur = float((packet.duration or 0) * tb)
        if offset and t + pdur <= offset + 1e-6:
            continue
        if t >= offset + duration - 1e-6:
            break
        shift = start_pts if offset else 0
        packet.pts -= shift
        packet.dts -= shift
        packet.stream = aout
        packets.append(packet)
        if len(packets) >= 64:
            _mux(out, packets)
            packets = []
    _mux(out, packets)


def _layout_name(ctx) -> str:
    """A named channel layout (an unnamed "2 channels" one makes the AAC encoder refuse to open)."""
    name = ctx.layout.name
    if "channels" not in name:
        return name
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(ctx.channels, "stereo")


def _reencode_audio(out, abox, ain, aout, offset: float, duration: float) -> None:
    """Decode, cut to exactly [offset, offset + duration) by sample count, encode to AAC."""
    import av

    sr = aout.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=aout.layout.name, rate=sr)
    if offset:
        abox.seek(int(offset / ain.time_base), stream=ain, backward=True)
    begin, stop = int(round(offset * sr)), int(round((offset + duration) * sr))
    pos: int | None = None
    written = 0
    for frame in abox.decode(ain):
        for rf in resampler.resample(frame):
            if pos is None:
                pos = int(round(float(frame.pts * frame.time_base) * sr)) if frame.pts is not None else 0
            arr = rf.to_ndarray()
            a, b = pos, pos + arr.shape[1]
            pos = b
            lo, hi = max(a, begin), min(b, stop)
            if hi <= lo:
                if a >= stop:
                    break
                continue
            piece = np.ascontiguousarray(arr[:, lo - a : hi - a])
            nf = av.AudioFrame.from_ndarray(piece, format="fltp", layout=aout.layout.name)
            nf.sample_rate = sr
            nf.pts = written
            nf.time_base = Fraction(1, sr)
            written += piece.shape[1]
            _mux(out, aout.encode(nf))
        if pos is not None and pos >= stop:
            break
    _mux(out, aout.encode(None))

