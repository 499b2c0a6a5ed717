"""The mask combiner: which pixels of the predicted face replace the dst face.

Sources, all float32 HxW in [0,1] in the model's face space (its face_type and resolution):
- `dst`: the convex hull of dst's 68 landmarks (always available);
- `learned-prd` / `learned-dst`: the masks the model learned for the swapped and the dst face;
- `xseg-prd` / `xseg-dst`: an XSeg segmenter run on the predicted and the dst face. The segmenter is any
  callable taking N x S x S x 3 uint8 faces and returning N x S x S float32 masks; when it has
  `.resolution` and `.face_type` attributes, faces are re-warped to its own alignment first (an XSeg
  model is trained at its own face type). xseg-dst may instead come from the mask stored in the dst
  aligned file's metadata (`meta.get_xseg_mask()`).

Combinations follow DeepFaceLab's mask modes (settings.MASK_MODES); products intersect, sums unite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.align import image_to_face_matrix, transform_points
from facecast.imaging.hull import hull_mask

Segmenter = Callable[[np.ndarray], np.ndarray]


def _h(mat: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(mat, dtype=np.float64), [0.0, 0.0, 1.0]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 matrix of `outer` applied after `inner`."""
    return (_h(outer) @ _h(inner))[:2]


def between(from_mat: np.ndarray, to_mat: np.ndarray) -> np.ndarray:
    """Given frame->A and frame->B matrices, the A->B matrix."""
    return compose(to_mat, np.linalg.inv(_h(from_mat))[:2])


def hull_in_face(landmarks_frame: np.ndarray, model_mat: np.ndarray, size: int) -> np.ndarray:
    """dst landmark-hull mask drawn directly in model face space."""
    return hull_mask(transform_points(landmarks_frame, model_mat), size)


def combine_masks(
    mode: str,
    hull: np.ndarray | None = None,
    learned_prd: np.ndarray | None = None,
    learned_dst: np.ndarray | None = None,
    xseg_prd: np.ndarray | None = None,
    xseg_dst: np.ndarray | None = None,
) -> np.ndarray:
    """Combine the available masks by `mode`; a missing input the mode needs is one clear error."""
    have = {"dst": hull, "learned-prd": learned_prd, "learned-dst": learned_dst, "xseg-prd": xseg_prd, "xseg-dst": xseg_dst}
    if "+" in mode:
        names, op = mode.split("+"), "sum"
    else:
        names, op = mode.split("*"), "prod"
    for name in names:
        if name not in have:
            raise FacecastError(f"unknown mask mode {mode!r}")
        if have[name] is None:
            hint = (
                "train an XSeg model (`facecast xseg train`) and pass --xseg-model, or apply XSeg masks to data_dst/aligned"
                if name.startswith("xseg")
                else "this model has no learned masks; use --mask-mode dst"
            )
            raise FacecastError(f"mask mode {mode!r} needs the {name} mask, which is not available: {hint}")
    out = np.asarray(have[names[0]], dtype=np.float32).copy()
    for name in names[1:]:
        m = np.asarray(have[name], dtype=np.float32)
        out = out + m if op == "sum" else out * m
    return np.clip(out, 0.0, 1.0)


def _seg_geometry(segmenter: Segmenter, model_face_type: str, model_res: int) -> tuple[str, int]:
    return (getattr(segmenter, "face_type", model_face_type), int(getattr(segmenter, "resolution", model_res)))


def segment_to_model(
    segmenter: Segmenter,
    images: Sequence[np.ndarray],
    image_mats: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray],
    model_mats: Sequence[np.ndarray],
    model_face_type: str,
    model_res: int,
) -> np.ndarray:
    """Run the segmenter on faces cut from `images` and return masks in model face space (N x R x R).

    `images[i]` lives in a space whose frame->image matrix is `image_mats[i]` (identity 2x3 for a frame,
    the model matrix for a predicted face); `landmarks[i]` are the face's 68 points in the frame."""
    if not images:
        return np.zeros((0, model_res, model_res), np.float32)
    seg_type, seg_res = _seg_geometry(segmenter, model_face_type, model_res)
    batch, back = [], []
    for img, img_mat, lm, model_mat in zip(images, image_mats, landmarks, model_mats):
        seg_mat = image_to_face_matrix(lm, seg_type, seg_res)
        to_seg = between(img_mat, seg_mat)
        batch.append(cv2.warpAffine(img, to_seg, (seg_res, seg_res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        back.append(between(seg_mat, model_mat))
    masks = np.asarray(segmenter(np.stack(batch).astype(np.uint8)), dtype=np.float32)
    if masks.ndim == 4:
        masks = masks[..., 0]
    if masks.shape[:1] != (len(batch),) or masks.shape[1:] != (seg_res, seg_res):
        raise FacecastError(f"XSeg segmenter returned masks of shape {masks.shape}, expected ({len(batch)}, {seg_res}, {seg_res})")
    out = [
        cv2.warpAffine(m, b, (model_res, model_res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        for m, b in zip(masks, back)
    ]
    return np.clip(np.stack(out), 0.0, 1.0)


def stored_xseg_to_model(stored: np.ndarray, aligned_mat: np.ndarray, model_mat: np.ndarray, model_res: int) -> np.ndarray:
    """A mask stored in an aligned file (its own face type/size) warped into model face space."""
    to_model = between(aligned_mat, model_mat)
    m = cv2.warpAffine(stored.astype(np.float32), to_model, (model_res, model_res), flags=cv2.INTER_LINEAR)
    return np.clip(m, 0.0, 1.0)
