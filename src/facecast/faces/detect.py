"""Face detection behind a small backend interface; the default backend is mediapipe + dlib.

Choice (measured on this 2-core machine, DESIGN.md and bench/extract.py):
- mediapipe 0.10.21's legacy `solutions.face_detection` (BlazeFace, bundled in the wheel): short-range
  ~2.3 ms, full-range ~5.5 ms per image whatever its size (it resizes internally). Neither model alone
  found every face on the bundled photos (short-range misses Einstein at ~90 px in a 1024 px photo;
  full-range ranks the faces differently), so both run and the boxes are merged (IoU > 0.3 = same face,
  the higher score wins).
- dlib's own HOG detector is too slow on whole frames (up to 0.7 s at 1080p) and its CNN far slower,
  but dlib's 68-point predictor is the most accurate landmark model we have (landmarks.py), so each
  mediapipe box is handed to `landmarks.landmarks_for_rect`.
- Small frames (min side < 360 px, e.g. 176x144 video with ~50 px faces) and frames where nothing was
  found are upsampled 2x before detection: BlazeFace's short-range model needs faces of ~40+ px.
Models are created once per process, on first use, and cached: worker processes each load their own,
and the extract parent process, which only needs `version()`, loads none (mediapipe's import alone is
~1 s). Per face, landmarks.py adds 1-3 HOG runs on a 240 px crop and two predictor calls (~5-12 ms on a
quiet core); the whole detect_faces call measured 26-145 ms per photo on the loaded 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.align import box_iou

SMALL_FRAME_PX = 360
MERGE_IOU = 0.3


@dataclass
class DetectedFace:
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    score: float
    landmarks: np.ndarray = field(repr=False)  # 68x2 float64, frame pixels
    angle: float | None = None  # crop rotation of the landmark HOG box (None: none found), for following


class FaceDetector(Protocol):
    """A backend: boxes with scores, then 68 points per box. `name`/`version` go into the metadata."""

    name: str

    def version(self) -> str: ...

    def boxes(self, image: np.ndarray, min_score: float) -> list[tuple[tuple[float, float, float, float], float]]: ...

    def landmarks(self, image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray: ...


def merge_boxes(boxes: list[tuple[tuple[float, float, float, float], float]]) -> list[tuple[tuple[float, float, float, float], float]]:
    """Greedy non-maximum suppression: the best-scored box of each overlapping group survives."""
    kept: list[tuple[tuple[float, float, float, float], float]] = []
    for rect, score in sorted(boxes, key=lambda b: -b[1]):
        if all(box_iou(rect, k[0]) <= MERGE_IOU for k in kept):
            kept.append((rect, score))
    return kept


class MediapipeDlibDetector:
    """mediapipe short+full-range boxes, dlib 68 points (see module docstring for the measurements)."""

    name = "mediapipe+dlib"

    def __init__(self) -> None:
        self._loaded: list | None = None  # created on first use: see `_models`

    @property
    def _models(self) -> list:
        """The two mediapipe graphs, created on first use: the extract parent process asks only for
        `version()` and must not pay mediapipe's ~1 s import for that (its workers detect)."""
        if self._loaded is None:
            import mediapipe as mp

            fd = mp.solutions.face_detection
            self._loaded = [fd.FaceDetection(model_selection=m, min_detection_confidence=0.2) for m in (0, 1)]
        return self._loaded

    def version(self) -> str:
        from importlib.metadata import version

        from facecast.faces.landmarks import predictor_version

        return f"mediapipe {version('mediapipe')} face_detection short+full; {predictor_version()}"

    def _boxes_once(self, image: np.ndarray, min_score: float, models: slice = slice(None)) -> list[tuple[tuple[float, float, float, float], float]]:
        h, w = image.shape[:2]
        out = []
        for model in self._models[models]:
            result = model.process(image)
            for det in result.detections or []:
                score = float(det.score[0])
                if score < min_score:
                    continue
                bb = det.location_data.relative_bounding_box
                x0, y0 = bb.xmin * w, bb.ymin * h
                rect = (x0, y0, x0 + bb.width * w, y0 + bb.height * h)
                # boxes partly outside the frame are fine; boxes with no area inside are noise
                if rect[2] <= 0 or rect[3] <= 0 or rect[0] >= w or rect[1] >= h:
                    continue
                out.append((rect, score))
        return merge_boxes(out)

    def boxes(self, image: np.ndarray, min_score: float) -> list[tuple[tuple[float, float, float, float], float]]:
        h, w = image.shape[:2]
        small = min(h, w) < SMALL_FRAME_PX
        found = [] if small else self._boxes_once(image, min_score)
        if small or not found:
            big = cv2.resize(image, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
            found = [(tuple(v / 2 for v in r), s) for r, s in self._boxes_once(big, min_score)]  # type: ignore[misc]
        return found

    def watch(self, image: np.ndarray, min_score: float) -> list[tuple[tuple[float, float, float, float], float]]:
        """Boxes from the short-range model alone (~3 ms): the follower's per-frame look for new faces."""
        h, w = image.shape[:2]
        if min(h, w) >= SMALL_FRAME_PX:
            return self._boxes_once(image, min_score, slice(0, 1))
        big = cv2.resize(image, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
        return [(tuple(v / 2 for v in r), s) for r, s in self._boxes_once(big, min_score, slice(0, 1))]  # type: ignore[misc]

    def landmarks(self, image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        from facecast.faces.landmarks import landmarks_for_rect

        return landmarks_for_rect(image, rect)

    def place(self, image: np.ndarray, rect: tuple[float, float, float, float]):  # -> landmarks.Placement
        from facecast.faces.landmarks import place_landmarks

        return place_landmarks(image, rect)

    def follow(self, image: np.ndarray, rect: tuple[float, float, float, float], angle: float):
        from facecast.faces.landmarks import follow_landmarks

        return follow_landmarks(image, rect, angle)


BACKENDS = {"mediapipe+dlib": MediapipeDlibDetector}
DEFAULT_BACKEND = "mediapipe+dlib"


@lru_cache(maxsize=None)
def get_detector(name: str = DEFAULT_BACKEND) -> FaceDetector:
    """The process-wide instance of a backend (models load once per process)."""
    if name not in BACKENDS:
        raise FacecastError(f"unknown detector {name!r}: choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]()


def detect_faces(image: np.ndarray, min_score: float = 0.5, backend: str = DEFAULT_BACKEND) -> list[DetectedFace]:
    """All faces in an RGB uint8 image with 68 landmarks each, best score first."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise FacecastError(f"detect_faces needs an RGB uint8 image, got {img.dtype} {img.shape}")
    det = get_detector(backend)
    out = []
    for rect, score in det.boxes(img, min_score):
        placed = det.place(img, rect) if hasattr(det, "place") else None
        out.append(DetectedFace(rect, score, placed.points, placed.angle) if placed is not None
                   else DetectedFace(rect, score, det.landmarks(img, rect)))
    return out


REDETECT_EVERY = 5  # whole-frame detection at least every this many frames of a followed video


class FaceFollower:
    """`detect_faces` for the consecutive frames of a video: whole-frame detection (two mediapipe models,
    up to three HOG runs per face) on a key frame, then each face is *followed* from its previous
    landmarks: its box moves with the landmarks' similarity motion since the key frame and the landmark
    crop keeps the angle that won, so a followed frame costs one HOG run and two predictor calls per face,
    plus the short-range model alone (~3 ms) to see faces coming in.

    A key frame comes every `redetect_every` frames (a face that only the full-range model finds is
    found at most that many frames late), and at once when the short-range model sees a face away from
    the followed ones, when any followed face has no HOG box where it is expected (lost,
    covered, gone: the gap tests' blanked frames), when two followed faces land on one spot (people
    crossing: the hidden one would be followed onto the front face), or when a key frame's face was placed without a HOG
    box (profiles), which cannot be followed."""

    def __init__(self, min_score: float = 0.5, redetect_every: int = REDETECT_EVERY, backend: str = DEFAULT_BACKEND):
        self.min_score = min_score
        self.redetect_every = max(1, redetect_every)
        self.backend = backend
        self._key: list[DetectedFace] = []  # faces of the last key frame
        self._last: list[DetectedFace] = []
        self._since = 0
        self.key_frames = 0
        self.followed_frames = 0

    def reset(self) -> None:
        self._key, self._last, self._since = [], [], 0

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        if self._last and self._since + 1 < self.redetect_every:
            followed = self._follow(np.ascontiguousarray(image))
            if followed is not None:
                self._since += 1
                self._last = followed
                self.followed_frames += 1
                return followed
        faces = detect_faces(image, self.min_score, self.backend)
        self.key_frames += 1
        followable = bool(faces) and all(f.angle is not None for f in faces)
        self._key, self._last, self._since = (faces, faces, 0) if followable else ([], [], 0)
        return faces

    def _follow(self, img: np.ndarray) -> list[DetectedFace] | None:
        """Every face of the last frame followed into this one, or None when any is lost."""
        det = get_detector(self.backend)
        if not hasattr(det, "follow"):
            return None
        out = []
        for key, last in zip(self._key, self._last):
            rect = _moved_rect(key, last)
            placed = det.follow(img, rect, last.angle)
            if placed is None:
                return None
            out.append(DetectedFace(rect, key.score, placed.points, placed.angle))
        # two followed faces on one spot: someone is hidden and would be followed onto the front face
        if _overlapping(out):
            return None
        # a face the short-range model sees away from every followed face: someone came in
        for rect, _score in det.watch(img, self.min_score):
            if all(box_iou(rect, f.rect) <= MERGE_IOU for f in out):
                return None
        return out


def _overlapping(faces: list[DetectedFace]) -> bool:
    boxes = [(*f.landmarks.min(0), *f.landmarks.max(0)) for f in faces]
    return any(box_iou(a, b) > MERGE_IOU for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _moved_rect(key: DetectedFace, last: DetectedFace) -> tuple[float, float, float, float]:
    """The key frame's detector box moved and scaled as the landmarks moved from the key frame to the last
    frame (least-squares similarity; its rotation is carried by the landmark crop's angle instead)."""
    from facecast.faces.align import umeyama

    mat = umeyama(key.landmarks, last.landmarks)
    scale = float(np.sqrt(abs(np.linalg.det(mat[:, :2]))))
    x0, y0, x1, y1 = key.rect
    c = mat[:, :2] @ np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + mat[:, 2]
    hw, hh = scale * (x1 - x0) / 2, scale * (y1 - y0) / 2
    return (float(c[0] - hw), float(c[1] - hh), float(c[0] + hw), float(c[1] + hh))
