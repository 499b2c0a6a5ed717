"""`facecast faceset sort`: reorder a faceset by renaming with a numeric prefix, reversibly.

Why renaming: DeepFaceLab users sort to review (the worst faces gather at one end, where they are
deleted in a file browser); the order must survive copying, so it lives in the names. Each face's
first name is kept in its metadata (`extra.original_name`), so `recover_names` undoes any number of
sorts. Renames go through rename.py (two-phase, journaled): no collision, no loss on a crash.

Orders (first file = first listed):
  blur         sharpest first (variance of the Laplacian inside the landmark hull)
  motion-blur  least motion-smeared first (gradient energy along the weakest direction)
  yaw, pitch   ascending angle (one profile to the other; head down to head up)
  hist         similar colour histograms grouped (greedy nearest-neighbour chain, Bhattacharyya)
  hist-dissim  most dissimilar first (sum of histogram distances to all others)
  brightness   brightest first (mean HSV value inside the face)
  hue          ascending mean hue inside the face (circular mean, saturation-weighted)
  black        fewest black pixels first (faces cut by the frame edge end up last)
  origname     source frame filename order, then face index
  face-count   frames with the most faces first, then source order
  best         the sharpest face of each pose cell first, cycling through the cells: the first K
               files are a sharp sample spread over yaw and pitch (DFL's "best" idea)
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.console import track
from facecast.errors import FacecastError
from facecast.faces.aligned import AlignedMeta, list_aligned, read_aligned, read_meta, update_meta
from facecast.faceset.common import face_mask, pose_of
from facecast.imaging.sharpness import laplacian_variance, motion_sharpness
from facecast.faceset.rename import finish_pending, rename_all

SORT_METHODS = (
    "blur", "motion-blur", "yaw", "pitch", "hist", "hist-dissim", "brightness", "hue", "black",
    "origname", "face-count", "best",
)
ORIGINAL_KEY = "original_name"


@dataclass
class SortResult:
    folder: str
    method: str
    count: int
    renamed: int
    order: list[str] = field(default_factory=list)  # new file names, in sorted order

    def as_dict(self) -> dict:
        return {"folder": self.folder, "sorted_by": self.method, "faces": self.count, "renamed": self.renamed,
                "first": self.order[:5], "last": self.order[-5:]}


def natural_key(text: str) -> list:
    """'frame_10' after 'frame_9': numbers compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


@dataclass
class _Face:
    name: str
    meta: AlignedMeta
    value: Any = None  # the per-face measure of the sort method (pixels are never kept: big sets)


def _small(image: np.ndarray, side: int = 128) -> np.ndarray:
    img = image
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = img[..., :3]
    if img.shape[0] != side:
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return img


def histogram(img: np.ndarray, bins: int = 32) -> np.ndarray:
    """Per-channel normalised RGB histogram, 3*bins values (each channel sums to 1)."""
    hists = [np.bincount((img[..., c].ravel() // (256 // bins)).astype(np.int64), minlength=bins) for c in range(3)]
    h = np.stack(hists).astype(np.float64)
    return (h / np.maximum(h.sum(1, keepdims=True), 1)).ravel()


def hist_distances(h: np.ndarray, rows: np.ndarray, bins: int = 32) -> np.ndarray:
    """Bhattacharyya distance (mean over the 3 channels) from each of `rows` to every histogram in h."""
    sq = np.sqrt(h).reshape(len(h), 3, bins)
    out = np.zeros((len(rows), len(h)))
    for c in range(3):
        bc = sq[rows, c] @ sq[:, c].T
        out += np.sqrt(np.clip(1.0 - bc, 0.0, None))
    return out / 3.0


def _hist_chain(hists: np.ndarray) -> list[int]:
    """Greedy nearest-neighbour walk from the first face: similar faces end up next to each other."""
    n = len(hists)
    order, left = [0], np.ones(n, bool)
    left[0] = False
    while left.any():
        d = hist_distances(hists, np.array([order[-1]]))[0]
        d[~left] = np.inf
        nxt = int(np.argmin(d))
        order.append(nxt)
        left[nxt] = False
    return order


def _hist_dissim(hists: np.ndarray, chunk: int = 512) -> np.ndarray:
    total = np.zeros(len(hists))
    for start in range(0, len(hists), chunk):
        rows = np.arange(start, min(start + chunk, len(hists)))
        total[rows] = hist_distances(hists, rows).sum(1)
    return total


def _hsv_in_face(image: np.ndarray, meta: AlignedMeta) -> tuple[np.ndarray, np.ndarray]:
    img = _small(image)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float64)
    mask = face_mask(meta, img.shape[0]).ravel()
    return hsv, mask if mask.any() else np.ones_like(mask)


def _brightness(image: np.ndarray, meta: AlignedMeta) -> float:
    hsv, m = _hsv_in_face(image, meta)
    return float(hsv[m, 2].mean())


def _hue(image: np.ndarray, meta: AlignedMeta) -> float:
    hsv, m = _hsv_in_face(image, meta)
    ang = hsv[m, 0] / 256.0 * 2 * math.pi
    w = hsv[m, 1] + 1e-6
    return float(math.atan2((w * np.sin(ang)).sum(), (w * np.cos(ang)).sum()) % (2 * math.pi))


def _black(image: np.ndarray, meta: AlignedMeta) -> float:
    img = image[..., :3] if image.ndim == 3 else image[..., None]
    return float((img.max(axis=-1) <= 10).mean())


def _sharp(image: np.ndarray, meta: AlignedMeta) -> float:
    return laplacian_variance(image, face_mask(meta, 256))


def _motion(image: np.ndarray, meta: AlignedMeta) -> float:
    return motion_sharpness(image, face_mask(meta, 256))


# method -> (measure from pixels, larger first?)
_PIXEL_MEASURES: dict[str, tuple[Callable[[np.ndarray, AlignedMeta], Any], bool]] = {
    "blur": (_sharp, True),
    "best": (_sharp, True),
    "motion-blur": (_motion, True),
    "brightness": (_brightness, True),
    "hue": (_hue, False),
    "black": (_black, False),
    "hist": (lambda img, meta: histogram(_small(img)), False),
    "hist-dissim": (lambda img, meta: histogram(_small(img)), False),
}


def _load(folder: Path, by: str, quiet: bool) -> list[_Face]:
    """Metadata of every face plus the method's measure, one face in memory at a time."""
    files = list_aligned(folder)
    measure = _PIXEL_MEASURES.get(by, (None, False))[0]
    faces = []
    for p in track(files, description=f"measuring {by}", quiet=quiet):
        if measure is not None:
            f = read_aligned(p)
            faces.append(_Face(p.name, f.meta, measure(f.image, f.meta)))
        else:
            faces.append(_Face(p.name, read_meta(p)))
    return faces


def _origname_key(face: _Face) -> tuple:
    return (natural_key(face.meta.source.filename), face.meta.face_index, natural_key(face.name))


def _best(faces: list[_Face], yaw_bins: int = 9, pitch_bins: int = 3) -> list[int]:
    poses = np.array([pose_of(f.meta) for f in faces]).reshape(-1, 2)
    sharp = np.array([float(f.value) for f in faces])

    def bins(v: np.ndarray, k: int) -> np.ndarray:
        lo, hi = float(v.min()), float(v.max())
        if hi - lo < 1e-9:
            return np.zeros(len(v), int)
        return np.minimum(((v - lo) / (hi - lo) * k).astype(int), k - 1)

    cell = bins(poses[:, 0], yaw_bins) * pitch_bins + bins(poses[:, 1], pitch_bins)
    cells: dict[int, list[int]] = defaultdict(list)
    for i in np.argsort(-sharp, kind="stable"):
        cells[int(cell[i])].append(int(i))
    order, keys, r = [], sorted(cells), 0
    while len(order) < len(faces):
        for k in keys:
            if r < len(cells[k]):
                order.append(cells[k][r])
        r += 1
    return order


def sort_order(faces: list[_Face], by: str) -> list[int]:
    """Indices of `faces` in the order method `by` gives (before `reverse`)."""
    n = len(faces)
    if by == "hist":
        return _hist_chain(np.stack([f.value for f in faces]))
    if by == "hist-dissim":
        return list(np.argsort(-_hist_dissim(np.stack([f.value for f in faces])), kind="stable"))
    if by == "best":
        return _best(faces)
    if by == "origname":
        return sorted(range(n), key=lambda i: _origname_key(faces[i]))
    if by == "face-count":
        counts = Counter(f.meta.source.filename for f in faces)
        return sorted(range(n), key=lambda i: (-counts[faces[i].meta.source.filename], _origname_key(faces[i])))
    if by in ("yaw", "pitch"):
        k = 0 if by == "yaw" else 1
        scores, descending = np.array([pose_of(f.meta)[k] for f in faces]), False
    else:
        scores, descending = np.array([float(f.value) for f in faces]), _PIXEL_MEASURES[by][1]
    return list(np.argsort(-scores if descending else scores, kind="stable"))


def _remember_names(folder: Path, faces: list[_Face], quiet: bool) -> None:
    """Store each face's first name in its metadata (once), before any rename: what makes sort reversible."""
    todo = [f for f in faces if ORIGINAL_KEY not in f.meta.extra]
    for f in track(todo, description="recording names", quiet=quiet):
        f.meta.extra[ORIGINAL_KEY] = f.name
        update_meta(folder / f.name, f.meta)


def sort_faceset(folder: str | Path, by: str, reverse: bool = False, quiet: bool = True) -> SortResult:
    """Sort the faces of `folder` by method `by` (see the module docstring) by renaming them
    `NNNNN_<original name>`; `recover_names` undoes it."""
    folder = Path(folder)
    by = by.lower().replace("_", "-")
    if by not in SORT_METHODS:
        raise FacecastError(f"unknown sort method {by!r}: choose one of {', '.join(SORT_METHODS)}")
    finish_pending(folder)
    faces = _load(folder, by, quiet)
    if not faces:
        raise FacecastError(f"{folder}: no aligned faces to sort")
    order = [int(i) for i in sort_order(faces, by)]
    if reverse:
        order.reverse()
    _remember_names(folder, faces, quiet)
    width = max(5, len(str(len(faces) - 1)))
    mapping, new_names = {}, []
    for rank, i in enumerate(order):
        f = faces[i]
        new = f"{rank:0{width}d}_{f.meta.extra[ORIGINAL_KEY]}"
        mapping[f.name] = new
        new_names.append(new)
    renamed = rename_all(folder, mapping)
    return SortResult(str(folder), by, len(faces), renamed, new_names)


def recover_names(folder: str | Path, quiet: bool = True) -> dict:
    """Give every face back the name it had before its first sort (collisions get `_1`, `_2`...)."""
    folder = Path(folder)
    finish_pending(folder)
    files = list_aligned(folder)
    metas = {p.name: read_meta(p) for p in track(files, description="reading names", quiet=quiet)}
    fixed = {n for n, m in metas.items() if ORIGINAL_KEY not in m.extra}
    taken: set[str] = set(fixed)
    mapping: dict[str, str] = {}
    # Files already bearing their original name keep it first, so others yield to them.
    wanted = sorted(((n, str(m.extra[ORIGINAL_KEY])) for n, m in metas.items() if n not in fixed),
                    key=lambda t: (t[0] != t[1], natural_key(t[0])))
    for name, original in wanted:
        # never leave the folder, hide the file, or change its type, whatever the metadata says
        original = f"{Path(original).stem.lstrip('.') or Path(name).stem}{Path(name).suffix}"
        target, k = original, 0
        while target in taken:
            k += 1
            target = f"{Path(original).stem}_{k}{Path(original).suffix}"
        taken.add(target)
        mapping[name] = target
    renamed = rename_all(folder, mapping)
    return {"folder": str(folder), "faces": len(files), "renamed": renamed, "without_original_name": len(fixed)}
