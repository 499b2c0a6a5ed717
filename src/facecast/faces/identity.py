"""Face identity descriptors: dlib's 128-D ResNet embedding.

Why this model: it ships as a file inside the `face-recognition-models` pip package (nothing is
downloaded), runs on the CPU in ~80 ms per face, and it is *not* what our training uses, so scoring a
swap with it is an independent judge rather than the loss grading its own homework. Measured here:
two photos of the same person ~0.42 apart, different people >= 0.70 (dlib's own threshold is 0.6).

`import face_recognition_models` fails on current setuptools (it imports `pkg_resources`), so the
package folder is located with importlib without executing it, and the `.dat` files are loaded by path.

dlib aligns its own 150x150 chip from a `full_object_detection`; we build that from our 68 points
(same iBUG 68 scheme dlib's predictor uses), so no dlib detector runs here.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from facecast.errors import FacecastError

DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL_68 = "shape_predictor_68_face_landmarks.dat"
SAME_PERSON_THRESHOLD = 0.6  # dlib's published operating point for this descriptor


def models_dir() -> Path:
    """The folder holding the `.dat` files of the installed `face_recognition_models` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise FacecastError(
            "face identity needs the `face-recognition-models` package: pip install face-recognition-models"
        )
    folder = Path(spec.origin).parent / "models"
    if not (folder / DESCRIPTOR_MODEL).is_file():
        raise FacecastError(
            f"{folder / DESCRIPTOR_MODEL} is missing: reinstall face-recognition-models"
        )
    return folder


@lru_cache(maxsize=1)
def _recognizer():  # -> dlib.face_recognition_model_v1
    """Load the ResNet once per process (~0.1 s, 22 MB)."""
    import dlib

    return dlib.face_recognition_model_v1(str(models_dir() / DESCRIPTOR_MODEL))


@lru_cache(maxsize=1)
def _shape_predictor():  # -> dlib.shape_predictor
    import dlib

    return dlib.shape_predictor(str(models_dir() / SHAPE_MODEL_68))


def shape_68(image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """dlib's 68 points inside a face box (x0, y0, x1, y1) of an RGB uint8 image, as 68x2 float.

    A fallback for scoring when the extraction stage's landmark module is not installed; it is the
    same predictor that stage uses (DESIGN: mediapipe boxes, dlib points)."""
    import dlib

    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    shape = _shape_predictor()(np.ascontiguousarray(image), dlib.rectangle(x0, y0, x1, y1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def _shape(landmarks68: np.ndarray):  # -> dlib.full_object_detection
    """A dlib shape from our 68 (x, y) points; the rect is the points' bounding box."""
    import dlib

    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise ValueError(f"face_descriptor needs 68x2 finite landmarks, got shape {pts.shape}")
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    points = dlib.points()
    for x, y in pts:
        points.append(dlib.point(int(round(x)), int(round(y))))
    return dlib.full_object_detection(rect, points)


def face_descriptor(image: np.ndarray, landmarks68: np.ndarray, jitters: int = 0) -> np.ndarray:
    """The 128-D identity embedding of the face at `landmarks68` in an RGB uint8 `image`.

    `jitters` > 0 averages over that many randomly jittered chips (dlib's option: ~1 % better
    verification, `jitters`+1 times slower); 0 is deterministic, which tests and scores need.
    """
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"face_descriptor needs an RGB uint8 image, got {img.dtype} {img.shape}")
    desc = _recognizer().compute_face_descriptor(img, _shape(landmarks68), int(jitters))
    return np.asarray(desc, dtype=np.float32)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (dlib's metric: < 0.6 means same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def centroid(descriptors: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Mean descriptor of a set of faces of one identity (what a swap should move towards)."""
    arr = np.asarray(descriptors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != 128:
        raise ValueError("centroid needs a non-empty list of 128-D descriptors")
    return arr.mean(axis=0)
