"""The container plumbing every media job shares: opening inputs with one clear error, muxing packets.

`mux` is the one place every packet goes through, so a full disk can be simulated in tests.
"""

from __future__ import annotations

from pathlib import Path

from facecast.errors import FacecastError

FORMAT_NAMES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def open_input(path: Path):
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
            f"{path}: not a video file FFmpeg can read ({ff_message(err)}); check the file is complete"
        ) from None
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror or err})") from None


def ff_message(err: Exception) -> str:
    msg = getattr(err, "strerror", None) or str(err)
    return str(msg).split(": '")[0].strip()



def mux(box, packets) -> None:
    """Write packets into an output container."""
    for packet in packets:
        box.mux(packet)
