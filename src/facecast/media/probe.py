"""`probe`: a video's stream facts (size as displayed, rate, frame count, audio, rotation).

Phone clips store sideways pictures plus a display matrix saying how to turn them; `rotation` is that
turn (degrees counter-clockwise, as PyAV reads it from the first decoded frame) and `width`/`height` are
the size after it, which is the size of every frame `frames` writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.media.container import open_input

DEFAULT_IMAGE_FPS = 25.0


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
    rotation: int = 0  # degrees counter-clockwise the stored picture is turned to display (0/90/180/270)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stream_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(DEFAULT_IMAGE_FPS)


def probe(path: str | Path) -> VideoInfo:
    """Read a video's stream facts (decoding only the first frame, for its display matrix); refuses
    files with no video stream. `width`/`height` are the displayed (upright) size."""
    path = Path(path)
    with open_input(path) as box:
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
            rotation=_rotation(box, vs),
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
    if info.rotation in (90, 270):
        info.width, info.height = info.height, info.width
    return info


def _rotation(box, stream) -> int:
    """The display rotation of the first frame, snapped to a quarter turn (0 when there is none).

    FFmpeg attaches the container's display matrix to every decoded frame; PyAV reads it as degrees
    counter-clockwise. Rewinds the container afterwards so callers can decode from the start."""
    import av

    angle = 0.0
    try:
        for frame in box.decode(stream):
            angle = float(getattr(frame, "rotation", 0) or 0)
            break
    except (av.error.FFmpegError, ValueError):
        return 0
    finally:
        try:
            box.seek(0)
        except (av.error.FFmpegError, ValueError):
            pass
    return int(round(angle / 90.0)) % 4 * 90
