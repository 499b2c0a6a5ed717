"""Aligned facesets made from the bundled real photos, for tests, benchmarks and the demo.

Why: segmentation needs many aligned faces with known landmarks, and the project ships only a few
annotated photos. Re-photographing each one under a random similarity (roll, scale, shift), mirror and
lighting change gives varied aligned faces whose landmarks are exact (the annotation, transformed), so
the landmark-hull target and any synthetic occluder mask are exact too. "Labelled" faces carry a baked-in
occluder and include/exclude polygons tracing face-minus-occluder, as a user would draw them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facecast.faces.align import align_face
from facecast.faces.aligned import AlignedMeta, SourceInfo, write_aligned
from facecast.faces.facetype import MIRROR_68
from facecast.imaging.hull import hull_mask
from facecast.masks.occluders import OccluderSettings, occlude
from facecast.masks.polygons import mask_to_polygons
from facecast.media.synth import sample_photo

PHOTOS = ("einstein", "takeo", "breakingbad")
LABEL_FOREHEAD = 0.3


def _photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    img, lm = sample_photo(name)
    assert lm is not None
    return img, lm


def random_face(rng: np.random.Generator, face_type: str = "whole_face", size: int = 256,
                photos: tuple[str, ...] = PHOTOS) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(aligned face, aligned landmarks, 2x3 frame->face matrix, photo name) under a random pose/light."""
    name = photos[int(rng.integers(len(photos)))]
    img, lm = _photo(name)
    h, w = img.shape[:2]
    if rng.random() < 0.5:
        img = np.ascontiguousarray(img[:, ::-1])
        lm = lm[MIRROR_68].copy()
        lm[:, 0] = w - 1 - lm[:, 0]
    c = lm.mean(0)
    mat = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), rng.uniform(-20, 20), rng.uniform(0.8, 1.2))
    frame = cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lm = lm @ mat[:, :2].T + mat[:, 2]
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, 3)
    frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    # a small alignment error, as a real detector would make (the hull follows the same points)
    lm_seen = lm + rng.normal(0, 0.004 * (lm.max(0) - lm.min(0)).max(), lm.shape)
    face, m, alm = align_face(frame, lm_seen, face_type, size)
    return face, alm, m, name


def write_faceset(folder: str | Path, n: int, face_type: str = "whole_face", size: int = 256, seed: int = 0,
                  labelled: int = 0, prefix: str = "", photos: tuple[str, ...] = PHOTOS) -> list[Path]:
    """Write `n` aligned faces; the first `labelled` get a baked-in occluder and matching polygons."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        face, alm, mat, name = random_face(rng, face_type, size, photos)
        polys = None
        if i < labelled:
            hull = hull_mask(alm, size, forehead=LABEL_FOREHEAD)
            occ = occlude(face, hull, rng, settings=OccluderSettings(max_count=2), force=True)
            face = occ.image
            polys = mask_to_polygons(occ.target)
        meta = AlignedMeta(
            face_type=face_type, size=size, landmarks=alm.tolist(),
            source=SourceInfo(f"{name}.jpg", (0, 0), (0.0, 0.0, 0.0, 0.0), []),
            image_to_face=mat.tolist(), face_index=0, identity=name, mask_polygons=polys,
            detector={"name": "synthetic"},
        )
        path = folder / f"{prefix}{i:05d}_0.jpg"
        write_aligned(path, face, meta)
        paths.append(path)
    return paths


def occlusion_set(n: int, face_type: str = "whole_face", size: int = 256, seed: int = 100,
                  photos: tuple[str, ...] = PHOTOS) -> dict[str, np.ndarray]:
    """A held-out evaluation set: faces with one or two pasted occluders whose true masks are known.

    Returns arrays: images N x S x S x 3, target (hull + forehead minus occluders), hull, occluder,
    region (the occluder grown by ~3 % of the size, within the grown hull: where occluded-region IoU is
    measured)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("images", "target", "hull", "occluder", "region")}
    grow = max(1, size // 32) * 2 + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))
    for _ in range(n):
        face, alm, _, _ = random_face(rng, face_type, size, photos)
        hull = (hull_mask(alm, size, forehead=LABEL_FOREHEAD) > 0.5).astype(np.float32)
        occ = occlude(face, hull, rng, settings=OccluderSettings(max_count=2), force=True)
        region = cv2.dilate(occ.occluder, kernel) * cv2.dilate(hull, kernel)
        for k, v in (("images", occ.image), ("target", occ.target), ("hull", hull), ("occluder", occ.occluder),
                     ("region", (region > 0.5).astype(np.float32))):
            out[k].append(v)
    return {k: np.stack(v) for k, v in out.items()}


def region_iou(pred: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    """Mean per-face IoU counted only inside `region` (faces whose region is empty are skipped)."""
    p, t, r = np.asarray(pred) > 0.5, np.asarray(target) > 0.5, np.asarray(region) > 0.5
    scores = []
    for pi, ti, ri in zip(p, t, r):
        if not ri.any():
            continue
        union = ((pi | ti) & ri).sum()
        scores.append(((pi & ti) & ri).sum() / union if union else 1.0)
    return float(np.mean(scores)) if scores else float("nan")
