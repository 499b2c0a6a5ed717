"""Verify page API: `provenance.verify` (the `facecast verify` function) on an uploaded file or a
workspace file. Uploads go to a private temporary file that is deleted after the check (never served)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from facecast.errors import FacecastError
from facecast.studio.files import safe_path

router = APIRouter()
MAX_UPLOAD = 4 << 30  # 4 GiB
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")


class FileRequest(BaseModel):
    path: str


def _report(path: Path, ws, name: str) -> dict[str, Any]:
    from facecast.provenance.verify import verify

    data = verify(path, ws).to_dict()
    data["path"] = name
    return data


@router.post("/api/verify/upload")
async def upload(request: Request) -> dict[str, Any]:
    """Raw request body = the file; header X-Filename names it (its suffix picks image or video)."""
    name = Path(request.headers.get("x-filename", "upload")).name
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise FacecastError(f"{name}: not an image or video this check reads ({', '.join(SUFFIXES)})")
    fd, tmp = tempfile.mkstemp(prefix="facecast-verify-", suffix=suffix)
    try:
        size = 0
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise FacecastError(f"{name}: larger than {MAX_UPLOAD >> 30} GiB")
                fh.write(chunk)
        if not size:
            raise FacecastError(f"{name}: empty upload")
        import asyncio

        return await asyncio.to_thread(_report, Path(tmp), request.app.state.workspace, name)
    finally:
        Path(tmp).unlink(missing_ok=True)


@router.post("/api/verify/file")
def workspace_file(request: Request, body: FileRequest) -> dict[str, Any]:
    ws = request.app.state.workspace
    return _report(safe_path(ws.root, body.path), ws, body.path)
