"""Hand-built scoring workspaces from bundled real photos, without the other stages.

Why: the score and its benchmark need workspaces whose answers are known, even before extraction,
training and merge exist. Frames come from `render_clip` (ground-truth landmarks per frame), aligned
faces are cut with those landmarks, and the two reference "swaps" are built directly:
- **no swap**: merged = dst itself (identity floor: the swap is still dst; pose/expression perfect),
- **paste src**: the src photo warped onto dst's landmarks, colour-matched, hull-blended (identity
  ceiling: it *is* src; pose/expression are those of the still photo, flicker from pasting).
"""

from __future__ import annotations

import numpy as np

from facecast.faces.align import align_face, umeyama
from facecast.faces.aligned import AlignedMeta, SourceInfo, write_aligned
from facecast.faces.facetype import INNER
from facecast.masks.hull import hull_mask
from facecast.media.images import write_image
from facecast.provenance import gate_verdict
from facecast.media.synth import Actor, Clip, render_clip, sample_photo
from facecast.workspace import Workspace

import cv2


def actor_clip(photo: str, n_frames: int, size: tuple[int, int] = (320, 240), seed: int = 0,
               face_px: tuple[float, float] = (110.0, 130.0), rotation_deg: float = 10.0) -> Clip:
    """One bundled photo moving, scaling, rolling and changing brightness through a clip."""
    image, landmarks = sample_photo(photo)
    if landmarks is None:
        raise ValueError(f"photo {photo!r} has no landmark annotation")
    actor = Actor(image, landmarks, start=(0.42, 0.5), end=(0.58, 0.52), face_px=face_px,
                  rotation_deg=rotation_deg, brightness=0.12)
    return render_clip([actor], size=size, n_frames=n_frames, fps=12.0, seed=seed)


def _meta(name: str, frame_size: tuple[int, int], lm: np.ndarray, mat: np.ndarray, aligned_lm: np.ndarray,
          face_type: str, size: int) -> AlignedMeta:
    lo, hi = lm.min(0), lm.max(0)
    return AlignedMeta(
        face_type=face_type,
        size=size,
        landmarks=aligned_lm.tolist(),
        source=SourceInfo(name, frame_size, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), lm.tolist()),
        image_to_face=mat.tolist(),
        detector={"name": "ground-truth", "version": "synthetic"},
    )


def write_side(ws: Workspace, side: str, clip: Clip, face_type: str = "whole_face", size: int = 128) -> list[np.ndarray]:
    """Frames to data_<side>/ and their aligned faces (from ground-truth landmarks) to aligned/."""
    landmarks = []
    h, w = clip.frames[0].shape[:2]
    for i, (frame, marks) in enumerate(zip(clip.frames, clip.landmarks)):
        name = f"{i:05d}.png"
        write_image(ws.data(side) / name, frame)
        lm = marks[0]
        landmarks.append(lm)
        if lm is None:
            continue
        face, mat, alm = align_face(frame, lm, face_type, size)
        meta = _meta(name, (w, h), lm, mat, alm, face_type, size)
        meta.content_gate = gate_verdict(frame, name)  # as extract records it (train requires it)
        write_aligned(ws.aligned(side) / f"{i:05d}_0.jpg", face, meta)
    return landmarks


def paste_face(frame: np.ndarray, frame_lm: np.ndarray, photo: np.ndarray, photo_lm: np.ndarray,
               colour_match: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Warp `photo`'s face onto the face at `frame_lm` (similarity on the inner 51 points), match its
    colour mean/std inside the hull, and blend with a feathered hull mask. Returns (image, mask 0-255)."""
    h, w = frame.shape[:2]
    mat = umeyama(np.asarray(photo_lm)[INNER], np.asarray(frame_lm)[INNER])
    warped = cv2.warpAffine(photo, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = hull_mask(frame_lm, (w, h), forehead=0.15)
    k = max(3, int(np.ptp(np.asarray(frame_lm)[:, 0]) / 10) | 1)
    soft = cv2.GaussianBlur(cv2.erode(mask, np.ones((k, k), np.uint8)), (k, k), 0)
    out = warped.astype(np.float32)
    if colour_match:
        sel = mask > 0.5
        for c in range(3):
            src_c, dst_c = out[..., c][sel], frame[..., c][sel].astype(np.float32)
            out[..., c] = (out[..., c] - src_c.mean()) / (src_c.std() + 1e-6) * dst_c.std() + dst_c.mean()
    blended = out * soft[..., None] + frame.astype(np.float32) * (1 - soft[..., None])
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8), np.clip(soft * 255 + 0.5, 0, 255).astype(np.uint8)


def write_merged(ws: Workspace, frames: list[np.ndarray], masks: list[np.ndarray] | None = None) -> None:
    """Write `frames` as data_dst/merged/<frame>.png (+ merged_mask/) the way the merge stage names them."""
    for i, frame in enumerate(frames):
        write_image(ws.merged / f"{i:05d}.png", frame)
        if masks is not None:
            write_image(ws.merged_mask / f"{i:05d}.png", masks[i])


def build_workspace(root, src: str = "einstein", dst: str = "takeo", n_src: int = 4, n_dst: int = 6,
                    merged: str | None = "paste", size: int = 128, seed: int = 0) -> Workspace:
    """A complete scoring workspace: src and dst clips, aligned faces, and a merged folder
    ("paste": src photo pasted on dst, "none": dst itself, None: no merged frames)."""
    ws = Workspace.open(root, create=True)
    from facecast.provenance.consent import add_consent

    add_consent(ws, src, "bundled public-domain/test photo, used only in tests and benchmarks",
                "facecast tests", src=True)
    write_side(ws, "src", actor_clip(src, n_src, seed=seed + 1), size=size)
    dst_clip = actor_clip(dst, n_dst, seed=seed)
    dst_lm = write_side(ws, "dst", dst_clip, size=size)
    if merged == "none":
        write_merged(ws, dst_clip.frames)
    elif merged == "paste":
        photo, photo_lm = sample_photo(src)
        pasted = [paste_face(f, lm, photo, photo_lm) for f, lm in zip(dst_clip.frames, dst_lm)]
        write_merged(ws, [p[0] for p in pasted], [p[1] for p in pasted])
    elif merged is not None:
        raise ValueError(f"merged must be 'paste', 'none' or None, not {merged!r}")
    return ws
