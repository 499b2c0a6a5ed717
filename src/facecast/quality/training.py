"""Training-time quality: evaluators for the trainer's hook and the objective "when to stop" answer.

The trainer calls each evaluator every N iterations with an EvalBatch of a small held-out set (uint8
N,R,R,3 arrays `src`, `dst`, `src_recon`, `dst_recon`, `swap`) and writes the returned floats into
`history.jsonl`. Evaluators here are duck-typed on those attribute names, so this module does not
import the training stage.

Identity on aligned training faces uses the face type's template landmarks instead of a detector:
an aligned face's points sit where the template puts them (that is what alignment means), and a
blurry early-training reconstruction would throw a detector off long before it fools the descriptor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from facecast.faces.facetype import template_landmarks
from facecast.faces.identity import centroid, face_descriptor


class EvalBatchLike(Protocol):
    src: np.ndarray
    dst: np.ndarray
    src_recon: np.ndarray
    dst_recon: np.ndarray
    swap: np.ndarray


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over a batch of uint8 images: 10 log10(255^2 / MSE).

    Capped at 100 dB (identical images) so history.jsonl never holds a non-JSON infinity."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 100.0 if mse < 255.0**2 * 1e-10 else min(100.0, float(10 * np.log10(255.0**2 / mse)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window sigma 1.5) over a batch."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 3:
        a, b = a[None], b[None]
    return float(np.mean([
        structural_similarity(x, y, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for x, y in zip(a, b)
    ]))


def reconstruction_scores(batch: EvalBatchLike) -> dict[str, float]:
    """PSNR and SSIM of src->src and dst->dst reconstructions (how well the autoencoder has learned)."""
    return {
        "psnr_src": psnr(batch.src_recon, batch.src),
        "psnr_dst": psnr(batch.dst_recon, batch.dst),
        "ssim_src": ssim(batch.src_recon, batch.src),
        "ssim_dst": ssim(batch.dst_recon, batch.dst),
    }


class IdentityEvaluator:
    """Identity of the swap: dlib distance to the src centroid and to its own dst face.

    `id_swap_src` falling below `id_swap_dst` (and below ~0.6) is the objective sign the swap has
    become the source person; `id_retrieval` is the fraction of held-out faces where it has.
    Descriptors of the fixed held-out src/dst faces are cached by content hash, so each evaluation
    costs one descriptor per swapped face (~80 ms)."""

    def __init__(self, face_type: str = "whole_face") -> None:
        self.face_type = face_type
        self._cache: dict[str, np.ndarray] = {}

    def _descriptors(self, faces: np.ndarray, cache: bool) -> np.ndarray:
        faces = np.asarray(faces, np.uint8)
        key = hashlib.sha1(faces.tobytes()).hexdigest() + str(faces.shape) if cache else ""
        if cache and key in self._cache:
            return self._cache[key]
        lm = template_landmarks(self.face_type, faces.shape[1])
        descs = np.stack([face_descriptor(np.ascontiguousarray(f), lm) for f in faces])
        if cache:
            self._cache[key] = descs
        return descs

    def __call__(self, batch: EvalBatchLike) -> dict[str, float]:
        src = self._descriptors(batch.src, cache=True)
        dst = self._descriptors(batch.dst, cache=True)
        swap = self._descriptors(batch.swap, cache=False)
        c = centroid(src)
        to_src = np.linalg.norm(swap - c, axis=1)
        to_dst = np.linalg.norm(swap - dst, axis=1)
        return {
            "id_swap_src": float(to_src.mean()),
            "id_swap_dst": float(to_dst.mean()),
            "id_retrieval": float((to_src < to_dst).mean()),
        }


def default_evaluators(face_type: str = "whole_face") -> list:
    """What `facecast train` should register: identity of the swap plus reconstruction quality."""
    return [IdentityEvaluator(face_type), reconstruction_scores]


HIGHER_IS_BETTER = ("psnr", "ssim", "retrieval", "accuracy", "id_swap_dst")
ITER_KEYS = ("iter", "iteration", "step")


def _iteration(rec: Mapping[str, Any], index: int) -> float:
    for k in ITER_KEYS:
        if k in rec:
            return float(rec[k])
    return float(index)


def _value(rec: Mapping[str, Any], key: str) -> float | None:
    """`key` at the top level of a history record or inside its "eval" dict (the trainer's layout)."""
    for source in (rec, rec.get("eval") if isinstance(rec.get("eval"), Mapping) else None):
        if source is not None and isinstance(source.get(key), (int, float)) and not isinstance(source.get(key), bool):
            return float(source[key])
    return None


def plateau(history_records: Sequence[Mapping[str, Any]], key: str, window_K: int, min_gain: float,
            higher_is_better: bool | None = None) -> str | None:
    """The objective "when to stop" answer: a message when `key` gained less than `min_gain` in the
    last `window_K` iterations, else None.

    Formula: with t the last recorded iteration, A = mean of `key` over records in (t - K, t] and
    B = mean over (t - 2K, t - K]; gain = (B - A) / |B| for lower-is-better keys (losses, distances)
    and (A - B) / |B| for higher-is-better ones (psnr, ssim, retrieval: inferred from the name unless
    given). Window means, not single values, so one noisy record neither triggers nor hides a plateau.
    `min_gain` is relative (0.01 = 1 %). None until both windows hold at least 2 records. Values are
    read from the record or its "eval" dict, iterations from "iter"/"iteration"/"step"."""
    pts = []
    for i, r in enumerate(history_records):
        v = _value(r, key)
        if v is not None and np.isfinite(v):
            pts.append((_iteration(r, i), v))
    if not pts or window_K <= 0:
        return None
    if higher_is_better is None:
        higher_is_better = any(h in key for h in HIGHER_IS_BETTER)
    t = pts[-1][0]
    last = [v for it, v in pts if t - window_K < it <= t]
    prev = [v for it, v in pts if t - 2 * window_K < it <= t - window_K]
    if len(last) < 2 or len(prev) < 2:
        return None
    a, b = float(np.mean(last)), float(np.mean(prev))
    gain = ((a - b) if higher_is_better else (b - a)) / max(abs(b), 1e-12)
    if gain >= min_gain:
        return None
    return (
        f"no measurable gain in {key} in the last {window_K} iterations "
        f"(mean {a:.4g} vs {b:.4g} before, {100 * gain:+.2f} % < {100 * min_gain:.2f} %): "
        f"training has plateaued at iteration {int(t)}"
    )
