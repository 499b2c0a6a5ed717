"""`facecast faceset dedup`: fewest faces, widest variation.

Video gives hundreds of near-identical faces of the same head pose; training on them wastes time and
biases the model towards that pose. Two steps:

1. Near-duplicates: a 64-bit difference hash (dHash) of each face; faces within `hash_distance` bits of
   an already kept face are dropped, keeping the sharper one (exact copies are distance 0).
2. Coverage: if more than `target` faces remain, farthest-point sampling over a feature of yaw, pitch
   and the normalised landmark shape (expression) keeps `target` faces spread as widely as possible
   over pose and expression; it starts at the face farthest from the mean, so the extremes (full
   profiles, open mouths) are the first kept.

Nothing is deleted: removed faces are moved to `<folder>_removed/`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facecast.console import track
from facecast.errors import FacecastError
from facecast.faces.aligned import list_aligned, read_aligned
from facecast.faceset.aside import remove_faces
from facecast.faceset.common import face_mask, pose_of
from facecast.imaging.sharpness import laplacian_variance
from facecast.faceset.rename import finish_pending


@dataclass
class DedupSettings:
    target: int | None = None  # keep at most this many faces (None: only drop duplicates)
    hash_distance: int = 4  # dHash bits (of 64) within which two faces count as duplicates
    pose_scale_deg: float = 30.0  # this many degrees of yaw/pitch weigh as much as...
    shape_weight: float = 4.0  # ...this factor times the landmark-shape deviation (fraction of face size)

    def validate(self) -> "DedupSettings":
        if self.target is not None and self.target < 1:
            raise FacecastError(f"--target must be at least 1, not {self.target}")
        if not 0 <= self.hash_distance <= 64:
            raise FacecastError(f"--hash-distance must be 0..64, not {self.hash_distance}")
        return self


@dataclass
class DedupResult:
    folder: str
    removed_folder: str
    before: int
    kept: int
    duplicates: list[str] = field(default_factory=list)
    thinned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["duplicates"], d["thinned"] = len(self.duplicates), len(self.thinned)
        return d


def dhash(img: np.ndarray) -> int:
    """64-bit difference hash: robust to JPEG noise and small brightness changes, not to pose change."""
    gray = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hamming(hashes: np.ndarray, h: np.uint64) -> np.ndarray:
    """Bit differences between each 64-bit hash in `hashes` and `h` (vectorised popcount)."""
    x = np.ascontiguousarray(hashes ^ h)
    return np.unpackbits(x.view(np.uint8)).reshape(len(x), 64).sum(1)


def farthest_points(features: np.ndarray, k: int) -> list[int]:
    """Greedy farthest-point sampling: each pick is the point farthest from all picks so far."""
    n = len(features)
    if k >= n:
        return list(range(n))
    first = int(np.argmax(np.linalg.norm(features - features.mean(0), axis=1)))
    picked = [first]
    dist = np.linalg.norm(features - features[first], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(features - features[nxt], axis=1))
    return picked


def dedup(folder: str | Path, target: int | None = None, settings: DedupSettings | None = None,
          quiet: bool = True) -> DedupResult:
    """Drop near-duplicates, then thin to `target` faces covering the widest pose/expression range."""
    folder = Path(folder)
    s = settings or DedupSettings()
    if target is not None:
        s.target = target
    s.validate()
    finish_pending(folder)
    files = list_aligned(folder)
    if not files:
        raise FacecastError(f"{folder}: no aligned faces to de-duplicate")
    hashes, sharp, feats = [], [], []
    for p in track(files, description="hashing faces", quiet=quiet):
        face = read_aligned(p)
        hashes.append(dhash(face.image))
        sharp.append(laplacian_variance(face.image, face_mask(face.meta, 256)))
        yaw, pitch = pose_of(face.meta)
        lm = face.meta.landmarks_array / float(face.meta.size)
        feats.append(np.concatenate([[yaw / s.pose_scale_deg, pitch / s.pose_scale_deg], lm.ravel()]))
    feat = np.array(feats)
    shape = feat[:, 2:]
    feat[:, 2:] = (shape - shape.mean(0)) * s.shape_weight

    # 1. duplicates: visit sharpest first, so the kept copy of each group is the sharpest.
    kept: list[int] = []
    dup: list[int] = []
    hash_arr = np.array(hashes, dtype=np.uint64)
    kept_hashes = np.zeros(len(files), dtype=np.uint64)
    for i in np.argsort(-np.array(sharp), kind="stable"):
        if kept and hamming(kept_hashes[: len(kept)], hash_arr[i]).min() <= s.hash_distance:
            dup.append(int(i))
        else:
            kept_hashes[len(kept)] = hash_arr[i]
            kept.append(int(i))
    # 2. coverage
    thin: list[int] = []
    if s.target is not None and len(kept) > s.target:
        chosen = set(kept[j] for j in farthest_points(feat[kept], s.target))
        thin = [i for i in kept if i not in chosen]
        kept = [i for i in kept if i in chosen]

    dup_names = sorted(files[i].name for i in dup)
    thin_names = sorted(files[i].name for i in thin)
    moved = remove_faces(folder, dup_names + thin_names)  # the studio's recoverable delete: one mover
    return DedupResult(str(folder), moved["removed_folder"], len(files), len(kept), dup_names, thin_names)
