"""Which frames of a video `extract` scores with the explicit-content gate, and what covers the others.

Scoring every frame was the largest single cost of extraction (~20-27 ms CPU per 720p frame). The gate
exists to stop explicit material, so a sampled policy must still catch a short explicit segment anywhere
in a clip. The policy (SampledGate), over consecutive frames in order:

1. the first frame is scored, then at least every EVERY-th frame (so no run of unscored frames is longer
   than EVERY - 1);
2. a frame is scored whenever its content differs from the last *scored* frame by more than
   CHANGE_BOUND (the largest mean absolute difference over an 8x8 grid of blocks of a 32x32 thumbnail,
   0-255 scale). Comparing with the last scored frame, not the previous frame, means slow drift adds up
   and is scored too; a cut or a cut-in segment is scored on its first frame; a localised change (one
   block is 1/64 of the frame) counts as much as a global one;
3. after a score >= SUSPECT_AT every held frame since the previous scored frame is scored, and every
   frame after it until one scores below SUSPECT_AT again and EVERY more have passed.
So every frame that is not scored lies within EVERY - 1 frames after, and within CHANGE_BOUND of, a frame
that was scored and passed: explicit content that does not change a 1/64 block of the thumbnail by more
than CHANGE_BOUND cannot appear in it. Frames are scored at the classifier's own input size
(content_gate.gate_thumbnail), which the policy also keeps of held frames (rule 3 needs no re-read).
tests/test_extract_gate.py proves a segment of 2-3 marked frames is caught at every position of a clip.

Each frame gets a verdict record for its aligned faces' metadata (`content_gate` key): the gate model id,
the score (its own, or the covering frame's) and `"policy"`: "scored" or "covered by <frame> (<policy>)".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from facecast.provenance.content_gate import MODEL_SHA256, SUSPECT_AT, ContentGate, check_small, gate_thumbnail

EVERY = 4
CHANGE_BOUND = 10.0
THUMB_PX = 32
BLOCK_PX = 4
POLICY = f"sampled: every {EVERY}th frame, every change > {CHANGE_BOUND:g} on 1/64 blocks, dense near suspects"


def gate_model_id(gate: ContentGate) -> str:
    """The id recorded with each verdict: the model file's hash prefix, or "stand-in" for a test scorer."""
    mid = getattr(gate, "model_id", None)
    if mid:
        return str(mid)
    return f"open_nsfw:{MODEL_SHA256[:12]}" if getattr(gate, "model_path", None) else "stand-in"


def change_signature(thumb: np.ndarray) -> np.ndarray:
    """32x32 float thumbnail (from the 256 px gate thumbnail) that `change` compares."""
    return cv2.resize(thumb, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA).astype(np.float32)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """Largest per-block mean absolute difference of two signatures (0-255)."""
    d = np.abs(a - b).mean(axis=2)
    n = THUMB_PX // BLOCK_PX
    return float(d.reshape(n, BLOCK_PX, n, BLOCK_PX).mean(axis=(1, 3)).max())


@dataclass
class SampledGate:
    """The policy in the module docstring; call it on each frame in order. Raises ContentRefused."""

    gate: ContentGate
    every: int = EVERY
    bound: float = CHANGE_BOUND
    scored: int = 0
    frames: int = 0
    _last_sig: np.ndarray | None = None
    _last_name: str = ""
    _last_score: float = 0.0
    _since: int = 0
    _dense_left: int = 0
    _held: list[tuple[str, np.ndarray, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = gate_model_id(self.gate)

    def _score(self, name: str, thumb: np.ndarray) -> float:
        self.scored += 1
        return check_small(self.gate, thumb, name)

    def __call__(self, name: str, image: np.ndarray) -> dict[str, Any]:
        """The verdict record of this frame (records of held frames may be re-scored later, in place)."""
        self.frames += 1
        thumb = gate_thumbnail(image)
        sig = change_signature(thumb)
        due = (self._last_sig is None or self._since + 1 >= self.every or self._dense_left > 0
               or change(sig, self._last_sig) > self.bound)
        if not due:
            self._since += 1
            rec = {"model": self.model, "score": round(self._last_score, 5), "verdict": "ok",
                   "policy": f"covered by {self._last_name} ({POLICY})"}
            self._held.append((name, thumb, rec))
            return rec
        s = self._score(name, thumb)
        if s >= SUSPECT_AT:
            for held_name, held_thumb, rec in self._held:
                rec.update(score=round(self._score(held_name, held_thumb), 5), policy="scored")
            self._dense_left = self.every
        else:
            self._dense_left -= 1
        self._held = []
        self._last_sig, self._last_name, self._last_score, self._since = sig, name, s, 0
        return {"model": self.model, "score": round(s, 5), "verdict": "ok", "policy": "scored"}
