"""`facecast faceset import-dfl`: bring a DeepFaceLab aligned faceset over, safely.

DeepFaceLab's formats (read from its sources for facts: DFLIMG/DFLJPG.py, the older DFLPNG.py,
samplelib/PackedFaceset.py, samplelib/Sample.py, facelib/FaceType.py, core/imagelib/SegIEPolys.py):
- JPEG: an APP15 segment whose payload is `pickle.dumps(dict)`.
- PNG (DFL 1.0): a private chunk `fcWp` holding the same pickled dict.
- The dict: `face_type` ('half_face', 'midfull_face', 'full_face', 'full_face_no_align', 'whole_face',
  'head', 'head_no_align', 'mark_only'), `landmarks` (68x2, aligned pixels), `source_filename`,
  `source_rect`, `source_landmarks` (frame pixels), `image_to_face_mat` (2x3, frame -> aligned, the
  same convention as ours), `seg_ie_polys` ({'polys': [{'type': 1 include / 0 exclude, 'pts': Nx2}]};
  DFL 1.0 used `ie_polys` = [(type, pts), ...]), `xseg_mask` (PNG or JPEG bytes of a 1-channel mask),
  `eyebrows_expand_mod`, sometimes `pitch_yaw_roll` (radians; kept in `extra.dfl`, while `pose` comes
  from facecast's own estimator so every face in a faceset shares one convention).
- `faceset.pak`: uint64 version (1), uint64 n, n bytes of a pickled list of sample configs (dicts whose
  `sample_type`/`face_type` are DFL IntEnums), (count+1) uint64 offsets, then the original image files
  back to back. The offsets are relative to the data start except the last, which DFL writes as an
  absolute file position; the last face therefore ends at the end of the file.

Every pickle goes through `safe_pickle.safe_loads` (plain data + numpy arrays only). The import is two
passes: first every file's metadata is read and checked (a refused pickle anywhere stops the import
before anything is written), then faces are written. JPEG/PNG pixels are not re-encoded: the DFL pickle
segment is stripped and our JSON metadata embedded. DFL stores no frame size; `source.frame_size` is
(0, 0) for imported faces (unknown), except for `mark_only` files, which are whole frames we align here.
Every imported face passes the explicit-content gate and records its verdict (`content_gate`), which
`train` requires.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.console import track
from facecast.errors import FacecastError
from facecast.faces.align import align_face, invert, transform_points, umeyama
from facecast.faces.aligned import AlignedMeta, SourceInfo, embed_meta, write_aligned
from facecast.faces.facetype import get_face_type
from facecast.faceset.common import face_mask, sharpness, unique_name
from facecast.faceset.safe_pickle import PickleInvalid, PickleRefused, safe_loads
from facecast.media.images import atomic_write_bytes, decode_image
from facecast.provenance import gate_verdict

DFL_FACE_TYPES = {  # DFL name -> ours (mark_only: not aligned at all; we align it)
    "half_face": "half", "midfull_face": "mid_half", "full_face": "full", "full_face_no_align": "full",
    "whole_face": "whole_face", "head": "head", "head_no_align": "head", "mark_only": "mark_only",
}
DFL_FACE_TYPE_INTS = {0: "half_face", 1: "midfull_face", 2: "full_face", 3: "full_face_no_align",
                      4: "whole_face", 10: "head", 20: "head_no_align", 100: "mark_only"}
PAK_NAME = "faceset.pak"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MARK_ONLY_MAX_SIZE = 512
MAX_IMAGE_SIDE = 8192  # DFL faces are <= 1024 px, mark_only frames up to 8K; headers beyond are refused
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_dims(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or JPEG SOF header, without decoding; None when not found."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            for marker, start, end in _jpeg_segments(data):
                if marker in _SOF and end - start >= 9:
                    h, w = struct.unpack(">HH", data[start + 5 : start + 9])
                    return w, h
    except (ValueError, struct.error):
        return None
    return None


def decode_bounded(data: bytes, origin: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """decode_image after a header check, so a header declaring 100k x 100k pixels is refused before any
    decoder allocates for it; decoder failures are one line too."""
    dims = image_dims(data)
    if dims is not None and (max(dims) > MAX_IMAGE_SIDE or min(dims) < 1):
        raise FacecastError(f"{origin}: image declares {dims[0]}x{dims[1]} pixels (limit {MAX_IMAGE_SIDE} per side); "
                            "the file is damaged or crafted; nothing was imported")
    try:
        return decode_image(data, origin, flags)
    except cv2.error:
        raise FacecastError(f"{origin}: not a decodable image; nothing was imported") from None


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each header segment before the scan; start/end span the whole segment."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos, out = 2, []
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
            continue
        if marker in (0xDA, 0xD9):
            break
        if pos + 4 > len(data):
            raise ValueError("truncated JPEG")
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError("truncated JPEG segment")
        out.append((marker, pos, pos + 2 + length))
        pos += 2 + length
    return out


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each PNG chunk (start/end span length+type+body+crc)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, out = 8, []
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        out.append((data[pos + 4 : pos + 8], pos, end))
        pos = end
        if out[-1][0] == b"IEND":
            break
    return out


def dfl_payload(data: bytes) -> bytes | None:
    """The raw pickle DeepFaceLab embedded in an image file, or None."""
    if data[:2] == b"\xff\xd8":
        for marker, start, end in _jpeg_segments(data):
            if marker == 0xEF:
                return data[start + 4 : end]
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        for ctype, start, end in _png_chunks(data):
            if ctype == b"fcWp":
                return data[start + 8 : end - 4]
        return None
    raise ValueError("not a JPEG or PNG")


def strip_dfl(data: bytes) -> bytes:
    """The same image file without DeepFaceLab's pickle (pixels untouched)."""
    if data[:2] == b"\xff\xd8":
        parts, pos = [], 0
        for marker, start, end in _jpeg_segments(data):
            if marker == 0xEF:
                parts.append(data[pos:start])
                pos = end
        return b"".join(parts) + data[pos:]
    parts, pos = [], 0
    for ctype, start, end in _png_chunks(data):
        if ctype == b"fcWp":
            parts.append(data[pos:start])
            pos = end
    return b"".join(parts) + data[pos:]


def load_dfl_dict(payload: bytes, origin: str) -> dict:
    """Unpickle DFL metadata with the restricted unpickler; refusals name the file."""
    obj = safe_loads_named(payload, origin, "DeepFaceLab metadata", "DeepFaceLab metadata")
    if not isinstance(obj, dict):
        raise FacecastError(f"{origin}: DeepFaceLab metadata is not a dictionary; nothing was imported")
    return obj


@dataclass
class _Entry:
    origin: str  # for messages: the file, or pak:member
    name: str  # proposed output file name
    info: dict
    load: Callable[[], bytes]


@dataclass
class ImportResult:
    out_dir: str
    imported: int = 0
    already_imported: int = 0
    skipped: list[str] = field(default_factory=list)  # files without DFL metadata
    face_types: dict[str, int] = field(default_factory=dict)
    with_polygons: int = 0
    with_xseg: int = 0

    def as_dict(self) -> dict:
        return {"out_dir": self.out_dir, "imported": self.imported, "already_imported": self.already_imported,
                "skipped_without_dfl_metadata": self.skipped,
                "face_types": self.face_types, "with_polygons": self.with_polygons, "with_xseg_mask": self.with_xseg}


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror})") from None


def _image_entry(path: Path) -> _Entry | None:
    data = _read_bytes(path)
    try:
        payload = dfl_payload(data)
    except (ValueError, struct.error):
        raise FacecastError(f"{path}: corrupt image file (its header cannot be parsed); nothing was imported") from None
    if payload is None:
        return None
    return _Entry(str(path), path.name, load_dfl_dict(payload, str(path)), lambda p=path: _read_bytes(p))


def _pak_entries(path: Path) -> list[_Entry]:
    data = _read_bytes(path)
    where = str(path)
    try:
        version, size = struct.unpack("<QQ", data[:16])
    except struct.error:
        raise FacecastError(f"{where}: not a DeepFaceLab faceset.pak (too short)") from None
    if version != 1:
        raise FacecastError(f"{where}: unsupported faceset.pak version {version} (facecast reads version 1)")
    if 16 + size > len(data):
        raise FacecastError(f"{where}: truncated faceset.pak (sample table runs past the end)")
    configs = safe_loads_named(data[16 : 16 + size], where)
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise FacecastError(f"{where}: faceset.pak sample table is not a list of samples")
    table = 16 + size
    n = len(configs)
    data_start = table + 8 * (n + 1)
    if data_start > len(data):
        raise FacecastError(f"{where}: truncated faceset.pak (offset table runs past the end)")
    offsets = struct.unpack(f"<{n + 1}Q", data[table:data_start])
    entries = []
    for i, cfg in enumerate(configs):
        start = data_start + offsets[i]
        end = data_start + offsets[i + 1] if i + 1 < n else len(data)  # DFL writes the last one absolute
        member = Path(str(cfg.get("filename") or f"{i:05d}.jpg")).name
        origin = f"{where}:{member}"
        if not start < end <= len(data):
            raise FacecastError(f"{origin}: offsets outside faceset.pak; the file is damaged")
        blob = data[start:end]
        try:
            payload = dfl_payload(blob)
        except (ValueError, struct.error):
            raise FacecastError(f"{origin}: corrupt image inside faceset.pak") from None
        info = {k: v for k, v in cfg.items() if k not in ("sample_type", "filename", "shape")}
        if cfg.get("xseg_mask_compressed") is not None and info.get("xseg_mask") is None:
            info["xseg_mask"] = cfg["xseg_mask_compressed"]
        if payload is not None:
            info.update(load_dfl_dict(payload, origin))
        entries.append(_Entry(origin, member, info, lambda b=blob: b))
    return entries


def safe_loads_named(payload: bytes, origin: str, what: str = "sample table",
                     corrupt_what: str = "faceset.pak sample table") -> Any:
    """Restricted unpickle whose refusals become one line naming the file and what it held."""
    try:
        return safe_loads(payload)
    except PickleRefused as err:
        raise FacecastError(
            f"{origin}: refused: its {what} asks to load {err}, which is not plain data "
            "(tampered or malicious file); nothing was executed and nothing was imported") from None
    except PickleInvalid as err:
        raise FacecastError(f"{origin}: corrupt {corrupt_what} ({err}); nothing was imported") from None


def _collect(src: Path) -> tuple[list[_Entry], list[str]]:
    if not src.exists():
        raise FacecastError(f"{src}: not found; pass a DeepFaceLab aligned folder or its faceset.pak")
    if src.is_file():
        if src.suffix.lower() == ".pak":
            return _pak_entries(src), []
        entry = _image_entry(src)
        if entry is None:
            raise FacecastError(f"{src}: no DeepFaceLab metadata in this image (not a DFL aligned face)")
        return [entry], []
    entries, skipped = [], []
    for p in sorted(src.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.name.lower() == PAK_NAME:
            entries += _pak_entries(p)
        elif p.suffix.lower() in _IMAGE_SUFFIXES:
            e = _image_entry(p)
            if e is None:
                skipped.append(p.name)
            else:
                entries.append(e)
    if not entries:
        raise FacecastError(f"{src}: no DeepFaceLab aligned faces found (JPEG/PNG with DFL metadata or {PAK_NAME})")
    return entries, skipped


# -- conversion ----------------------------------------------------------------------------------------
def _points(value: Any, origin: str, what: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise FacecastError(f"{origin}: DeepFaceLab {what} are not a list of (x, y) points") from None
    if n is not None and len(arr) != n:
        raise FacecastError(f"{origin}: DeepFaceLab {what} have {len(arr)} points; facecast needs {n} (68-point faces)")
    if not np.isfinite(arr).all():
        raise FacecastError(f"{origin}: DeepFaceLab {what} contain NaN or infinite values")
    return arr


def dfl_face_type(info: dict, origin: str) -> str:
    ft = info.get("face_type", "full_face")  # DFL's own default when the key is missing
    if isinstance(ft, int) and not isinstance(ft, bool):
        ft = DFL_FACE_TYPE_INTS.get(ft, str(ft))
    if not isinstance(ft, str) or ft.lower() not in DFL_FACE_TYPES:
        raise FacecastError(f"{origin}: unknown DeepFaceLab face type {ft!r}; pass --face-type to choose ours")
    return ft.lower()


def convert_polygons(info: dict, origin: str) -> list[dict] | None:
    """DFL seg_ie_polys (or DFL 1.0 ie_polys) -> our mask_polygons, includes first (DFL's draw order)."""
    raw = info.get("seg_ie_polys", info.get("ie_polys"))
    if raw is None:
        return None
    if isinstance(raw, dict):
        items = [(p.get("type"), p.get("pts")) for p in raw.get("polys", []) if isinstance(p, dict)]
    elif isinstance(raw, (list, tuple)):
        items = [tuple(p) for p in raw if isinstance(p, (list, tuple)) and len(p) == 2]
    else:
        raise FacecastError(f"{origin}: DeepFaceLab mask polygons have an unknown layout")
    polys = []
    for kind, pts in items:
        if kind not in (0, 1):
            raise FacecastError(f"{origin}: DeepFaceLab mask polygon type {kind!r} is neither include (1) nor exclude (0)")
        arr = _points(pts if pts is not None else [], origin, "mask polygon points")
        if len(arr) >= 3:
            polys.append({"type": "include" if kind == 1 else "exclude", "points": arr.tolist()})
    polys.sort(key=lambda p: p["type"] != "include")
    return polys or None


def convert_xseg(info: dict, origin: str) -> np.ndarray | None:
    """DFL xseg_mask (encoded PNG/JPEG bytes, or a raw HxW[x1] array in pak configs) -> uint8 HxW."""
    raw = info.get("xseg_mask")
    if raw is None:
        return None
    if isinstance(raw, np.ndarray) and raw.ndim >= 2:
        m = raw[..., 0] if raw.ndim == 3 else raw
        return (np.clip(m.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8) if m.dtype.kind == "f" else m.astype(np.uint8)
    buf = raw.tobytes() if isinstance(raw, np.ndarray) else raw
    if not isinstance(buf, (bytes, bytearray)):
        raise FacecastError(f"{origin}: DeepFaceLab xseg_mask is neither image bytes nor an array")
    try:
        img = decode_bounded(bytes(buf), f"{origin} xseg_mask", cv2.IMREAD_GRAYSCALE)
    except FacecastError:
        raise FacecastError(f"{origin}: DeepFaceLab xseg_mask is not a readable image") from None
    return img


def _pose(info: dict, lm_src: np.ndarray) -> dict[str, float]:
    """Our estimator on the frame landmarks (one convention for every face in facecast); DFL's own
    `pitch_yaw_roll` (radians, its own sign conventions) only when the estimator is unavailable."""
    try:
        from facecast.faces.pose import estimate_pose  # type: ignore[import-not-found]
    except ImportError:
        estimate_pose = None
    if estimate_pose is not None:
        try:
            pose = estimate_pose(lm_src)
            return {k: float(pose.get(k, 0.0)) for k in ("yaw", "pitch", "roll")}
        except FacecastError:
            pass
    pyr = info.get("pitch_yaw_roll")
    if isinstance(pyr, (list, tuple, np.ndarray)) and len(pyr) == 3:
        pitch, yaw, roll = (float(np.degrees(float(v))) for v in pyr)
        return {"yaw": yaw, "pitch": pitch, "roll": roll}
    return {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}  # unknown: faceset tools estimate when needed


def convert(info: dict, image: np.ndarray, origin: str, file_name: str,
            face_type_override: str | None = None) -> tuple[AlignedMeta, np.ndarray | None]:
    """Our metadata for one DFL face; also a re-aligned image when the DFL file was `mark_only`."""
    dfl_type = dfl_face_type(info, origin)
    ours = get_face_type(face_type_override).name if face_type_override else DFL_FACE_TYPES[dfl_type]
    lm = _points(info.get("landmarks"), origin, "landmarks", 68) if info.get("landmarks") is not None else None
    if lm is None:
        raise FacecastError(f"{origin}: DeepFaceLab metadata has no landmarks; it cannot be imported")
    h, w = image.shape[:2]
    polys = convert_polygons(info, origin)
    xseg = convert_xseg(info, origin)
    new_image = None
    if dfl_type == "mark_only":  # a whole frame with landmarks: align it ourselves
        ours = ours if ours != "mark_only" else "full"
        size = min(MARK_ONLY_MAX_SIZE, h, w)
        new_image, mat, lm_face = align_face(image, lm, ours, size)
        lm_src, frame_size = lm, (w, h)
        if polys:
            for p in polys:
                p["points"] = transform_points(np.asarray(p["points"]), mat).tolist()
        if xseg is not None:
            xseg = cv2.warpAffine(cv2.resize(xseg, (w, h)), mat, (size, size), flags=cv2.INTER_LINEAR)
    else:
        if h != w:
            raise FacecastError(f"{origin}: aligned DeepFaceLab face is {w}x{h}, not square; the file is damaged")
        size, lm_face, frame_size = w, lm, (0, 0)
        mat_raw, src_raw = info.get("image_to_face_mat"), info.get("source_landmarks")
        lm_src = _points(src_raw, origin, "source landmarks", 68) if src_raw is not None else None
        if mat_raw is not None:
            try:
                mat = np.asarray(mat_raw, dtype=np.float64).reshape(2, 3)
            except (TypeError, ValueError):
                raise FacecastError(f"{origin}: DeepFaceLab image_to_face_mat is not a 2x3 matrix") from None
            if not np.isfinite(mat).all() or abs(np.linalg.det(mat[:, :2])) < 1e-12:
                raise FacecastError(f"{origin}: DeepFaceLab image_to_face_mat is degenerate")
        elif lm_src is not None:
            mat = umeyama(lm_src, lm)
        else:
            mat = np.hstack([np.eye(2), np.zeros((2, 1))])  # no frame info: the face is its own frame
        if lm_src is None:
            lm_src = transform_points(lm, invert(mat))
    rect_raw = info.get("source_rect")
    try:
        rect = tuple(float(v) for v in np.asarray(rect_raw, dtype=np.float64).ravel()[:4]) if rect_raw is not None else ()
    except (TypeError, ValueError):
        rect = ()
    if len(rect) != 4:
        rect = (float(lm_src[:, 0].min()), float(lm_src[:, 1].min()), float(lm_src[:, 0].max()), float(lm_src[:, 1].max()))
    extra: dict[str, Any] = {"dfl": {"face_type": dfl_type, "file": file_name}}
    pyr = info.get("pitch_yaw_roll")
    if isinstance(pyr, (list, tuple, np.ndarray)) and len(pyr) == 3:
        extra["dfl"]["pitch_yaw_roll"] = [float(v) for v in pyr]
    ebm = info.get("eyebrows_expand_mod")
    if isinstance(ebm, (int, float)) and not isinstance(ebm, bool):
        extra["dfl"]["eyebrows_expand_mod"] = float(ebm)
    person = info.get("person_name")
    meta = AlignedMeta(
        face_type=ours,
        size=int(size),
        landmarks=np.asarray(lm_face, dtype=np.float64).tolist(),
        source=SourceInfo(str(info.get("source_filename") or file_name), frame_size, rect, lm_src.tolist()),
        image_to_face=np.asarray(mat, dtype=np.float64).tolist(),
        identity=str(person) if isinstance(person, str) else None,
        pose=_pose(info, lm_src),
        mask_polygons=polys,
        detector={"name": "deepfacelab-import"},
        extra=extra,
    )
    if xseg is not None:
        meta.set_xseg_mask(xseg)
    face_img = new_image if new_image is not None else image
    meta.sharpness = sharpness(face_img, face_mask(meta, 256))
    return meta, new_image


def import_dfl(src: str | Path, out_dir: str | Path, face_type_override: str | None = None,
               quiet: bool = True) -> ImportResult:
    """Convert a DeepFaceLab aligned folder, a single DFL face, or a faceset.pak into facecast faces."""
    src, out_dir = Path(src), Path(out_dir)
    if face_type_override:
        get_face_type(face_type_override)  # validate before reading anything
    entries, skipped = _collect(src)  # pass 1: every pickle read and vetted before any write
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ImportResult(str(out_dir), skipped=skipped)
    types: Counter[str] = Counter()
    taken: set[str] = set()
    for e in track(entries, description="importing", quiet=quiet):
        data = e.load()
        image = decode_bounded(data, e.origin)
        meta, realigned = convert(e.info, image, e.origin, e.name, face_type_override)
        # the explicit-content gate on the pixels that enter the workspace (raises ContentRefused)
        meta.content_gate = gate_verdict(realigned if realigned is not None else image, e.origin)
        name = e.name if Path(e.name).suffix.lower() in _IMAGE_SUFFIXES else f"{Path(e.name).stem}.jpg"
        if realigned is not None:
            name = f"{Path(name).stem}.jpg"
        blob = None if realigned is not None else embed_meta(strip_dfl(data), meta)
        if blob is not None and name not in taken and (out_dir / name).is_file() and (out_dir / name).read_bytes() == blob:
            taken.add(name)  # imported by an earlier run (re-running resumes instead of duplicating)
            result.already_imported += 1
            continue
        name = unique_name(out_dir, name, taken)
        taken.add(name)
        if blob is None:
            write_aligned(out_dir / name, realigned, meta)
        else:
            atomic_write_bytes(out_dir / name, blob)
        result.imported += 1
        types[meta.face_type] += 1
        result.with_polygons += bool(meta.mask_polygons)
        result.with_xseg += bool(meta.xseg_mask)
    result.face_types = dict(types)
    return result
