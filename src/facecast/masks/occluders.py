"""Synthetic occluders: hands, bars, blobs pasted over faces, with the true mask known by construction.

Why: hand-labelling obstructions is what makes XSeg expensive. If we paste an object over a face we know
exactly which pixels it hides, so "face region minus occluder" is a free, exact training target. To make
the pasted objects look like the real ones (hands, microphones, hair, glasses), they are filled with
textures cut from real images: other frames of the workspace away from the faces, skin from the bundled
face photos (for hands), and the photos that ship with scikit-image (coffee, cat, rocket, brick, grass...).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

KINDS = ("polygon", "ellipse", "hand", "bar")
_SKIMAGE_TEXTURES = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field",
                     "immunohistochemistry", "camera", "moon", "text", "page", "retina")


@dataclass
class OccluderSettings:
    """How often and how big. Sizes are fractions of the face's bounding-box side."""

    probability: float = 0.85  # chance a face gets any occluder
    max_count: int = 2
    kinds: tuple[str, ...] = KINDS
    min_size: float = 0.2
    max_size: float = 0.65
    skin_probability: float = 0.5  # hands filled with skin more often than not


@dataclass
class Occlusion:
    image: np.ndarray  # RGB uint8 with occluders pasted
    occluder: np.ndarray  # float32 {0,1}: pixels the occluders cover
    target: np.ndarray  # float32 {0,1}: face mask minus occluders
    kinds: list[str] = field(default_factory=list)


class TexturePool:
    """RGB patches to fill occluders with; `skin` patches are kept apart for hand-shaped occluders."""

    def __init__(self, textures: list[np.ndarray], skin: list[np.ndarray] | None = None) -> None:
        self.textures = [_rgb(t) for t in textures if min(t.shape[:2]) >= 16]
        self.skin = [_rgb(t) for t in (skin or []) if min(t.shape[:2]) >= 8]
        if not self.textures:
            raise ValueError("a texture pool needs at least one texture of 16 px or more")

    def add_frame_regions(self, frame: np.ndarray, face_boxes: list[tuple[float, float, float, float]]) -> int:
        """Add the parts of a frame away from its faces (the four bands around the union of face boxes)."""
        h, w = frame.shape[:2]
        if not face_boxes:
            self.textures.append(_rgb(frame))
            return 1
        boxes = np.asarray(face_boxes, np.float64)
        x0, y0 = np.clip(boxes[:, :2].min(0), 0, [w, h]).astype(int)
        x1, y1 = np.clip(boxes[:, 2:].max(0), 0, [w, h]).astype(int)
        added = 0
        for crop in (frame[:y0], frame[y1:], frame[:, :x0], frame[:, x1:]):
            if min(crop.shape[:2]) >= 16:
                self.textures.append(_rgb(crop))
                added += 1
        return added

    def sample(self, rng: np.random.Generator, w: int, h: int, skin: bool = False) -> np.ndarray:
        """A w x h RGB patch: random crop of a random texture, random scale, flip and colour gain."""
        pool = self.skin if (skin and self.skin) else self.textures
        tex = pool[int(rng.integers(len(pool)))]
        th, tw = tex.shape[:2]
        scale = rng.uniform(0.5, 1.5)
        cw, ch = max(2, min(tw, int(w * scale))), max(2, min(th, int(h * scale)))
        x, y = int(rng.integers(0, tw - cw + 1)), int(rng.integers(0, th - ch + 1))
        patch = cv2.resize(tex[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        gain = rng.uniform(0.7, 1.3, size=3) if not skin else rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, size=3)
        return np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype.kind == "f" else img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@functools.lru_cache(maxsize=1)
def default_pool() -> TexturePool:
    """Textures that ship with installed packages: scikit-image photos, and the bundled face photos
    (background away from the face as texture, cheek and forehead skin for hands)."""
    from skimage import data

    from facecast.media.synth import sample_photo

    textures = []
    for name in _SKIMAGE_TEXTURES:
        try:
            textures.append(getattr(data, name)())
        except Exception:  # a scikit-image build without that file: fewer textures, not a failure
            continue
    astro, _ = sample_photo("astronaut")
    textures.append(astro[260:, :])  # the suit and flag, below the face
    pool = TexturePool(textures)
    skin = []
    for name in ("einstein", "takeo", "breakingbad"):
        img, lm = sample_photo(name)
        if lm is None:
            continue
        lo, hi = lm.min(0), lm.max(0)
        pool.add_frame_regions(img, [(lo[0] - (hi[0] - lo[0]) * 0.3, lo[1] - (hi[1] - lo[1]) * 0.6,
                                      hi[0] + (hi[0] - lo[0]) * 0.3, hi[1] + (hi[1] - lo[1]) * 0.3)])
        # cheeks: between eye row and mouth row, beside the nose
        y0, y1 = int(lm[29, 1]), int(lm[33, 1] + 2)
        for xa, xb in ((lm[1, 0], lm[31, 0]), (lm[35, 0], lm[15, 0])):
            xa, xb = int(xa + (xb - xa) * 0.15), int(xb - (xb - xa) * 0.15)
            if xb - xa >= 8 and y1 - y0 >= 8:
                skin.append(img[y0:y1, xa:xb])
    pool.skin = [_rgb(s) for s in skin]
    return pool


# -- shapes ----------------------------------------------------------------------------------------------
def _fill(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)


def _capsule(mask: np.ndarray, a: np.ndarray, b: np.ndarray, width: float) -> None:
    cv2.line(mask, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), 255,
             max(1, int(round(width))), lineType=cv2.LINE_AA, shift=4)


def shape_mask(kind: str, size: tuple[int, int], centre: np.ndarray, scale: float,
               rng: np.random.Generator, face_centre: np.ndarray | None = None) -> np.ndarray:
    """uint8 0..255 anti-aliased mask of one occluder of `kind`, about `scale` px across, at `centre`."""
    w, h = size
    m = np.zeros((h, w), np.uint8)
    c = np.asarray(centre, np.float64)
    if kind == "polygon":
        n = int(rng.integers(5, 11))
        ang = np.sort(rng.uniform(0, 2 * math.pi, n))
        rad = scale / 2 * rng.uniform(0.45, 1.0, n)
        _fill(m, c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1))
    elif kind == "ellipse":
        axes = (max(1, int(scale / 2 * rng.uniform(0.5, 1.0))), max(1, int(scale / 2 * rng.uniform(0.25, 1.0))))
        cv2.ellipse(m, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
    elif kind == "hand":
        # palm + four fingers + thumb + forearm, fingers pointing towards the face centre
        toward = (face_centre - c) if face_centre is not None else rng.normal(size=2)
        theta = math.atan2(toward[1], toward[0]) + rng.uniform(-0.6, 0.6)
        d = np.array([math.cos(theta), math.sin(theta)])
        n = np.array([-d[1], d[0]])
        palm = scale * 0.5
        cv2.ellipse(m, (int(c[0]), int(c[1])), (max(1, int(palm * 0.5)), max(1, int(palm * 0.45))),
                    math.degrees(theta), 0, 360, 255, -1, cv2.LINE_AA)
        fw = palm * rng.uniform(0.2, 0.26)
        spread = rng.uniform(0.0, 0.25)
        for k, off in enumerate((-0.36, -0.12, 0.12, 0.36)):
            base = c + d * palm * 0.35 + n * off * palm
            fd = d + n * off * spread
            fd /= np.linalg.norm(fd)
            length = palm * rng.uniform(0.7, 1.05) * (0.85 if k in (0, 3) else 1.0)
            _capsule(m, base, base + fd * length, fw)
        side = 1 if rng.random() < 0.5 else -1
        tb = c + n * side * palm * 0.45
        _capsule(m, tb, tb + (d * 0.5 + n * side * 0.8) * palm * 0.6, fw * 1.1)
        _capsule(m, c, c - d * scale * 3, palm * 0.7)  # forearm, off towards the frame edge
    elif kind == "bar":
        theta = rng.uniform(0, math.pi)
        d = np.array([math.cos(theta), math.sin(theta)])
        length = scale * rng.uniform(1.5, 4.0)
        _capsule(m, c - d * length / 2, c + d * length / 2, max(2.0, scale * rng.uniform(0.08, 0.22)))
        if rng.random() < 0.4:  # a microphone head at one end
            e = c + d * length / 2
            r = max(2, int(scale * rng.uniform(0.15, 0.3)))
            cv2.circle(m, (int(e[0]), int(e[1])), r, 255, -1, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown occluder kind {kind!r}; choose from {KINDS}")
    return m


def occlude(
    image: np.ndarray,
    face_mask: np.ndarray,
    rng: np.random.Generator,
    pool: TexturePool | None = None,
    settings: OccluderSettings | None = None,
    force: bool = False,
) -> Occlusion:
    """Paste 0..max_count occluders over the face of `image` (the face given by `face_mask`, 0..1).

    Returns the occluded image, the occluder mask and the target (face minus occluders). With `force`,
    at least one occluder is always pasted, and it is guaranteed to cover some of the face."""
    settings = settings or OccluderSettings()
    pool = pool or default_pool()
    h, w = image.shape[:2]
    face = (np.asarray(face_mask) > 0.5)
    out = image.copy()
    occ = np.zeros((h, w), np.float32)
    kinds: list[str] = []
    if not force and rng.random() >= settings.probability:
        return Occlusion(out, occ, face.astype(np.float32), kinds)
    ys, xs = np.nonzero(face)
    if len(xs) == 0:
        return Occlusion(out, occ, face.astype(np.float32), kinds)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    side = float(max(x1 - x0, y1 - y0, 8))
    fc = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    count = int(rng.integers(1, settings.max_count + 1))
    for _ in range(count):
        for _try in range(6):
            kind = settings.kinds[int(rng.integers(len(settings.kinds)))]
            scale = side * rng.uniform(settings.min_size, settings.max_size)
            i = int(rng.integers(len(xs)))
            # centres on the face, often near its edge (where hands and hair usually enter)
            centre = np.array([xs[i], ys[i]], np.float64)
            if rng.random() < 0.5:
                centre = centre + (centre - fc) * rng.uniform(0.2, 0.6)
            m8 = shape_mask(kind, (w, h), centre, scale, rng, fc)
            hard = m8 > 127
            cover = (hard & face).sum() / max(1, face.sum())
            if 0.02 <= cover <= 0.6:
                break
        else:
            continue
        skin = kind == "hand" and rng.random() < settings.skin_probability
        patch = pool.sample(rng, w, h, skin=skin).astype(np.float32)
        if rng.random() < 0.5:  # shading across the object so it is not flat
            ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.9, 1.2), max(w, h), dtype=np.float32)
            patch *= ramp[None, :w, None] if rng.random() < 0.5 else ramp[:h, None, None]
        alpha = (m8.astype(np.float32) / 255.0)[..., None]
        out = np.clip(out.astype(np.float32) * (1 - alpha) + patch * alpha, 0, 255).astype(np.uint8)
        occ = np.maximum(occ, hard.astype(np.float32))
        kinds.append(kind)
    target = (face & ~(occ > 0.5)).astype(np.float32)
    return Occlusion(out, occ, target, kinds)
