"""facecast.provenance: every output labelled (C2PA + invisible watermark), consent required, explicit
content refused. The facade below is what the other stages call; nothing here can be switched off.

    require_consent(ws, identity=None) -> ConsentRecord     (raises ConsentError with how-to-fix)
    watermark_frame(ws, frame) -> frame                     (payload = hash of the workspace id)
    sign_output(ws, path, model_name=None, consent_ids=())  (C2PA manifest; mime from .jpg/.png/.mp4)
    check_content(image, name) -> score                     (raises ContentRefused)
    content_gate() -> ContentGate                           (one cached instance per process)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from facecast.provenance.consent import ConsentRecord, require_consent
from facecast.provenance.content_gate import ContentGate

__all__ = [
    "ConsentRecord",
    "ContentGate",
    "check_content",
    "content_gate",
    "require_consent",
    "sign_output",
    "watermark_frame",
    "workspace_payload",
]


def workspace_payload(ws) -> bytes:
    """The 8-byte watermark payload of a workspace: the first 8 bytes of SHA-256(workspace id).

    The same value, as hex, is the `workspace` claim in C2PA manifests, so the two labels agree."""
    return hashlib.sha256(ws.id.encode()).digest()[:8]


def watermark_frame(ws, frame: np.ndarray) -> np.ndarray:
    from facecast.provenance.watermark import embed

    return embed(frame, workspace_payload(ws))


def sign_output(ws, path: str | Path, model_name: str | None = None, consent_ids=()) -> None:
    from facecast.provenance.c2pa import mime_for, sign_file

    sign_file(ws, path, mime_for(path), model_name=model_name, consent_ids=tuple(consent_ids))


@lru_cache(maxsize=1)
def content_gate() -> ContentGate:
    return ContentGate()


def check_content(image: np.ndarray, name: str = "image") -> float:
    return content_gate().check(image, name)
