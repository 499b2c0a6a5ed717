"""Faceset files and folders: pack/unpack, merge, info, resize.

Pack format (`.fcset`): a ZIP archive with every member STORED (no compression: JPEG/PNG are already
compressed, and stored members can be read by offset without inflating), fixed timestamps (the same
faceset packs to the same bytes), first member `faceset.json` = index {schema, count, faces: [{name,
bytes, sha256, meta}]} so a loader gets all metadata without opening each face. Why ZIP and not
DeepFaceLab's pickle-headed `.pak`: any tool can list and extract it, and nothing in it is executable.
Unpacking checks every name (plain file names only: no folders, no `..`, no hidden files) and every
checksum, so a crafted archive cannot write outside the target folder.

Limits (a pack is untrusted input; all checked from the ZIP directory before anything is inflated or
written, each failure one error line): a face member may declare at most MAX_MEMBER_BYTES, the index
MAX_INDEX_BYTES, the whole pack MAX_TOTAL_BYTES; no member may inflate more than MAX_RATIO times its
stored size (facecast packs are STORED, ratio 1; JPEG/PNG barely compress), and the faces must fit the
target's free disk with a margin. Declared sizes are upper bounds: zipfile stops at the declared size
and fails the CRC when a member tries to inflate further.

Faces entering a folder (`unpack`, `merge`) pass the explicit-content gate one by one (`gate_face`) and
carry its verdict in their metadata (`content_gate`, required by `train`); a face whose recorded verdict
is the one the gate gives now keeps its exact bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from facecast.console import track
from facecast.errors import FacecastError
from facecast.faces.aligned import (
    AlignedMeta,
    embed_meta,
    list_aligned,
    meta_from_bytes,
    read_aligned,
    read_meta,
    write_aligned,
)
from facecast.faceset.common import unique_name
from facecast.faceset.rename import finish_pending
from facecast.faceset.dfl_import import decode_bounded
from facecast.media.images import atomic_write_bytes, atomic_write_with
from facecast.provenance import gate_verdict

PACK_SCHEMA = "facecast.faceset-pack/1"
INDEX = "faceset.json"
PACK_SUFFIX = ".fcset"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_FACE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_MEMBER_BYTES = 64 << 20  # an aligned face with its masks is < 2 MB; 64 MB is far beyond any real one
MAX_INDEX_BYTES = 256 << 20
MAX_TOTAL_BYTES = 64 << 30
MAX_RATIO = 50.0  # JSON inflates ~5-10x, images ~1x; zip bombs 1000x+
DISK_MARGIN = 256 << 20


def _check_limits(zf: zipfile.ZipFile, path: Path) -> int:
    """Refuse a pack whose directory declares a bomb (sizes, ratio); returns the faces' total bytes."""
    total = faces = 0
    for info in zf.infolist():
        cap = MAX_INDEX_BYTES if info.filename == INDEX else MAX_MEMBER_BYTES
        what = "index" if info.filename == INDEX else f"member {info.filename!r}"
        if info.file_size > cap:
            raise FacecastError(f"{path}: {what} declares {info.file_size / 2**20:.0f} MiB uncompressed (limit "
                                f"{cap >> 20} MiB); refusing a crafted or damaged pack")
        if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise FacecastError(f"{path}: {what} would inflate {info.file_size / max(info.compress_size, 1):.0f}x "
                                f"(limit {MAX_RATIO:.0f}x); refusing a zip bomb")
        total += info.file_size
        faces += info.file_size if info.filename != INDEX else 0
        if total > MAX_TOTAL_BYTES:
            raise FacecastError(f"{path}: declares more than {MAX_TOTAL_BYTES >> 30} GiB uncompressed; refusing it")
    return faces


def _check_disk(folder: Path, need: int, what: Path) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + DISK_MARGIN > free:
        raise FacecastError(f"{what}: its faces need {need / 2**20:.0f} MiB but {probe} has {free / 2**20:.0f} MiB free; "
                            "free some space first")


def _safe_member_name(name: str, archive: Path) -> str:
    bad = (not name or "/" in name or "\\" in name or name.startswith(".") or ".." in name
           or "\x00" in name or Path(name).suffix.lower() not in _FACE_SUFFIXES)
    if bad:
        raise FacecastError(f"{archive}: refusing member {name!r} (not a plain face file name); the pack is damaged or crafted")
    return name


def is_pack(path: Path) -> bool:
    return path.is_file() and zipfile.is_zipfile(path)


def read_index(path: str | Path) -> dict:
    """The pack's index (all faces' metadata) without reading any face."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            _check_limits(zf, path)
            index = json.loads(zf.read(INDEX))
    except FileNotFoundError:
        raise FacecastError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, NotImplementedError, zlib.error):
        raise FacecastError(f"{path}: not a facecast faceset pack (make one with `facecast faceset pack`)") from None
    if (not isinstance(index, dict) or index.get("schema") != PACK_SCHEMA or not isinstance(index.get("faces"), list)
            or not all(isinstance(f, dict) for f in index["faces"])):
        raise FacecastError(f"{path}: pack index schema is not {PACK_SCHEMA}; re-pack it with this facecast")
    return index


def iter_pack(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(name, file bytes) of each face in a pack, names and checksums verified."""
    path = Path(path)
    index = read_index(path)
    with zipfile.ZipFile(path) as zf:
        for entry in index["faces"]:
            name = _safe_member_name(str(entry.get("name", "")), path)
            try:
                data = zf.read(name)  # sizes were capped by read_index: at most MAX_MEMBER_BYTES
            except KeyError:
                raise FacecastError(f"{path}: index lists {name} but the pack lacks it; the pack is damaged") from None
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error):
                raise FacecastError(f"{path}: member {name} is corrupt (it does not inflate to its declared size "
                                    "and checksum); the pack is damaged") from None
            if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise FacecastError(f"{path}: checksum of {name} does not match; the pack is damaged")
            yield name, data


def iter_faceset(source: str | Path) -> Iterator[tuple[str, bytes]]:
    """Faces of a folder or a pack, as (name, bytes)."""
    source = Path(source)
    if is_pack(source):
        yield from iter_pack(source)
        return
    if source.is_dir():
        finish_pending(source)
    for p in list_aligned(source):
        yield p.name, p.read_bytes()


def pack(folder: str | Path, out_file: str | Path, quiet: bool = True) -> dict:
    """Pack a faceset folder into one `.fcset` file (written atomically)."""
    folder, out_file = Path(folder), Path(out_file)
    finish_pending(folder)
    files = list_aligned(folder)
    if not files:
        raise FacecastError(f"{folder}: no aligned faces to pack")
    faces, blobs = [], []
    for p in track(files, description="reading faces", quiet=quiet):
        data = p.read_bytes()
        meta = meta_from_bytes(data, str(p))  # refuses files without valid metadata
        faces.append({"name": p.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "meta": asdict(meta)})
        blobs.append((p.name, data))
    index = {"schema": PACK_SCHEMA, "count": len(faces), "faces": faces}

    def writer(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(zipfile.ZipInfo(INDEX, _EPOCH), json.dumps(index, separators=(",", ":")))
            for name, data in blobs:
                zf.writestr(zipfile.ZipInfo(name, _EPOCH), data)

    try:
        atomic_write_with(out_file, writer)
    except OSError as err:
        raise FacecastError(f"cannot write {out_file}: {err.strerror}") from None
    return {"pack": str(out_file), "faces": len(faces), "bytes": out_file.stat().st_size}


def gate_face(data: bytes, name: str) -> bytes:
    """An aligned face's bytes after the explicit-content gate (raises ContentRefused), with the verdict
    recorded in its metadata; pixels are never re-encoded, and a face already carrying the same verdict
    comes back unchanged."""
    meta = meta_from_bytes(data, name)
    record = gate_verdict(decode_bounded(data, name), name)
    if meta.content_gate == record:
        return data
    meta.content_gate = record
    return embed_meta(data, meta)


def _add_faces(items: Iterator[tuple[str, bytes]], folder: Path, quiet: bool, what: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    finish_pending(folder)
    added = renamed = identical = 0
    for name, data in track(items, description=what, quiet=quiet):
        data = gate_face(data, name)
        target = folder / name
        if target.exists():
            if target.read_bytes() == data:
                identical += 1
                continue
            target = folder / unique_name(folder, name)
            renamed += 1
        atomic_write_bytes(target, data)
        added += 1
    return {"folder": str(folder), "added": added, "renamed_on_collision": renamed, "identical_skipped": identical}


def unpack(file: str | Path, folder: str | Path, quiet: bool = True) -> dict:
    """Extract a pack into a folder; pixels and metadata are the packed ones plus the gate's verdict."""
    file = Path(file)
    if not file.exists():
        raise FacecastError(f"{file}: file not found")
    read_index(file)
    _check_disk(Path(folder), pack_face_bytes(file), file)
    return {"pack": str(file), **_add_faces(iter_pack(file), Path(folder), quiet, "unpacking")}


def pack_face_bytes(file: str | Path) -> int:
    """Declared uncompressed bytes of a pack's faces (after the limits check)."""
    with zipfile.ZipFile(file) as zf:
        return _check_limits(zf, Path(file))


def merge(a: str | Path, b: str | Path, out: str | Path, quiet: bool = True) -> dict:
    """Merge two facesets (folders or packs) into folder `out`; metadata travels untouched inside each
    file; a name already taken gets `_1`, `_2`... (byte-identical files are added once)."""
    for src in (a, b):
        if not Path(src).exists():
            raise FacecastError(f"{src}: faceset not found")
    out = Path(out)
    if out.resolve() in (Path(a).resolve(), Path(b).resolve()):
        raise FacecastError(f"{out}: the output must be a new folder, not one of the inputs")

    need = sum(pack_face_bytes(src) if is_pack(Path(src)) else 0 for src in (a, b))
    if need:
        _check_disk(out, need, Path(a if is_pack(Path(a)) else b))

    def both() -> Iterator[tuple[str, bytes]]:
        yield from iter_faceset(a)
        yield from iter_faceset(b)

    return _add_faces(both(), out, quiet, "merging")


def _meta_summary(meta: AlignedMeta) -> dict:
    return {
        "face_type": meta.face_type,
        "size": meta.size,
        "source": meta.source.filename,
        "frame_size": list(meta.source.frame_size),
        "face_index": meta.face_index,
        "identity": meta.identity,
        "pose": {k: round(float(v), 2) for k, v in meta.pose.items()},
        "sharpness": round(float(meta.sharpness), 3),
        "interpolated": meta.interpolated,
        "mask_polygons": len(meta.mask_polygons or []),
        "xseg_mask": bool(meta.xseg_mask),
        "detector": meta.detector,
        "original_name": meta.extra.get("original_name"),
        "extra_keys": sorted(meta.extra),
    }


def info(file: str | Path) -> dict:
    """Metadata summary of one face file, or of a whole pack."""
    file = Path(file)
    if not file.exists():
        raise FacecastError(f"{file}: file not found")
    if is_pack(file):
        index = read_index(file)
        metas = [AlignedMeta.from_dict(f["meta"], f"{file}:{f.get('name')}") for f in index["faces"]]
        return {"pack": str(file), "faces": len(metas),
                "face_types": dict(Counter(m.face_type for m in metas)),
                "sizes": dict(Counter(m.size for m in metas)),
                "sources": len({m.source.filename for m in metas}),
                "with_masks": sum(1 for m in metas if m.mask_polygons or m.xseg_mask)}
    return {"file": str(file), **_meta_summary(read_meta(file))}


def rescale_meta(meta: AlignedMeta, size: int) -> AlignedMeta:
    """Metadata for the same face scaled to `size`.

    Pixel centres: cv2.resize maps x to (x + 0.5) * s - 0.5, so landmarks, polygons and the matrix's
    output side get exactly that map; the frame side (source landmarks, rect) does not change."""
    s = size / float(meta.size)

    def fwd(pts: np.ndarray) -> np.ndarray:
        return (np.asarray(pts, dtype=np.float64) + 0.5) * s - 0.5

    mat = meta.matrix.copy()
    mat[:, :2] *= s
    mat[:, 2] = mat[:, 2] * s + 0.5 * s - 0.5
    mask = meta.get_xseg_mask()
    new = copy.deepcopy(meta)
    new.size = size
    new.landmarks = fwd(meta.landmarks).tolist()
    new.image_to_face = mat.tolist()
    if meta.mask_polygons:
        new.mask_polygons = [{**poly, "points": fwd(poly["points"]).reshape(-1, 2).tolist()} for poly in meta.mask_polygons]
    if mask is not None:
        new.set_xseg_mask(cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR))
    return new


def resize(folder: str | Path, size: int, out: str | Path | None = None, jpeg_quality: int = 95,
           quiet: bool = True) -> dict:
    """Rescale every face of `folder` to `size` px (in place, or into `out`), keeping landmarks,
    matrix, polygons and XSeg mask consistent with the new pixels."""
    if not 16 <= int(size) <= 4096:
        raise FacecastError(f"--size must be between 16 and 4096, not {size}")
    folder = Path(folder)
    finish_pending(folder)
    dest = Path(out) if out is not None else folder
    files = list_aligned(folder)
    changed = 0
    for p in track(files, description=f"resizing to {size}", quiet=quiet):
        face = read_aligned(p)
        if face.meta.size == size and dest == folder:
            continue
        interp = cv2.INTER_AREA if size < face.meta.size else cv2.INTER_CUBIC
        img = cv2.resize(face.image, (size, size), interpolation=interp)
        write_aligned(dest / p.name, img, rescale_meta(face.meta, size), jpeg_quality)
        changed += 1
    return {"folder": str(dest), "faces": len(files), "resized": changed, "size": size}
