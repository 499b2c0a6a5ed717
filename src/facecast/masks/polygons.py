"""Include/exclude polygons: the hand labels of an aligned face, and their LabelMe exchange format.

The shared polygon format (stored in `AlignedMeta.mask_polygons`, also what `faceset import-dfl` turns
DeepFaceLab's `seg_ie_polys` into): a list, in drawing order, of
    {"type": "include" | "exclude", "points": [[x, y], ...]}
in aligned-face pixel coordinates (pixel centres at integers, the face is `meta.size` square).
Order matters, as in DeepFaceLab: each polygon paints 1 (include) or 0 (exclude) over what came before,
so an exclude drawn after an include cuts a hand out of the face, and an include drawn after it puts a
finger gap back.

LabelMe is the exchange format with labelling tools (LabelMe, CVAT and others read and write it): one
JSON per image with `shapes` [{label, points, shape_type: "polygon"}], `imagePath`, `imageHeight`,
`imageWidth`. Labels "face"/"include" map to include and "exclude"/"obstruction" to exclude; anything
else is refused with one clear line, so a typo never silently drops a label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.errors import FacecastError

INCLUDE_LABELS = ("face", "include")
EXCLUDE_LABELS = ("exclude", "obstruction")
Polygon = dict[str, Any]


def validate_polygons(data: Any, name: str = "labels") -> list[Polygon]:
    """Check and normalise a polygon list; raise one FacecastError line naming `name` if malformed."""
    if not isinstance(data, list):
        raise FacecastError(f"{name}: mask polygons must be a list of {{type, points}} objects")
    out: list[Polygon] = []
    for i, poly in enumerate(data):
        if not isinstance(poly, dict) or poly.get("type") not in ("include", "exclude"):
            raise FacecastError(f"{name}: polygon {i} needs \"type\": \"include\" or \"exclude\"")
        try:
            pts = np.asarray(poly.get("points"), dtype=np.float64)
        except (TypeError, ValueError):
            pts = np.zeros((0,))
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
            raise FacecastError(f"{name}: polygon {i} needs at least 3 finite [x, y] points")
        out.append({"type": poly["type"], "points": [[round(float(x), 3), round(float(y), 3)] for x, y in pts]})
    return out


def rasterize(polygons: list[Polygon] | None, size: int | tuple[int, int]) -> np.ndarray:
    """float32 mask (h, w) in {0, 1} from polygons painted in order (anti-aliasing off: labels are hard)."""
    w, h = (size, size) if isinstance(size, int) else size
    mask = np.zeros((h, w), np.uint8)
    for poly in polygons or []:
        pts = np.round(np.asarray(poly["points"], np.float64) * 16).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1 if poly["type"] == "include" else 0, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def mask_to_polygons(mask: np.ndarray, min_area: float = 4.0, epsilon: float = 0.75) -> list[Polygon]:
    """Trace a binary mask into include polygons (outer contours) and exclude polygons (holes).

    Used to turn a predicted or synthetic mask into editable labels; `epsilon` is the Douglas-Peucker
    tolerance in pixels."""
    binary = (np.asarray(mask) > 0.5).astype(np.uint8)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    includes, excludes = [], []
    for i, c in enumerate(contours):
        if cv2.contourArea(c) < min_area:
            continue
        c = cv2.approxPolyDP(c, epsilon, True).reshape(-1, 2)
        if len(c) < 3:
            continue
        is_hole = hierarchy is not None and hierarchy[0][i][3] >= 0
        (excludes if is_hole else includes).append({"type": "exclude" if is_hole else "include",
                                                    "points": c.astype(float).tolist()})
    return includes + excludes


def scale_polygons(polygons: list[Polygon], factor: float) -> list[Polygon]:
    return [{"type": p["type"], "points": [[x * factor, y * factor] for x, y in p["points"]]} for p in polygons]


# -- LabelMe ---------------------------------------------------------------------------------------------
def to_labelme(polygons: list[Polygon] | None, image_name: str, size: int, image_data: str | None = None) -> dict:
    """A LabelMe document for one aligned face (imagePath relative to the JSON file)."""
    shapes = [
        {
            "label": "face" if p["type"] == "include" else "exclude",
            "points": [[float(x), float(y)] for x, y in p["points"]],
            "group_id": None,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
        }
        for p in polygons or []
    ]
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": image_data,
        "imageHeight": int(size),
        "imageWidth": int(size),
    }


def from_labelme(doc: Any, name: str, size: int | None = None) -> list[Polygon]:
    """Polygons from a LabelMe document; points rescaled when the labelled image was `imageWidth` wide
    and the aligned face is `size` wide (someone labelled a resized copy)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise FacecastError(f"{name}: not a LabelMe file (no \"shapes\" list); export one with `facecast xseg labels export`")
    polys: list[Polygon] = []
    for i, shape in enumerate(doc["shapes"]):
        if not isinstance(shape, dict):
            raise FacecastError(f"{name}: shape {i} is not an object")
        kind = shape.get("shape_type") or "polygon"
        label = str(shape.get("label", "")).strip().lower()
        if kind != "polygon":
            raise FacecastError(f"{name}: shape {i} is a {kind}; only polygons are masks (redraw it as a polygon)")
        if label in INCLUDE_LABELS:
            ptype = "include"
        elif label in EXCLUDE_LABELS:
            ptype = "exclude"
        else:
            raise FacecastError(
                f"{name}: shape {i} has label {label!r}; use face/include or exclude/obstruction"
            )
        polys.append({"type": ptype, "points": shape.get("points")})
    polys = validate_polygons(polys, name)
    width = doc.get("imageWidth")
    if size and isinstance(width, (int, float)) and width > 0 and int(width) != int(size):
        polys = validate_polygons(scale_polygons(polys, size / float(width)), name)
    return polys


def read_json(path: Path) -> Any:
    """Read a label JSON file; unreadable or corrupt files are one clear line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FacecastError(f"{path}: label file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FacecastError(f"{path}: corrupt label file ({type(err).__name__}: {err}); re-export it") from None
    except OSError as err:
        raise FacecastError(f"{path}: cannot read ({err.strerror})") from None
