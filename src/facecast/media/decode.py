"""`frames`: a video (or a folder of images) -> numbered frames plus frames.json.

Why these choices:
- `frames` samples the source onto a constant frame grid (`start + k / fps`): a constant-rate source at
  its own rate maps 1:1, a variable-rate source or a different `--fps` gets frames duplicated or dropped
  by timestamp (FFmpeg's `fps` filter rule, rounding to the nearest slot), so `frame_count / fps` is the
  clip's duration and the rebuilt video keeps its timing.
- Frames are written upright: a phone clip's display matrix (`probe(...).rotation`) is applied on
  decode, so faces are found the right way up and the rebuilt video shows as the source did.
- Every file appears atomically (temporary sibling + rename): a frame that exists is complete, which is
  what makes re-running `frames` resumable and Ctrl-C safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from facecast.console import make_progress
from facecast.errors import FacecastError
from facecast.media.container import open_input
from facecast.media.frame_files import (
    FRAME_FORMATS,
    FRAMES_JSON,
    FramesMeta,
    check_same_size,
    frame_name,
    list_frames,
    read_frames_meta,
    write_meta,
)
from facecast.media.images import atomic_write_bytes, clean_partials, encode_image, is_image_path, read_image
from facecast.media.probe import DEFAULT_IMAGE_FPS, probe

def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """The picture as displayed: turned `rotation` degrees counter-clockwise (a display matrix's turn)."""
    turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


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
        source_mtime=stat.st_mtime, rotation=info.rotation, codec=info.codec, time_base=info.time_base, has_audio=info.has_audio,
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
    write_meta(out_dir, meta)
    written = skipped = count = 0
    writer = _Writer(workers)
    ok = False
    try:
        with open_input(input) as box, make_progress(quiet) as progress:
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
                shown = (fr.height, fr.width) if info.rotation in (90, 270) else (fr.width, fr.height)
                if shown != (info.width, info.height):
                    raise FacecastError(
                        f"{input}: frame size changes mid-stream ({info.width}x{info.height} -> "
                        f"{shown[0]}x{shown[1]}); facecast needs one size per video"
                    )
                path = out_dir / frame_name(k, meta.digits, fmt)
                count = k + 1
                progress.update(task, completed=count)
                if path.exists():
                    skipped += 1
                    continue
                img = upright(fr.to_ndarray(format="rgb24"), info.rotation)
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
    write_meta(out_dir, meta)
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
    write_meta(out_dir, meta)
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
    write_meta(out_dir, meta)
    return FramesResult(str(out_dir), len(chosen), written, skipped, float(rate), size, False,
                        str(out_dir / FRAMES_JSON))
