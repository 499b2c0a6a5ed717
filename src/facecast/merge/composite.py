"""`merge_frame`: composite predicted faces into one dst frame. Pure: arrays in, arrays out.

Per face, in the model's face space (resolution R): optional face scale, mask combination (masks.py),
erode/blur, histogram match, colour transfer, sharpen, motion blur; then the face and its mask are
warped back into the frame (only the face's bounding box is touched, which keeps a 1080p frame cheap)
and blended by mode. Frame-level filters (denoise, bicubic degrade) soften the dst frame before the
blend and colour degrade acts on the result, as in DeepFaceLab's merger.

Raw modes: raw-rgb pastes the whole predicted square over the frame; raw-predict puts it on black (at
frame size, unlike DeepFaceLab's face-size image, so `facecast video` can encode any mode); raw-mask
writes the blend mask as a grey frame. `face_scale` zooms the predicted face (and its learned/XSeg-prd
masks) inside the fixed dst region; `output_face_scale` scales face and mask together in the frame.

Warps: face with cv2.INTER_CUBIC (clipped to [0,1]), mask with cv2.INTER_LINEAR, both with
WARP_INVERSE_MAP of the frame->face matrix; values under 1/255 of the mask are zeroed. A compositor
given the exported patch (final face colour), mask and matrix reproduces overlay mode with those rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from facecast.faces.align import invert, transform_points, warp_to_face
from facecast.merge import blend
from facecast.imaging.color import ColorStats, color_transfer, hist_match, transfer_stats
from facecast.imaging.warp import motion_blur
from facecast.merge.masks import combine_masks, hull_in_face
from facecast.merge.settings import MergeSettings


@dataclass
class FaceJob:
    """One dst face to replace: its frame landmarks and the frame->model-face matrix."""

    landmarks: np.ndarray  # 68x2, frame pixels
    matrix: np.ndarray  # 2x3, frame -> model face space (R x R)
    motion: tuple[float, float] = (0.0, 0.0)  # face motion per frame in frame px (dx, dy)
    name: str = ""  # aligned-face file it came from (for listings and patch export)


@dataclass
class FaceOutput:
    """What the model (and optional segmenter) produced for one face, in model face space."""

    face: np.ndarray  # R x R x 3 float32 [0,1]
    src_mask: np.ndarray | None = None  # learned-prd
    dst_mask: np.ndarray | None = None  # learned-dst
    xseg_prd: np.ndarray | None = None
    xseg_dst: np.ndarray | None = None
    mask: np.ndarray | None = None  # combined mask given from outside (temporal smoothing) instead of combining
    color_stats: ColorStats | None = None  # time-averaged colour statistics instead of this frame's


@dataclass
class FacePatch:
    """The final face-space face, mask and frame->face matrix of one merged face (for compositors)."""

    face: np.ndarray  # R x R x 3 float32 [0,1], after colour transfer and filters
    mask: np.ndarray  # R x R float32 [0,1], after erode/blur
    matrix: np.ndarray  # 2x3 frame -> face space used for the paste
    raw: np.ndarray  # R x R x 3 float32: the model's prediction as it came
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)  # frame box (x0, y0, x1, y1) the paste wrote
    name: str = ""


@dataclass
class MergeResult:
    image: np.ndarray  # H x W x 3 uint8
    mask: np.ndarray  # H x W float32 [0,1]
    patches: list[FacePatch] = field(default_factory=list)


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def dst_crop(frame: np.ndarray, job: FaceJob, size: int) -> np.ndarray:
    """The dst face as the model saw it: float32 [0,1] in model face space."""
    return warp_to_face(frame, job.matrix, size).astype(np.float32) / 255.0


def face_mask(job: FaceJob, out: FaceOutput, settings: MergeSettings) -> np.ndarray:
    """The combined (not yet eroded/blurred) face-space mask for this face."""
    size = out.face.shape[0]
    if out.mask is not None:
        return out.mask
    zoomed = [blend.zoom(m, settings.face_scale, cv2.BORDER_CONSTANT) if m is not None else None for m in (out.src_mask, out.xseg_prd)]
    return combine_masks(
        settings.mask_mode,
        hull=hull_in_face(job.landmarks, job.matrix, size) if settings.mask_mode == "dst" else None,
        learned_prd=zoomed[0],
        learned_dst=out.dst_mask,
        xseg_prd=zoomed[1],
        xseg_dst=out.xseg_dst,
    )


def _prepare(frame: np.ndarray, job: FaceJob, out: FaceOutput, s: MergeSettings):
    size = out.face.shape[0]
    prd = blend.zoom(np.asarray(out.face, np.float32), s.face_scale)
    dst = dst_crop(frame, job, size)
    mask = blend.erode_blur(face_mask(job, out, s), s.erode, s.blur)
    if s.mode in ("hist-match", "seamless-hist-match"):
        m = mask if s.masked_hist_match else None
        prd = hist_match(prd, dst, m, m, s.hist_match_threshold)
    return prd, dst, mask


def face_statistics(frame: np.ndarray, job: FaceJob, out: FaceOutput, s: MergeSettings) -> tuple[np.ndarray, ColorStats | None]:
    """(combined mask, colour statistics) of one face: what temporal smoothing averages over frames."""
    prd, dst, mask = _prepare(frame, job, out, s)
    return face_mask(job, out, s), transfer_stats(s.color_transfer, prd, dst, mask, mask)


def _face_pixels(frame: np.ndarray, job: FaceJob, out: FaceOutput, s: MergeSettings) -> tuple[np.ndarray, np.ndarray]:
    """Final face-space face and mask (everything before the paste)."""
    prd, dst, mask = _prepare(frame, job, out, s)
    prd = color_transfer(s.color_transfer, prd, dst, mask, mask, stats=out.color_stats)
    prd = blend.sharpen(prd, s.sharpen_mode, s.sharpen_amount)
    if s.motion_blur > 0:
        v = np.asarray(job.matrix)[:, :2] @ np.asarray(job.motion, np.float64)  # motion in face pixels
        length = int(np.hypot(*v) * s.motion_blur / 100.0)
        if length >= 1:
            prd = motion_blur(prd, int(np.clip(length + 1, 2, 50)), math.degrees(math.atan2(-v[1], v[0])))
    return np.clip(prd, 0.0, 1.0).astype(np.float32), mask.astype(np.float32)


def face_roi(matrix: np.ndarray, size: int, frame_wh: tuple[int, int], margin: int = 3) -> tuple[int, int, int, int] | None:
    """Frame bounding box (x0, y0, x1, y1) of the face square, clipped to the frame; None if outside."""
    corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64), invert(matrix))
    x0, y0 = np.floor(corners.min(0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(0)).astype(int) + margin
    w, h = frame_wh
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def roi_matrix(matrix: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The frame->face matrix for coordinates local to an ROI starting at (x0, y0)."""
    m = np.asarray(matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return m


def paste(face: np.ndarray, mask: np.ndarray | None, matrix: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp face (cubic, clipped) and mask (linear, < 1/255 zeroed) into an ROI of the frame."""
    x0, y0, x1, y1 = roi
    m = roi_matrix(matrix, x0, y0)
    wh = (x1 - x0, y1 - y0)
    flags = cv2.WARP_INVERSE_MAP
    fw = np.clip(cv2.warpAffine(face, m, wh, flags=flags | cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), 0.0, 1.0)
    if mask is None:
        return fw, None
    mw = np.clip(cv2.warpAffine(mask, m, wh, flags=flags | cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), 0.0, 1.0)
    mw[mw < 1.0 / 255.0] = 0.0
    return fw, mw


def merge_frame_detailed(
    frame: np.ndarray, faces: list[FaceJob], outputs: list[FaceOutput], settings: MergeSettings
) -> MergeResult:
    """Like merge_frame, but also returns each face's final patch (for --export-patches)."""
    s = settings
    h, w = frame.shape[:2]
    frame_mask = np.zeros((h, w), np.float32)
    if s.mode == "original" or not faces:
        return MergeResult(frame.copy(), frame_mask)
    bg = blend.bicubic_degrade(blend.denoise(frame, s.image_denoise), s.bicubic_degrade)
    out_img = bg.copy() if s.mode != "raw-predict" else np.zeros_like(frame)
    patches: list[FacePatch] = []
    for job, out in zip(faces, outputs):
        size = out.face.shape[0]
        mat = blend.scale_about_center(job.matrix, size, s.output_face_scale)
        roi = face_roi(mat, size, (w, h))
        if roi is None:
            continue
        x0, y0, x1, y1 = roi
        if s.mode in ("raw-rgb", "raw-predict", "raw-mask"):
            mask = face_mask(job, out, s)
            fw, mw = paste(np.asarray(out.face, np.float32), mask, mat, roi)
            if s.mode != "raw-mask":  # raw-mask writes the frame mask itself, below
                square, _ = paste(np.ones((size, size), np.float32), None, mat, roi)
                sq = (square > 0.5)[..., None]
                out_img[y0:y1, x0:x1] = np.where(sq, _u8(fw), out_img[y0:y1, x0:x1])
            frame_mask[y0:y1, x0:x1] = np.maximum(frame_mask[y0:y1, x0:x1], mw)
            continue
        prd, mask = _face_pixels(frame, job, out, s)
        fw, mw = paste(prd, mask, mat, roi)
        base = out_img[y0:y1, x0:x1].astype(np.float32) / 255.0
        m3 = mw[..., None]
        blended = base * (1.0 - m3) + fw * m3
        if s.mode in ("seamless", "seamless-hist-match"):
            cloned = blend.seamless_clone(_u8(blended), out_img[y0:y1, x0:x1], mw).astype(np.float32) / 255.0
            blended = base * (1.0 - m3) + cloned * m3
        out_img[y0:y1, x0:x1] = _u8(blended)
        frame_mask[y0:y1, x0:x1] = np.maximum(frame_mask[y0:y1, x0:x1], mw)
        patches.append(FacePatch(prd, mask, mat, np.asarray(out.face, np.float32), roi, job.name))
    if s.mode == "raw-mask":
        out_img = np.repeat(_u8(frame_mask)[..., None], 3, axis=2)
    elif s.color_degrade > 0:
        out_img = blend.color_degrade(out_img, s.color_degrade)
    return MergeResult(out_img, frame_mask, patches)


def merge_frame(
    frame: np.ndarray, faces: list[FaceJob], outputs: list[FaceOutput], settings: MergeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Composite `outputs` (one per face in `faces`) into `frame` (RGB uint8) by `settings`.

    Returns (merged RGB uint8 image, float32 mask in [0,1] of where the swap was blended)."""
    res = merge_frame_detailed(frame, faces, outputs, settings)
    return res.image, res.mask
