"""Optional visible "synthetic" label for distribution copies (`--visible-label`).

Why on top of the invisible mark: viewers should not need a tool to learn a face is synthetic. The label
sits in the bottom-right corner, scaled with the frame, white text on a translucent dark box so it reads
on any background.
"""

from __future__ import annotations

import cv2
import numpy as np

LABEL = "synthetic"


def visible_label(frame: np.ndarray, text: str = LABEL) -> np.ndarray:
    """Return a copy of an RGB uint8 frame with the corner label drawn in."""
    out = np.ascontiguousarray(frame).copy()
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 720.0)
    thick = max(1, round(2 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(3, round(6 * scale))
    x1, y1 = w - pad, h - pad
    x0, y0 = max(0, x1 - tw - 2 * pad), max(0, y1 - th - base - 2 * pad)
    box = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (box * 0.45).astype(np.uint8)
    cv2.putText(out, text, (x0 + pad, y1 - pad - base), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out
