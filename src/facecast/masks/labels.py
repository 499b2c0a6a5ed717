"""Moving hand labels in and out of a faceset: export, import, list, fetch.

Why: until facecast's own in-browser editor exists, people label in tools they know. LabelMe's polygon
JSON is read and written by LabelMe, CVAT and others, so `export --format labelme` writes each aligned
face beside a LabelMe JSON (with its current polygons, or none), the user draws "face" and "exclude"
polygons, and `import` puts them back into the faces' metadata. `--format facecast` is one JSON file with
every labelled face's polygons (the shared polygon format of `masks/polygons.py`), for backups and
scripts. Imports are all-or-nothing: every label file is validated and every face's new bytes are built
in memory, then written to temporary siblings, then renamed into place; a failure at any step (a corrupt
file, a full disk, an unreadable face) leaves every face as it was.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.faces.aligned import embed_meta, list_aligned, meta_from_bytes, read_meta
from facecast.masks.polygons import Polygon, from_labelme, read_json, scale_polygons, to_labelme, validate_polygons
from facecast.media.images import atomic_write_bytes
from facecast.workspace import Workspace

FORMATS = ("facecast", "labelme")
LABELS_SCHEMA = "facecast.labels/1"
LABELS_FILE = "labels.json"


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise FacecastError(f"unknown label format {fmt!r}: use facecast or labelme")
    return fmt


def default_dir(ws: Workspace, side: str) -> Path:
    return ws.data(side) / "labels"


def labels_export(ws: Workspace, side: str, fmt: str = "labelme", out: str | Path | None = None,
                  labelled_only: bool = False) -> dict[str, Any]:
    """LabelMe: every face (or only labelled ones) copied out with a JSON beside it.
    facecast: one labels.json with the polygons of every labelled face."""
    _format(fmt)
    out = Path(out) if out else default_dir(ws, side)
    paths = list_aligned(ws.aligned(side))
    written = labelled = 0
    if fmt == "facecast":
        faces = {}
        for p in paths:
            meta = read_meta(p)
            if meta.mask_polygons:
                faces[p.name] = {"size": meta.size, "polygons": meta.mask_polygons}
        doc = {"schema": LABELS_SCHEMA, "side": side, "faces": faces}
        atomic_write_bytes(out / LABELS_FILE, json.dumps(doc, indent=1).encode())
        labelled = written = len(faces)
    else:
        for p in paths:
            meta = read_meta(p)
            if labelled_only and not meta.mask_polygons:
                continue
            labelled += bool(meta.mask_polygons)
            atomic_write_bytes(out / p.name, p.read_bytes())
            doc = to_labelme(meta.mask_polygons, p.name, meta.size)
            atomic_write_bytes(out / f"{p.stem}.json", json.dumps(doc, indent=1).encode())
            written += 1
    return {"side": side, "format": fmt, "out": str(out), "faces": len(paths), "exported": written,
            "labelled": labelled}


def _read_labelme_dir(folder: Path, sizes: dict[str, int]) -> dict[str, list[Polygon]]:
    found: dict[str, list[Polygon]] = {}
    files = sorted(p for p in folder.glob("*.json") if p.name != LABELS_FILE)
    if not files:
        raise FacecastError(f"{folder}: no LabelMe .json files; export some with `facecast xseg labels export`")
    by_stem = {Path(n).stem: n for n in sizes}
    for f in files:
        doc = read_json(f)
        width = doc.get("imageWidth") if isinstance(doc, dict) else None
        if width is not None and (not isinstance(width, (int, float)) or isinstance(width, bool)
                                  or not math.isfinite(width) or width <= 0):
            raise FacecastError(f"{f}: imageWidth {width!r} is not a positive number; re-export the face")
        image = Path(str(doc.get("imagePath") or "")).name if isinstance(doc, dict) else ""
        name = image if image in sizes else by_stem.get(Path(image).stem) or by_stem.get(f.stem)
        if name is None:
            raise FacecastError(f"{f}: no aligned face named {image or f.stem} in this faceset; check the side (src/dst)")
        found[name] = from_labelme(doc, str(f), sizes[name])
    return found


def _read_facecast(path: Path, sizes: dict[str, int]) -> dict[str, list[Polygon]]:
    if path.is_dir():
        path = path / LABELS_FILE
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != LABELS_SCHEMA or not isinstance(doc.get("faces"), dict):
        raise FacecastError(f"{path}: not a facecast labels file (schema {LABELS_SCHEMA}); re-export it")
    found = {}
    for name, entry in doc["faces"].items():
        if name not in sizes:
            raise FacecastError(f"{path}: no aligned face named {name} in this faceset; check the side (src/dst)")
        if not isinstance(entry, dict):
            raise FacecastError(f"{path}: entry {name} must be an object with size and polygons")
        polys = validate_polygons(entry.get("polygons"), f"{path} [{name}]")
        size = entry.get("size")
        if isinstance(size, (int, float)) and size > 0 and int(size) != sizes[name]:
            polys = scale_polygons(polys, sizes[name] / float(size))
        found[name] = polys
    return found


def labels_import(ws: Workspace, side: str, fmt: str = "labelme", src: str | Path | None = None,
                  quiet: bool = False) -> dict[str, Any]:
    """Put labels back into the faces' metadata: all files validated first, then written."""
    _format(fmt)
    src = Path(src) if src else default_dir(ws, side)
    if not src.exists():
        raise FacecastError(f"{src}: label folder not found; pass --out/--from the folder you exported to")
    paths = {p.name: p for p in list_aligned(ws.aligned(side))}
    originals = {n: _read_face(p) for n, p in paths.items()}
    metas = {n: meta_from_bytes(data, str(paths[n])) for n, data in originals.items()}
    sizes = {n: m.size for n, m in metas.items()}
    found = _read_labelme_dir(src, sizes) if fmt == "labelme" else _read_facecast(src, sizes)
    updates: dict[Path, bytes] = {}
    for name, polys in found.items():
        meta = metas[name]
        new = polys or None
        if meta.mask_polygons != new:
            meta.mask_polygons = new
            updates[paths[name]] = embed_meta(originals[name], meta)  # in memory: nothing written yet
    _commit_all(updates, {paths[n]: originals[n] for n in originals})
    return {"side": side, "format": fmt, "from": str(src), "files": len(found),
            "labelled": sum(1 for p in found.values() if p), "changed": len(updates)}


def _read_face(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror}); no label was imported") from None


def _commit_all(updates: dict[Path, bytes], originals: dict[Path, bytes]) -> None:
    """Write every face or none: all to temporary siblings first, then rename; undo on any failure."""
    temps: dict[Path, Path] = {}
    done: list[Path] = []
    try:
        for path, data in updates.items():
            tmp = path.with_name(f".{path.name}.labels-tmp")
            with open(tmp, "wb") as fh:
                temps[path] = tmp
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
            done.append(path)
    except OSError as err:
        for path in done:  # put back what was already renamed
            try:
                atomic_write_bytes(path, originals[path])
            except OSError:
                pass
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise FacecastError(f"writing labels failed ({err.strerror or err}); no face was changed") from None


def labels_list(ws: Workspace, side: str) -> dict[str, Any]:
    """Which faces carry labels (and how many include/exclude polygons each)."""
    paths = list_aligned(ws.aligned(side))
    faces = {}
    for p in paths:
        polys = read_meta(p).mask_polygons or []
        if polys:
            inc = sum(1 for q in polys if q["type"] == "include")
            faces[p.name] = f"{inc} include, {len(polys) - inc} exclude"
    return {"side": side, "faces": len(paths), "labelled": len(faces), "labelled_faces": faces}


def labels_fetch(ws: Workspace, side: str, out: str | Path) -> dict[str, Any]:
    """Copy the labelled faces (files unchanged, metadata inside) to `out` (DeepFaceLab's "fetch")."""
    out = Path(out)
    copied = 0
    paths = list_aligned(ws.aligned(side))
    for p in paths:
        if read_meta(p).mask_polygons:
            atomic_write_bytes(out / p.name, p.read_bytes())
            copied += 1
    return {"side": side, "faces": len(paths), "copied": copied, "out": str(out)}
