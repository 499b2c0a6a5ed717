"""Training samples: aligned faces -> (warped input, target, mask, eyes/mouth mask) pairs for src and dst.

Why preload: a faceset at model resolution is small (10k faces at 128 px = 0.5 GB) and decoding JPEGs
every step would cost more than the augmentation; worker processes share the arrays copy-on-write.
Augmentation follows SAEHD: a random affine (rotation +-10 deg, scale +-5 %, shift +-5 %) applied to
input and target alike, a random grid warp on the input only (so the model learns to undo distortion
rather than copy pixels), flips, HSV jitter, and ct_mode colour transfer of src toward a random dst face.

Sampling is a pure function of (seed, global sample index): any worker, any rank, a resumed run all
draw the same sample for the same index. That is what makes DDP equal single-process training on the
same global batch, and resume continue the same stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from facecast.errors import FacecastError
from facecast.console import info, track
from facecast.faces.aligned import AlignedMeta, list_aligned, read_aligned, read_meta
from facecast.faces.facetype import convert_matrix, covers
from facecast.masks.hull import hull_mask
from facecast.provenance import require_gate_verdicts
from facecast.train.colour import transfer
from facecast.train.options import ModelOptions

EYES_MOUTH = (slice(36, 42), slice(42, 48), slice(48, 68))


@dataclass
class Faceset:
    """Faces of one side at model resolution, with masks; arrays are uint8 (N,R,R[,3])."""

    images: np.ndarray
    masks: np.ndarray
    em_masks: np.ndarray
    yaw: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: list[int]) -> "Faceset":
        return Faceset(self.images[idx], self.masks[idx], self.em_masks[idx], self.yaw[idx],
                       [self.paths[i] for i in idx])


def eyes_mouth_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Hulls of both eyes and the mouth, dilated by ~size/32 (DFL's eyes_mouth_prio region)."""
    m = np.zeros((size, size), np.uint8)
    for part in EYES_MOUTH:
        pts = np.round(landmarks[part] * 16).astype(np.int32)
        cv2.fillConvexPoly(m, cv2.convexHull(pts), 255, lineType=cv2.LINE_AA, shift=4)
    k = max(3, (size // 32) | 1)
    return cv2.dilate(m, np.ones((k, k), np.uint8))


def load_faceset(folder: Path, options: ModelOptions, label: str = "faceset", quiet: bool = True) -> Faceset:
    """Read every aligned face of `folder`, check its face type, resize to the model resolution."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacecastError(f"{label} folder {folder} not found; run `facecast extract` first")
    paths = list_aligned(folder)
    if not paths:
        raise FacecastError(f"{label} folder {folder} has no aligned faces; run `facecast extract` first")
    # every face must have passed the explicit-content gate (extract and every import path record it)
    require_gate_verdicts([read_meta(p) for p in paths], label, folder)
    r = options.resolution
    images, masks, ems, yaws = [], [], [], []
    converted: set[str] = set()
    for path in track(paths, description=f"loading {label}", quiet=quiet):
        face = read_aligned(path)
        meta = face.meta
        img, lm, xseg = to_model_face(face.image, meta, options, path)
        if meta.face_type != options.face_type:
            converted.add(meta.face_type)
        mask = xseg if xseg is not None else hull_mask(lm, r)
        images.append(img)
        masks.append(np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))
        ems.append(eyes_mouth_mask(lm, r))
        yaws.append(float(meta.pose.get("yaw", 0.0)) if meta.pose else 0.0)
    if converted:
        info(f"{label}: {'/'.join(sorted(converted))} faces cropped to the model's {options.face_type} at load", quiet)
    return Faceset(np.stack(images), np.stack(masks), np.stack(ems), np.asarray(yaws, np.float32),
                   [str(p) for p in paths])


def to_model_face(image: np.ndarray, meta: AlignedMeta, options: ModelOptions,
                  path: Path | str = "face") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One aligned face as the model sees it: (image, landmarks, xseg mask or None) at its resolution.

    A face of the model's type is only resized. A face whose type covers the model's (a whole_face or
    head faceset for a full model) is cropped to it in one warp, so an extract default never has to match
    the preset; a face that holds less than the model needs (full for whole_face) is refused.
    """
    r = options.resolution
    if meta.face_type != options.face_type and not covers(meta.face_type, options.face_type):
        raise FacecastError(
            f"{path}: face type {meta.face_type!r} but the model trains {options.face_type!r}, which a "
            f"{meta.face_type} face does not hold; "
            f"extract again with --face-type {options.face_type} (or a wider type such as head), "
            f"or create a model with --face-type {meta.face_type}"
        )
    size = image.shape[0]
    mat = convert_matrix(meta.face_type, size, options.face_type, r)
    lm = meta.landmarks_array * (size / meta.size if meta.size else 1.0)
    lm = lm @ mat[:, :2].T + mat[:, 2]
    xseg = meta.get_xseg_mask()
    if meta.face_type == options.face_type:
        interp = cv2.INTER_AREA if r < size else cv2.INTER_CUBIC
        img = image if size == r else cv2.resize(image, (r, r), interpolation=interp)
        if xseg is not None:
            xseg = cv2.resize(xseg, (r, r), interpolation=cv2.INTER_LINEAR)
        return img, lm, xseg
    interp = cv2.INTER_AREA if mat[0, 0] < 1 else cv2.INTER_CUBIC
    img = cv2.warpAffine(image, mat, (r, r), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if xseg is not None:
        xm = convert_matrix(meta.face_type, xseg.shape[0], options.face_type, r)
        xseg = cv2.warpAffine(xseg, xm, (r, r), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return img, lm, xseg


def yaw_weights(yaw: np.ndarray, bins: int = 16) -> np.ndarray:
    """Sampling weights that make every yaw bin equally likely (rare profiles are seen as often as frontal)."""
    if len(yaw) == 0 or float(yaw.max() - yaw.min()) < 1e-6:
        return np.full(len(yaw), 1.0 / max(1, len(yaw)))
    edges = np.linspace(yaw.min(), yaw.max() + 1e-6, bins + 1)
    which = np.clip(np.digitize(yaw, edges) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    w = 1.0 / counts[which]
    return w / w.sum()


def random_warp_maps(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement: jittered coarse grid upsampled to per-pixel remap maps."""
    cells = int(rng.choice([4, 6, 8]))
    cell = size / cells
    grid = rng.normal(0, cell * 0.24, size=(2, cells + 1, cells + 1)).astype(np.float32)
    grid[:, [0, -1], :] = 0  # borders stay put so nothing outside the face is pulled in
    grid[:, :, [0, -1]] = 0
    dx = cv2.resize(grid[0], (size, size), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(grid[1], (size, size), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    return xs + dx, ys + dy


def hsv_jitter(img: np.ndarray, power: float, rng: np.random.Generator) -> np.ndarray:
    """Shift hue and scale saturation/value by amounts up to `power` (float32 RGB [0,1])."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-power, power) * 180.0) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * (1 + rng.uniform(-power, power)), 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * (1 + rng.uniform(-power, power)), 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def blur_outside(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """DFL's blur_out_mask: blur everything outside the face mask, so the background carries no detail
    for the model to spend capacity on (the face inside stays sharp)."""
    k = max(3, (img.shape[0] // 8) | 1)
    blurred = cv2.GaussianBlur(img, (k, k), 0)
    m = mask[..., None]
    return img * m + blurred * (1 - m)


def augment(img: np.ndarray, mask: np.ndarray, em: np.ndarray, rng: np.random.Generator, options: ModelOptions,
            flip: bool, ct_ref: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One sample: (input, target) float32 RGB and (mask, em) float32, all at the model resolution."""
    size = img.shape[0]
    x = img.astype(np.float32) / 255.0
    if ct_ref is not None and options.ct_mode != "none":
        x = transfer(options.ct_mode, x, ct_ref.astype(np.float32) / 255.0)
    if options.random_hsv_power > 0:
        x = hsv_jitter(x, options.random_hsv_power, rng)
    m = mask.astype(np.float32) / 255.0
    e = em.astype(np.float32) / 255.0
    if flip and rng.random() < 0.5:
        x, m, e = x[:, ::-1], m[:, ::-1], e[:, ::-1]
    rot = rng.uniform(-10, 10)
    scale = 1 + rng.uniform(-0.05, 0.05)
    mat = cv2.getRotationMatrix2D((size / 2, size / 2), rot, scale)
    mat[:, 2] += rng.uniform(-0.05, 0.05, size=2) * size
    warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    target = cv2.warpAffine(np.ascontiguousarray(x), mat, (size, size), **warp)
    m = cv2.warpAffine(np.ascontiguousarray(m), mat, (size, size), **warp)
    e = cv2.warpAffine(np.ascontiguousarray(e), mat, (size, size), **warp)
    if options.blur_out_mask:
        target = blur_outside(target, m)
    if options.random_warp:
        mx, my = random_warp_maps(size, rng)
        inp = cv2.remap(target, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        inp = target
    return inp, target, m, e


def _to_u8(a: np.ndarray) -> torch.Tensor:
    """float [0,1] HxW[xC] -> uint8 CxHxW tensor (uint8 keeps the worker->main transfer 4x smaller)."""
    t = torch.from_numpy(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return t.permute(2, 0, 1).contiguous() if t.ndim == 3 else t[None]


class PairDataset(Dataset):
    """Index i -> one src and one dst sample, a pure function of (seed, i)."""

    def __init__(self, src: Faceset, dst: Faceset, options: ModelOptions, seed: int = 0) -> None:
        self.src, self.dst, self.options, self.seed = src, dst, options, seed
        self.src_w = yaw_weights(src.yaw) if options.uniform_yaw else None
        self.dst_w = yaw_weights(dst.yaw) if options.uniform_yaw else None

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        si = int(rng.choice(len(self.src), p=self.src_w))
        di = int(rng.choice(len(self.dst), p=self.dst_w))
        o = self.options
        ct_ref = self.dst.images[int(rng.integers(len(self.dst)))] if o.ct_mode != "none" else None
        s = augment(self.src.images[si], self.src.masks[si], self.src.em_masks[si], rng, o, o.random_src_flip, ct_ref)
        d = augment(self.dst.images[di], self.dst.masks[di], self.dst.em_masks[di], rng, o, o.random_dst_flip, None)
        keys = ("in", "target", "mask", "em")
        out = {f"src_{k}": _to_u8(v) for k, v in zip(keys, s)}
        out.update({f"dst_{k}": _to_u8(v) for k, v in zip(keys, d)})
        return out


class StepBatches(Sampler[list[int]]):
    """Batches of global sample indices: iteration `it` of rank `r` gets [it*G + r*B, it*G + (r+1)*B)."""

    def __init__(self, start_iter: int, global_batch: int, rank: int = 0, world: int = 1) -> None:
        if global_batch % world:
            raise FacecastError(f"batch_size {global_batch} must be a multiple of the {world} processes")
        self.start, self.g, self.b, self.rank = start_iter, global_batch, global_batch // world, rank

    def __iter__(self) -> Iterator[list[int]]:
        it = self.start
        while True:
            base = it * self.g + self.rank * self.b
            yield list(range(base, base + self.b))
            it += 1

    def __len__(self) -> int:
        return 2**62


def to_float(batch: dict[str, torch.Tensor], device: str, channels_last: bool = False) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in batch.items():
        t = v.to(device, non_blocking=True).float().div_(255.0)
        out[k] = t.contiguous(memory_format=torch.channels_last) if channels_last and t.ndim == 4 else t
    return out


def held_out(faces: Faceset, count: int = 4) -> tuple[Faceset, Faceset]:
    """(training faces, evaluation faces): hold out `count` faces when there are >= 10, else evaluate
    on the un-augmented training faces (a tiny faceset cannot spare any)."""
    n = len(faces)
    if n >= 10:
        step = n / count
        ev = sorted({int(i * step + step / 2) for i in range(count)})
        tr = [i for i in range(n) if i not in set(ev)]
        return faces.subset(tr), faces.subset(ev)
    return faces, faces.subset(list(range(min(n, count))))


