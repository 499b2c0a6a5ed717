"""Small real-photo facesets for tests, the benchmark and the demo (no downloads).

Each face is cut from a frame of a rendered clip of a bundled photo (moving, rolling, brightness
changing; see `facecast.media.synth.render_clip`) using the clip's ground-truth landmarks, so a faceset
has real pose/lighting variety without a detector in the loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecast.faces.align import align_face
from facecast.faces.aligned import AlignedMeta, SourceInfo, write_aligned
from facecast.media.synth import Actor, render_clip, sample_photo
from facecast.provenance import gate_verdict


def make_faceset(folder: Path, photo: str, count: int, face_type: str = "whole_face", size: int = 64,
                 seed: int = 0) -> list[Path]:
    """Write `count` aligned faces of bundled photo `photo` ("einstein", "takeo") into `folder`."""
    image, landmarks = sample_photo(photo)
    if landmarks is None:
        raise ValueError(f"photo {photo!r} has no landmarks")
    rng = np.random.default_rng(seed)
    actor = Actor(image, landmarks, start=(0.45, 0.5), end=(0.55, 0.5), face_px=(110.0, 140.0),
                  rotation_deg=12.0, brightness=0.2, phase=float(rng.uniform(0, 6.28)))
    clip = render_clip([actor], size=(256, 256), n_frames=count, seed=seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (frame, row) in enumerate(zip(clip.frames, clip.landmarks)):
        lm = row[0]
        face, mat, aligned_lm = align_face(frame, lm, face_type, size)
        lo, hi = lm.min(0), lm.max(0)
        meta = AlignedMeta(
            face_type=face_type, size=size, landmarks=aligned_lm.tolist(),
            source=SourceInfo(f"{photo}_{i:04d}.png", (256, 256), (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), lm.tolist()),
            image_to_face=mat.tolist(), pose={"yaw": float(rng.uniform(-30, 30)), "pitch": 0.0, "roll": 0.0},
            detector={"name": "ground-truth"},
        )
        path = folder / f"{photo}_{i:04d}.jpg"
        meta.content_gate = gate_verdict(face, path.name)  # what every import path records
        write_aligned(path, face, meta)
        out.append(path)
    return out
