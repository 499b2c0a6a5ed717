"""Collision-safe, crash-safe renaming of many files in one folder.

Why: sorting renames every face, and a new name is often another face's old name (00003_a.jpg ->
00001_a.jpg while 00001_a.jpg still exists). Renaming in place would overwrite faces, and a crash
half-way would leave a mix. So:

1. write a journal (`.facecast_rename.json`, atomically) listing old -> temporary -> final names;
2. phase A: every old name -> its unique hidden temporary name; then mark the journal phase B;
3. phase B: every temporary name -> its final name; then delete the journal.

Any later faceset command first finishes a journal it finds (`finish_pending`), rolling forward, so a
kill at any moment loses no face and leaves no half-applied order.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from facecast.errors import FacecastError
from facecast.faceset.common import JOURNAL
from facecast.media.images import atomic_write_bytes


def _write_journal(folder: Path, data: dict) -> None:
    atomic_write_bytes(folder / JOURNAL, json.dumps(data).encode("utf-8"), fsync=True)


def _move(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as err:
        raise FacecastError(f"cannot rename {src} to {dst.name}: {err.strerror}; run the command again to finish") from None


def _apply(folder: Path, data: dict) -> None:
    entries = data["entries"]
    if data["phase"] == "A":
        for old, tmp, _ in entries:
            if not (folder / tmp).exists() and (folder / old).exists():
                _move(folder / old, folder / tmp)
        data["phase"] = "B"
        _write_journal(folder, data)
    for _, tmp, final in entries:
        if (folder / tmp).exists():
            _move(folder / tmp, folder / final)
    (folder / JOURNAL).unlink(missing_ok=True)


def finish_pending(folder: Path) -> bool:
    """Complete a rename an earlier run was killed in; returns True when there was one."""
    path = folder / JOURNAL
    if not path.exists():
        return False
    try:
        data = json.loads(path.read_text())
        assert data["phase"] in ("A", "B") and isinstance(data["entries"], list)
    except (OSError, ValueError, KeyError, AssertionError, TypeError):
        raise FacecastError(f"{path}: unreadable rename journal; inspect the folder and delete the journal") from None
    _apply(folder, data)
    return True


def rename_all(folder: Path, mapping: dict[str, str]) -> int:
    """Rename files of `folder` by {old name: new name} (names, not paths); returns how many moved.

    New names must be unique; they may equal other entries' old names (handled by the two phases) but
    not names of files outside the mapping (that would overwrite a file we were not asked to move)."""
    finish_pending(folder)
    mapping = {o: n for o, n in mapping.items() if o != n}
    if not mapping:
        return 0
    finals = list(mapping.values())
    if len(set(finals)) != len(finals):
        raise FacecastError(f"{folder}: two faces would get the same name; nothing was renamed")
    for new in finals:
        if (folder / new).exists() and new not in mapping:
            raise FacecastError(f"{folder / new} already exists and is not being renamed; move it away first")
    token = uuid.uuid4().hex[:8]
    entries = [[old, f".rn_{token}_{i:06d}{Path(old).suffix}", new] for i, (old, new) in enumerate(mapping.items())]
    data = {"schema": "facecast.rename/1", "phase": "A", "entries": entries}
    _write_journal(folder, data)
    _apply(folder, data)
    return len(entries)
