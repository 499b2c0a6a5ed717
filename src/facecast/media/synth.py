"""Synthetic clips rendered from still photos: for the demo, the tests and the benchmarks.

Why: the project cannot ship or download real footage of people, but it can ship a few real face
photos. Moving, scaling, rotating and relighting a photo over a background gives clips with real faces
whose ground-truth landmarks are known in every frame (the photo's annotation, transformed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.media.images import read_image

PHOTOS = ("einstein", "takeo", "breakingbad", "astronaut")


def _read_pts(path: Path) -> np.ndarray:
    text = path.read_text()
    body = text.split("{", 1)[1].split("}", 1)[0]
    return np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()])


def sample_photo(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A bundled real photo (RGB) and its 68-point annotation (0-based pixels) when it has one."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()), None
    base = resources.files("facecast") / "assets" / "photos"
    for suffix in (".jpg", ".png"):
        img_path = Path(str(base / f"{name}{suffix}"))
        if img_path.exists():
            pts = img_path.with_suffix(".pts")
            # 300-W .pts coordinates are 1-based (MATLAB); everything in facecast is 0-based pixels.
            return read_image(img_path), (_read_pts(pts) - 1.0 if pts.exists() else None)
    raise FacecastError(f"no bundled photo named {name!r}; choose one of {', '.join(PHOTOS)}")


@dataclass
class Actor:
    """A face photo moving through a clip. Positions are fractions of the frame; sizes in pixels."""

    image: np.ndarray
    landmarks: np.ndarray  # 68x2 in the photo
    start: tuple[float, float] = (0.5, 0.5)
    end: tuple[float, float] = (0.5, 0.5)
    face_px: tuple[float, float] = (120.0, 120.0)  # inter-brow-to-chin face width, start -> end
    rotation_deg: float = 8.0  # amplitude of a slow sinusoidal roll
    brightness: float = 0.15  # amplitude of a slow brightness change
    phase: float = 0.0
    visible: tuple[int, int] | None = None  # frame range [a, b) in which the actor is drawn


@dataclass
class Clip:
    frames: list[np.ndarray]
    landmarks: list[list[np.ndarray | None]]  # per frame, per actor (None when not drawn)
    fps: float
    blanked: list[int] = field(default_factory=list)


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth, textured, face-free background (large blurred noise + gradient)."""
    w, h = size
    small = rng.uniform(40, 200, size=(max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=(h, w, 3)).astype(np.float32)
    return np.clip(bg + noise, 0, 255).astype(np.uint8)


def _face_cutout(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop around the face with a feathered elliptical alpha; returns (crop, alpha, landmarks in crop)."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    c = (lo + hi) / 2
    c[1] -= (hi[1] - lo[1]) * 0.12  # include the forehead
    half = (hi - lo).max() * 0.85
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half * 1.1))
    x1, y1 = int(min(image.shape[1], c[0] + half)), int(min(image.shape[0], c[1] + half * 1.05))
    crop = image[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (w // 2, h // 2), (int(w * 0.46), int(h * 0.48)), 0, 0, 360, 1.0, -1)
    k = max(3, (min(h, w) // 12) | 1)
    alpha = cv2.GaussianBlur(alpha, (k, k), 0)
    return crop, alpha, landmarks - [x0, y0]


def render_clip(
    actors: list[Actor],
    size: tuple[int, int] = (320, 240),
    n_frames: int = 24,
    fps: float = 12.0,
    seed: int = 0,
    blank_frames: tuple[int, ...] = (),
) -> Clip:
    """Render frames with the actors composited over a background; landmarks follow each actor."""
    rng = np.random.default_rng(seed)
    w, h = size
    bg = _background(size, rng)
    cut = []
    for a in actors:
        img = a.image if a.image.ndim == 3 else cv2.cvtColor(a.image, cv2.COLOR_GRAY2RGB)
        cut.append(_face_cutout(img, np.asarray(a.landmarks, np.float64)))
    frames, marks = [], []
    for i in range(n_frames):
        t = i / max(1, n_frames - 1)
        frame = bg.astype(np.float32).copy()
        # slow global camera drift keeps the background from being static
        frame = np.roll(frame, int(3 * math.sin(2 * math.pi * t)), axis=1)
        row: list[np.ndarray | None] = []
        for a, (crop, alpha, lm) in zip(actors, cut):
            if a.visible is not None and not (a.visible[0] <= i < a.visible[1]):
                row.append(None)
                continue
            cx = (a.start[0] + (a.end[0] - a.start[0]) * t) * w
            cy = (a.start[1] + (a.end[1] - a.start[1]) * t) * h
            face_w = a.face_px[0] + (a.face_px[1] - a.face_px[0]) * t
            lm_w = lm[:, 0].max() - lm[:, 0].min()
            scale = face_w / max(lm_w, 1.0)
            angle = a.rotation_deg * math.sin(2 * math.pi * t + a.phase)
            centre = lm.mean(0)
            mat = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
            mat[:, 2] += np.array([cx, cy]) - centre
            gain = 1.0 + a.brightness * math.sin(2 * math.pi * t * 1.3 + a.phase)
            warped = cv2.warpAffine(crop.astype(np.float32) * gain, mat, (w, h), flags=cv2.INTER_LINEAR)
            wa = cv2.warpAffine(alpha, mat, (w, h), flags=cv2.INTER_LINEAR)[..., None]
            frame = frame * (1 - wa) + warped * wa
            row.append(lm @ mat[:, :2].T + mat[:, 2])
        if i in blank_frames:
            frame = bg.astype(np.float32)
            row = [None] * len(actors)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        marks.append(row)
    return Clip(frames, marks, fps, list(blank_frames))


def tone(duration_s: float, sample_rate: int = 44100, hz: float = 440.0) -> np.ndarray:
    """A mono sine tone with a slow amplitude wobble (so audio is not trivially constant)."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * hz * t) * (0.75 + 0.25 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)


def write_clip(
    path: str | Path,
    frames: list[np.ndarray],
    fps: float,
    audio: bool = True,
    crf: int = 18,
    sample_rate: int = 44100,
) -> Path:
    """Write RGB frames as H.264 mp4 (yuv420p) with an AAC sine tone, using PyAV only."""
    import av
    from fractions import Fraction

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        a_stream = None
        if audio:
            a_stream = out.add_stream("aac", rate=sample_rate)
            a_stream.layout = "mono"
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: vs.height, : vs.width]), format="rgb24")
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            samples = tone(len(frames) / fps, sample_rate)
            chunk = 1024
            for start in range(0, len(samples), chunk):
                block = samples[start : start + chunk][None, :]
                af = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
                af.sample_rate = sample_rate
                af.pts = start
                for packet in a_stream.encode(af):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return path


def two_person_clip(n_frames: int = 24, size: tuple[int, int] = (320, 240), seed: int = 0) -> Clip:
    """Einstein and Takeo crossing each other: for identity-tracking tests."""
    e_img, e_lm = sample_photo("einstein")
    t_img, t_lm = sample_photo("takeo")
    assert e_lm is not None and t_lm is not None
    return render_clip(
        [
            Actor(e_img, e_lm, start=(0.25, 0.5), end=(0.75, 0.45), face_px=(80, 90)),
            Actor(t_img, t_lm, start=(0.75, 0.5), end=(0.25, 0.55), face_px=(85, 75), phase=1.0),
        ],
        size=size,
        n_frames=n_frames,
        seed=seed,
    )


def h264_round_trip(frames: list[np.ndarray], crf: int = 28, fps: int = 25) -> list[np.ndarray]:
    """Re-encode frames through libx264 (yuv420p) in memory and decode them again: the "another tool
    re-encoded it" attack that watermark tests and benchmarks apply. Odd sizes are cropped to even."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.height, s.width = frames[0].shape[0] // 2 * 2, frames[0].shape[1] // 2 * 2
        s.pix_fmt, s.options = "yuv420p", {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            f = np.ascontiguousarray(f[: s.height, : s.width])
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        return [fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)]
