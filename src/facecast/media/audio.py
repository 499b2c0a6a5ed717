"""The audio of a result: the reference video's track stream-copied when the container takes its codec,
else re-encoded to AAC, cut to the frames' piece of the source either way."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np

from facecast.media import container
from facecast.media.container import FORMAT_NAMES

# Audio codecs stream-copied into mp4/mov. A list as well as a trial mux, because the mp4 muxer takes
# PCM in the header and only fails at the trailer (measured with PyAV 18.1's FFmpeg); mkv takes the trial.
_COPY_OK: dict[str, frozenset[str]] = {
    ".mp4": frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}),
    ".m4v": frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),
    ".mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be",
                       "pcm_s24be", "pcm_f32le"}),
}



def audio_copy_allowed(audio_path: Path, suffix: str) -> bool:
    """A known-good list for mp4/mov, then the muxer tried for real in memory with the first packets:
    FFmpeg knows best which codec a container accepts."""
    import av

    with av.open(str(audio_path)) as src:
        name = src.streams.audio[0].codec_context.name
    if suffix in _COPY_OK and name not in _COPY_OK[suffix]:
        return False
    try:
        with av.open(str(audio_path)) as src, av.open(io.BytesIO(), "w", format=FORMAT_NAMES[suffix]) as trial:
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



def copy_audio(out, abox, ain, aout, offset: float, duration: float) -> None:
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
            container.mux(out, packets)
            packets = []
    container.mux(out, packets)


def layout_name(ctx) -> str:
    """A named channel layout (an unnamed "2 channels" one makes the AAC encoder refuse to open)."""
    name = ctx.layout.name
    if "channels" not in name:
        return name
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(ctx.channels, "stereo")


def reencode_audio(out, abox, ain, aout, offset: float, duration: float) -> None:
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
            container.mux(out, aout.encode(nf))
        if pos is not None and pos >= stop:
            break
    container.mux(out, aout.encode(None))
