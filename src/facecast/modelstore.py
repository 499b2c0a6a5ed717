"""One model folder on disk for every model family (SAEHD swap models, XSeg segmenters).

Why here, beside `workspace.py`, and not in `train/` or `masks/`: both stages write and read model
folders, and a stage may not import another stage. Like the workspace layout, the folder format is
shared infrastructure; each family keeps only its own file contents (which tensors, which state keys).

A save is a small journal, so several files change together or not at all:

1. write every file into `.pending/` plus `checksums.json` (sha256 of each weight file), fsync each
   file and the folder;
2. rename `.pending/` -> `.commit/` (one atomic rename: from here on the save counts as done);
3. move each file from `.commit/` into the model folder (atomic renames), fsync the folder;
4. remove `.commit/`.

`recover()` runs before every load: a `.commit/` is rolled forward (step 3 again), a `.pending/` is an
unfinished save and is deleted. So after a kill -9 at any moment the folder holds exactly the last
completed save. Weight files are read back only after their bytes match the recorded sha256: a disk
or copy error that flips bytes inside the tensors (a safetensors file still parses) is one clear error
naming the last good backup, never a silently grey face. Folders written before checksums existed
load unverified and gain checksums at their next save.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError

PENDING, COMMIT = ".pending", ".commit"
CHECKSUMS = "checksums.json"
HISTORY = "history.jsonl"
BACKUPS = "backups"
SCHEMA = "facecast.checksums/1"
WEIGHT_SUFFIX = ".safetensors"
RESTORE_HINT = "facecast restore-backup -w WORKSPACE --model {name}"


class CorruptModelError(FacecastError):
    """A weight file whose bytes no longer match the checksum recorded when it was saved."""


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms without directory fds (Windows): rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the journal -----------------------------------------------------------------------------------------
def recover(model_dir: Path) -> str | None:
    """Finish or discard an interrupted save; returns what was done (for the log) or None."""
    model_dir = Path(model_dir)
    commit, pending = model_dir / COMMIT, model_dir / PENDING
    done = None
    if commit.is_dir():
        for path in sorted(commit.iterdir()):
            if path.is_file():
                os.replace(path, model_dir / path.name)
        _fsync_dir(model_dir)
        shutil.rmtree(commit, ignore_errors=True)
        done = "rolled forward an interrupted save"
    if pending.exists():
        shutil.rmtree(pending, ignore_errors=True)
        done = done or "discarded an unfinished save"
    return done


def commit(model_dir: Path, files: dict[str, bytes], phase_hook: Callable[[str], None] | None = None) -> None:
    """Write `files` (name -> bytes) into the model folder as one save (see the module docstring).

    `phase_hook(phase)` is called at "pending-written" and "committed" (tests kill -9 a save there)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    recover(model_dir)
    sums = _checksums_for(model_dir, files)
    pending = model_dir / PENDING
    pending.mkdir()
    try:
        for name, data in {**files, CHECKSUMS: _checksum_file(sums)}.items():
            (pending / name).write_bytes(data)
            _fsync_file(pending / name)
        _fsync_dir(pending)
    except OSError as err:
        shutil.rmtree(pending, ignore_errors=True)
        raise FacecastError(f"cannot save model to {model_dir}: {err.strerror}") from None
    (phase_hook or (lambda _p: None))("pending-written")
    os.replace(pending, model_dir / COMMIT)
    _fsync_dir(model_dir)
    (phase_hook or (lambda _p: None))("committed")
    recover(model_dir)


def _checksums_for(model_dir: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Checksums after this save: the new weight files', plus the kept ones' for files not rewritten."""
    old = read_checksums(model_dir) or {}
    sums = {n: s for n, s in old.items() if n not in files and (model_dir / n).is_file()}
    sums.update({n: sha256(d) for n, d in files.items() if n.endswith(WEIGHT_SUFFIX)})
    return sums


def _checksum_file(sums: dict[str, str]) -> bytes:
    return json.dumps({"schema": SCHEMA, "sha256": dict(sorted(sums.items()))}, indent=2).encode()


def read_checksums(folder: Path) -> dict[str, str] | None:
    """name -> sha256 recorded at the last save; None for a folder saved before checksums existed."""
    path = Path(folder) / CHECKSUMS
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data["sha256"].items()}
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise CorruptModelError(f"{path}: corrupt checksum file; {_restore_advice(Path(folder))}") from None


def exists(model_dir: Path, name: str) -> bool:
    """Whether a committed save holds `name` (a committed-but-unmoved save counts)."""
    model_dir = Path(model_dir)
    return (model_dir / name).is_file() or (model_dir / COMMIT / name).is_file()


# -- reading ---------------------------------------------------------------------------------------------
def read_verified(model_dir: Path, name: str) -> bytes:
    """The bytes of `name`, checked against its recorded sha256 (hashing the same bytes that are parsed)."""
    model_dir = Path(model_dir)
    path = model_dir / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FacecastError(f"{path}: not found; train the model first") from None
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror})") from None
    expected = (read_checksums(model_dir) or {}).get(name)
    if expected is not None and sha256(data) != expected:
        raise CorruptModelError(
            f"{path} is damaged: its sha256 differs from the one recorded when it was saved "
            f"({CHECKSUMS}); {_restore_advice(model_dir)}"
        )
    return data


def read_json(model_dir: Path, name: str) -> dict[str, Any] | None:
    """A JSON file of the folder (None when absent); a corrupt one is one clear error."""
    path = Path(model_dir) / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FacecastError(f"{path}: corrupt file; {_restore_advice(Path(model_dir))}") from None


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file held in memory (its header is 8 bytes of length + JSON)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        return dict(json.loads(data[8 : 8 + n]).get("__metadata__") or {})
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}


def append_history(model_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line per logged step. Appends are small single writes, so a kill loses at most a line."""
    with open(Path(model_dir) / HISTORY, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


# -- backups ---------------------------------------------------------------------------------------------
def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix in (WEIGHT_SUFFIX, ".json"))


def backup(model_dir: Path, iteration: int, keep: int) -> Path:
    """Copy the committed save to backups/<iter>/ and keep only the newest `keep` backups."""
    model_dir = Path(model_dir)
    root = model_dir / BACKUPS
    dest = root / f"{iteration:08d}"
    tmp = root / f".{iteration:08d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in _model_files(model_dir):
        shutil.copy2(path, tmp / path.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    olds = list_backups(model_dir)
    for old in olds[: max(0, len(olds) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def list_backups(model_dir: Path) -> list[Path]:
    root = Path(model_dir) / BACKUPS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def backup_is_good(folder: Path) -> bool:
    """Every weight file of a backup matches its recorded checksum (a backup from before checksums
    counts as good when its weight files are all there: nothing can be checked)."""
    try:
        sums = read_checksums(folder)
    except CorruptModelError:
        return False
    if sums is None:
        return any(p.suffix == WEIGHT_SUFFIX for p in _model_files(folder))
    try:
        return bool(sums) and all(sha256((folder / n).read_bytes()) == s for n, s in sums.items())
    except OSError:
        return False


def last_good_backup(model_dir: Path) -> Path | None:
    return next((b for b in reversed(list_backups(model_dir)) if backup_is_good(b)), None)


def _restore_advice(model_dir: Path) -> str:
    good = last_good_backup(model_dir)
    if good is None:
        return (f"no good backup in {model_dir / BACKUPS} (turn backups on with --set autobackup_minutes=N); "
                "train the model again")
    return (f"last good backup: {good} (iteration {int(good.name)}); restore it with "
            f"`{RESTORE_HINT.format(name=model_dir.name)}`")


def restore(model_dir: Path, which: Path | None = None) -> Path:
    """Make a backup (default: the newest good one) the model's current save, as one atomic commit."""
    model_dir = Path(model_dir)
    chosen = which or last_good_backup(model_dir)
    if chosen is None or not chosen.is_dir():
        raise FacecastError(f"{model_dir}: no good backup to restore in {model_dir / BACKUPS}")
    if not backup_is_good(chosen):
        raise CorruptModelError(f"{chosen}: this backup is damaged too (checksum mismatch); pick another")
    files = {p.name: p.read_bytes() for p in _model_files(chosen) if p.name != CHECKSUMS}
    commit(model_dir, files)
    return chosen
