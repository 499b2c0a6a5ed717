"""Small helpers the faceset tools share: folder resolution, the face's hull, pose fallback.

Why one place: every command resolves `src`/`dst` against the workspace the same way and measures a
face inside the same hull. What "sharp" means lives in facecast.imaging.sharpness (extraction stores it
too, so `sort --by blur`, `dedup` and `import-dfl` agree with the stored number).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facecast.errors import FacecastError
from facecast.faces.aligned import AlignedMeta
from facecast.imaging.hull import hull_mask

JOURNAL = ".facecast_rename.json"  # two-phase rename journal (see rename.py)


def resolve_faceset(target: str | Path, workspace: str | Path | None = None) -> Path:
    """`src`/`dst` mean the workspace's aligned folders; anything else is a folder path."""
    if str(target) in ("src", "dst"):
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace if workspace is not None else ".")
        folder = ws.aligned(str(target))
    else:
        folder = Path(target).expanduser()
    if not folder.is_dir():
        raise FacecastError(f"{folder}: faceset folder not found; run `facecast extract` first or pass a folder")
    return folder


def face_mask(meta: AlignedMeta, size: int) -> np.ndarray:
    """Landmark hull of the face at `size` px (bool), so background texture does not count as face."""
    return hull_mask(meta.landmarks_array * (size / float(meta.size)), size) > 0.5


def has_pose(meta: AlignedMeta) -> bool:
    """Extraction stores a pose; an all-zero pose is the dataclass default, i.e. never estimated."""
    p = meta.pose or {}
    return any(abs(float(p.get(k, 0.0))) > 0.0 for k in ("yaw", "pitch", "roll"))


def pose_of(meta: AlignedMeta) -> tuple[float, float]:
    """(yaw, pitch) in degrees: stored pose, else the faces stage's estimator, else a landmark proxy."""
    if has_pose(meta):
        return float(meta.pose.get("yaw", 0.0)), float(meta.pose.get("pitch", 0.0))
    lm = meta.source_landmarks if len(meta.source.landmarks) == 68 else meta.landmarks_array
    try:  # the faces stage owns the real estimator; imported lazily so this module works without it
        from facecast.faces.pose import estimate_pose  # type: ignore[import-not-found]

        pose = estimate_pose(lm)
        get = pose.get if isinstance(pose, dict) else (lambda k, d=0.0: getattr(pose, k, d))
        return float(get("yaw", 0.0)), float(get("pitch", 0.0))
    except ImportError:
        return proxy_pose(meta.landmarks_array)


def proxy_pose(lm: np.ndarray) -> tuple[float, float]:
    """A rough (yaw, pitch) in degrees from aligned 68-point landmarks.

    Yaw: where the nose tip sits between the jaw's left and right ends (centred = frontal). Pitch: the
    nose tip's height between the eye line and the mouth, against the mean face's ratio. Only a fallback
    for faces without a stored pose; good for ordering, not for measuring angles."""
    lm = np.asarray(lm, dtype=np.float64)
    left, right, nose = lm[0], lm[16], lm[30]
    width = np.linalg.norm(right - left) + 1e-9
    t = float(np.dot(nose - left, right - left) / width**2)  # 0..1 along the jaw line
    yaw = math.degrees(math.asin(float(np.clip(2.0 * t - 1.0, -1.0, 1.0))))
    eyes = (lm[36:48]).mean(0)
    mouth = (lm[48:68]).mean(0)
    span = np.linalg.norm(mouth - eyes) + 1e-9
    r = float(np.dot(nose - eyes, mouth - eyes) / span**2)
    mean_r = 0.62  # the mean face (facetype.MEAN_FACE_68) has the nose tip ~62 % of the way down
    pitch = math.degrees(math.asin(float(np.clip((r - mean_r) * 2.5, -1.0, 1.0))))
    return yaw, pitch


def unique_name(folder: Path, name: str, taken: set[str] | None = None) -> str:
    """`name`, or `stem_1.ext`, `stem_2.ext`, ... whichever is free in `folder` (and not in `taken`)."""
    taken = taken if taken is not None else set()
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, i = name, 0
    while candidate in taken or (folder / candidate).exists():
        i += 1
        candidate = f"{stem}_{i}{suffix}"
    return candidate
