"""Video in and out with PyAV, split by job; this module keeps the names every caller imports.

- `media/probe.py`    `probe`: stream facts without decoding the video (rotation from the first frame)
- `media/decode.py`   `frames`: video or image folder -> numbered upright frames + frames.json
- `media/encode.py`   `video`: numbered frames -> video; labelling is the caller's step (`label=`)
- `media/audio.py`    the reference audio, stream-copied or re-encoded, cut to the frames' piece
- `media/frame_files.py`  frame names, natural order, one size, frames.json
- `media/container.py`    opening inputs with one clear error; `mux`, where every packet goes

Why PyAV: it ships FFmpeg's libraries, so no system ffmpeg is needed and every failure arrives as a
Python exception we can turn into one clear line.
"""

from __future__ import annotations

from facecast.media.container import FORMAT_NAMES, ff_message, mux, open_input
from facecast.media.decode import FramesResult, frames, parse_time, upright
from facecast.media.encode import CODECS, CONTAINERS, VideoResult, video
from facecast.media.frame_files import (
    FRAME_FORMATS,
    FRAMES_JSON,
    FRAMES_SCHEMA,
    FramesMeta,
    check_same_size,
    frame_name,
    list_frames,
    missing_frames,
    read_frames_meta,
)
from facecast.media.probe import DEFAULT_IMAGE_FPS, VideoInfo, probe

__all__ = [
    "CODECS", "CONTAINERS", "DEFAULT_IMAGE_FPS", "FORMAT_NAMES", "FRAME_FORMATS", "FRAMES_JSON", "FRAMES_SCHEMA",
    "FramesMeta", "FramesResult", "VideoInfo", "VideoResult", "check_same_size", "ff_message", "frame_name",
    "frames", "list_frames", "missing_frames", "mux", "open_input", "parse_time", "probe", "read_frames_meta",
    "upright", "video",
]
