"""The merge session file `model/<name>/merge_session.json`: settings, per-frame overrides, progress.

Why per-frame hashes: a re-run must skip frames already merged with the same *effective* settings
(global settings + that frame's overrides + the model + the face geometry) and redo exactly the frames
whose effective settings changed. A frame about to be redone loses its record first (saved before the
work starts), so an interrupted re-merge can never leave a record that claims old settings for a file
holding new pixels.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.media.images import atomic_write_bytes
from facecast.merge.settings import MergeSettings

SCHEMA = "facecast.merge_session/1"
FILENAME = "merge_session.json"


@dataclass
class Session:
    path: Path
    model: str
    settings: MergeSettings = field(default_factory=MergeSettings)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames: dict[str, dict[str, Any]] = field(default_factory=dict)  # frame name -> {hash, faces, status}
    no_face: list[str] = field(default_factory=list)
    total: int = 0

    @classmethod
    def load(cls, model_dir: Path, model: str) -> "Session":
        path = Path(model_dir) / FILENAME
        if not path.exists():
            return cls(path, model)
        try:
            data = json.loads(path.read_text())
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}")
            settings = MergeSettings.from_dict(data.get("settings", {}), str(path))
            overrides = {str(k): dict(v) for k, v in data.get("overrides", {}).items()}
            for frame, ov in overrides.items():
                settings.with_overrides(ov, f"{path}: override for {frame}")
            frames = data.get("frames", {})
            if not isinstance(frames, dict) or not all(
                isinstance(r, dict) and isinstance(r.get("hash", ""), (str, type(None))) for r in frames.values()
            ):
                raise ValueError("frames must map frame names to {hash, faces, status} objects")
            no_face = data.get("no_face", [])
            if not isinstance(no_face, list) or not all(isinstance(n, str) for n in no_face):
                raise ValueError("no_face must be a list of frame names")
            progress = data.get("progress", {})
            total = progress.get("total", 0) if isinstance(progress, dict) else 0
            return cls(path, model, settings, overrides, {str(k): dict(v) for k, v in frames.items()}, list(no_face),
                       int(total) if isinstance(total, int) else 0)
        except (ValueError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FacecastError(f"{path}: unreadable merge session ({err}); delete it to start the merge afresh") from None

    def effective(self, frame: str) -> MergeSettings:
        ov = self.overrides.get(frame)
        return self.settings.with_overrides(ov, f"override for {frame}") if ov else self.settings

    def set_override(self, frame: str, values: dict[str, Any]) -> None:
        """Add or change overrides of one frame (validated now, so a bad value never reaches the file)."""
        merged = {**self.overrides.get(frame, {}), **values}
        self.settings.with_overrides(merged, f"override for {frame}")
        self.overrides[frame] = merged

    def is_done(self, frame: str, digest: str) -> bool:
        rec = self.frames.get(frame)
        return bool(rec) and rec.get("hash") == digest

    def mark(self, frame: str, digest: str | None, faces: int, status: str) -> None:
        if digest is None:
            self.frames.pop(frame, None)
        else:
            self.frames[frame] = {"hash": digest, "faces": faces, "status": status}

    def save(self) -> None:
        done = sum(1 for r in self.frames.values() if r.get("hash"))
        data = {
            "schema": SCHEMA,
            "model": self.model,
            "settings": self.settings.to_dict(),
            "overrides": self.overrides,
            "progress": {"done": done, "total": self.total},
            "no_face": self.no_face,
            "frames": self.frames,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_bytes(self.path, json.dumps(data, indent=1, sort_keys=False).encode())


def frame_digest(settings: MergeSettings | None, *parts: Any) -> str:
    """Hash of a frame's effective settings and whatever else its pixels depend on."""
    payload = json.dumps([settings.to_dict() if settings else None, *parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def last_merge(models_dir: Path) -> str | None:
    """Name of the model whose merge session was saved last (the model behind data_dst/merged), or None.

    The `video` command names it in the result's C2PA manifest; read here so no other stage reads
    this file's format."""
    sessions = [p for p in Path(models_dir).glob(f"*/{FILENAME}") if p.is_file()] if Path(models_dir).is_dir() else []
    if not sessions:
        return None
    latest = max(sessions, key=lambda p: p.stat().st_mtime)
    try:
        return str(json.loads(latest.read_text()).get("model") or latest.parent.name)
    except (ValueError, OSError):
        return latest.parent.name
