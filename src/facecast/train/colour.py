"""Minimal colour transfers for training-time ct_mode (src samples pulled toward dst statistics).

Why a local copy: stages do not import each other (merge has its own, fuller colour module); these
are the small versions the sample pipeline needs, on float32 RGB in [0,1], each a pure function.
"""

from __future__ import annotations

import cv2
import numpy as np


def rct(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Reinhard: match per-channel mean/std in L*a*b*."""
    s = cv2.cvtColor(src, cv2.COLOR_RGB2LAB)
    r = cv2.cvtColor(ref, cv2.COLOR_RGB2LAB)
    sm, ss = s.reshape(-1, 3).mean(0), s.reshape(-1, 3).std(0) + 1e-6
    rm, rs = r.reshape(-1, 3).mean(0), r.reshape(-1, 3).std(0) + 1e-6
    out = (s - sm) * (rs / ss) + rm
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    out[..., 1:] = np.clip(out[..., 1:], -127, 127)
    return np.clip(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB), 0, 1)


def _sqrtm(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 1e-12, None))) @ v.T


def lct(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Linear: map src's RGB covariance onto ref's (Cholesky-free, via symmetric square roots)."""
    s, r = src.reshape(-1, 3).astype(np.float64), ref.reshape(-1, 3).astype(np.float64)
    cs, cr = np.cov(s.T) + np.eye(3) * 1e-5, np.cov(r.T) + np.eye(3) * 1e-5
    t = _sqrtm(cr) @ np.linalg.inv(_sqrtm(cs))
    out = (s - s.mean(0)) @ t.T + r.mean(0)
    return np.clip(out.reshape(src.shape), 0, 1).astype(np.float32)


def mkl(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Monge-Kantorovich linear transfer (the optimal linear map between two Gaussians)."""
    s, r = src.reshape(-1, 3).astype(np.float64), ref.reshape(-1, 3).astype(np.float64)
    cs, cr = np.cov(s.T) + np.eye(3) * 1e-5, np.cov(r.T) + np.eye(3) * 1e-5
    rs = _sqrtm(cs)
    rs_inv = np.linalg.inv(rs)
    t = rs_inv @ _sqrtm(rs @ cr @ rs) @ rs_inv
    out = (s - s.mean(0)) @ t.T + r.mean(0)
    return np.clip(out.reshape(src.shape), 0, 1).astype(np.float32)


def _match_1d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Map values x onto the distribution of y by quantiles."""
    order = np.argsort(x)
    q = np.interp(np.linspace(0, 1, len(x)), np.linspace(0, 1, len(y)), np.sort(y))
    out = np.empty_like(x)
    out[order] = q
    return out


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q


def idt(src: np.ndarray, ref: np.ndarray, iterations: int = 5, seed: int = 0) -> np.ndarray:
    """Iterative distribution transfer (Pitie et al.): 1-D matches along random rotated axes."""
    rng = np.random.default_rng(seed)
    s, r = src.reshape(-1, 3).astype(np.float64), ref.reshape(-1, 3).astype(np.float64)
    for _ in range(iterations):
        rot = _random_rotation(rng)
        ps, pr = s @ rot, r @ rot
        for k in range(3):
            ps[:, k] = _match_1d(ps[:, k], pr[:, k])
        s = ps @ rot.T
    return np.clip(s.reshape(src.shape), 0, 1).astype(np.float32)


def sot(src: np.ndarray, ref: np.ndarray, steps: int = 10, seed: int = 0) -> np.ndarray:
    """Sliced optimal transport: small moves along random directions toward the ref's projections."""
    rng = np.random.default_rng(seed)
    s, r = src.reshape(-1, 3).astype(np.float64), ref.reshape(-1, 3).astype(np.float64)
    for _ in range(steps):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        ps, pr = s @ d, r @ d
        s = s + np.outer(_match_1d(ps, pr) - ps, d)
    return np.clip(s.reshape(src.shape), 0, 1).astype(np.float32)


TRANSFERS = {"rct": rct, "lct": lct, "mkl": mkl, "idt": idt, "sot": sot}


def transfer(mode: str, src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Apply ct_mode `mode` ("none" returns src unchanged)."""
    if mode == "none":
        return src
    return TRANSFERS[mode](src.astype(np.float32), ref.astype(np.float32))
