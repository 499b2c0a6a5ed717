"""facecast.provenance: every output labelled (C2PA + invisible watermark), consent required, explicit
content refused. The facade below is what the other stages call; nothing here can be switched off.

    require_consent(ws, identity=None) -> ConsentRecord     (raises ConsentError with how-to-fix)
    watermark_frame(ws, frame) -> frame                     (payload = hash of the workspace id)
    sign_output(ws, path, model_name=None, consent_ids=())  (C2PA manifest; mime from .jpg/.png/.mp4)
    check_content(image, name) -> score                     (raises ContentRefused)
    content_gate() -> ContentGate                           (one cached instance per process)
    label_result_file(path, ws=None, model_name=None)       (sign any result file facecast writes)
    gate_verdict(image, name) -> dict                       (check + the `content_gate` record for a face)
    gate_cache(ws) -> VerdictCache; gate_file_bytes(cache, data, name)   (frames scored once per content)
    require_gate_verdicts(metas, label)                     (train: every face passed the gate)
    label_byproduct(image, ws=None) -> image                (previews, crops: watermark synthetic faces)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from facecast.provenance.consent import ConsentRecord, require_consent
from facecast.provenance.content_gate import MODEL_ID, ContentGate, VerdictCache, has_verdict, verdict

__all__ = [
    "ConsentRecord",
    "ContentGate",
    "check_content",
    "content_gate",
    "gate_cache",
    "gate_file_bytes",
    "gate_verdict",
    "label_byproduct",
    "require_gate_verdicts",
    "find_workspace",
    "label_result_file",
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
    # One onnxruntime thread: the gate runs inside each extraction worker, and two workers with two threads
    # each oversubscribed 2 cores (measured 27 ms CPU per 720p frame at 1 thread vs 43-51 ms at 2).
    return ContentGate(threads=1)


def check_content(image: np.ndarray, name: str = "image") -> float:
    return content_gate().check(image, name)


def gate_verdict(image: np.ndarray, name: str = "face") -> dict:
    """Check an image (raises ContentRefused) and return the `content_gate` record for its aligned face."""
    gate = content_gate()
    return verdict(gate.check(image, name), getattr(gate, "model_id", MODEL_ID))


def gate_cache(ws) -> VerdictCache:
    """The workspace's verdict cache (WS/.facecast/gate_verdicts.json), MAC'd with a workspace secret."""
    from facecast.provenance.keys import workspace_secret

    return VerdictCache(ws.root / ".facecast" / VerdictCache.FILE, workspace_secret(ws, b"gate-verdict-cache"))


def gate_file_bytes(cache: VerdictCache, data: bytes, name: str, image: np.ndarray | None = None) -> float:
    """Gate an image file's bytes through `cache` (scores only content not seen before); `image` is the
    already decoded picture of `data`, when the caller has it."""
    from facecast.media.images import decode_image

    decode = (lambda _b: image) if image is not None else (lambda b: decode_image(b, name))
    return cache.check_bytes(content_gate(), data, decode, name)


def require_gate_verdicts(metas, label: str, folder=None) -> None:
    """Raise one line when any aligned face lacks a passing `content_gate` verdict (see content_gate.py)."""
    from facecast.errors import FacecastError

    missing = sum(1 for m in metas if not has_verdict(getattr(m, "content_gate", None)))
    if missing:
        where = f" in {folder}" if folder else ""
        raise FacecastError(
            f"{label}: {missing} face(s){where} have no explicit-content gate verdict; re-extract them with "
            f"`facecast extract` or re-import them with `facecast faceset unpack|merge|import-dfl` (which gate every face)"
        )


def label_byproduct(image: np.ndarray, ws=None, near: str | Path | None = None) -> np.ndarray:
    """Watermark an image that shows synthetic faces but is not a result (training previews and their
    history, score crops, demo comparison sheets), so it reads as synthetic wherever it ends up.

    Payload: that of `ws`, else of the workspace `near` lies in, else of the per-user signing workspace."""
    ws = ws or (find_workspace(near) if near is not None else None) or _default_signing_workspace()
    return watermark_frame(ws, image)


SIGNING_HOME_ENV = "FACECAST_HOME"


def find_workspace(path: str | Path):
    """The workspace a path lies in (nearest ancestor holding workspace.json), or None."""
    from facecast.workspace import WORKSPACE_FILE, Workspace

    p = Path(path).expanduser().resolve()
    for parent in (p, *p.parents):
        if (parent / WORKSPACE_FILE).is_file():
            return Workspace(parent)
    return None


def _default_signing_workspace():
    """Outside any workspace, results are signed with a per-user key (made on first use), so a plain
    `facecast video FRAMES out.mp4` is labelled like everything else."""
    import os

    from facecast.workspace import Workspace

    home = Path(os.environ.get(SIGNING_HOME_ENV) or Path.home() / ".facecast") / "signing"
    return Workspace.open(home, create=True)


def label_result_file(path: str | Path, ws=None, model_name: str | None = None) -> bool:
    """Sign a result file facecast wrote (C2PA, with the workspace's valid consent ids).

    Returns False only for containers C2PA cannot carry (e.g. .mkv): those rely on the watermark that
    merge puts in every frame. There is no way to skip this for a container that can carry it."""
    from facecast.provenance.c2pa import MIME_BY_SUFFIX
    from facecast.provenance.consent import list_consents, src_identity

    path = Path(path)
    if path.suffix.lower() not in MIME_BY_SUFFIX:
        return False
    ws = ws or find_workspace(path) or _default_signing_workspace()
    src = src_identity(ws)
    ids = [r.id for r in list_consents(ws) if r.status() == "valid" and (src is None or r.identity == src)]
    sign_output(ws, path, model_name=model_name, consent_ids=ids)
    return True
