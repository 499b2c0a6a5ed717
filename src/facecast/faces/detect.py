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
~1 s). Per face, landmarks.py adds 1-3 HOG runs on a 240 px crop, two predictor calls and the face-mesh
check (~12-20 ms on a quiet core); the whole detect_faces call measured 23-54 ms per photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np

from facecast.console import native_quiet
from facecast.errors import FacecastError
from facecast.faces.align import box_iou

SMALL_FRAME_PX = 360
MERGE_IOU = 0.3
UNSEEN_MIN_SCORE = 0.75  # a weaker box in which neither dlib's HOG nor the mesh finds a face is dropped


@dataclass
class DetectedFace:
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    score: float
    landmarks: np.ndarray = field(repr=False)  # 68x2 float64, frame pixels
    angle: float | None = None  # crop rotation of the landmark HOG box (None: none found), for following
    box: object | None = field(default=None, repr=False)  # landmarks.Box the predictor used, for steadying


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
            with native_quiet():  # TFLite/absl start-up chatter on fd 2 (shown with --verbose)
                import mediapipe as mp

                fd = mp.solutions.face_detection
                models = [fd.FaceDetection(model_selection=m, min_detection_confidence=0.2) for m in (0, 1)]
                # one blank run each while still quiet: the graphs' threads open their TFLite interpreters
                # (the "XNNPACK delegate" line) on the first packet, which could otherwise land after the
                # redirect ends and reach the user's terminal
                for model in models:
                    model.process(np.zeros((64, 64, 3), np.uint8))
                self._loaded = models
        return self._loaded

    def version(self) -> str:
        from importlib.metadata import version

        from facecast.faces.landmarks import predictor_version

        return f"mediapipe {version('mediapipe')} face_detection short+full; {predictor_version()}"

    def _boxes_once(self, image: np.ndarray, min_score: float, models: slice = slice(None)) -> list[tuple[tuple[float, float, float, float], float]]:
        h, w = image.shape[:2]
        out = []
        for model in self._models[models]:
            with native_quiet():  # the first run logs inference_feedback_manager warnings
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

    def place(self, image: np.ndarray, rect: tuple[float, float, float, float], prev=None):  # -> landmarks.Placement
        from facecast.faces.landmarks import place_landmarks

        return place_landmarks(image, rect, prev)

    def follow(self, image: np.ndarray, rect: tuple[float, float, float, float], angle: float, prev=None):
        from facecast.faces.landmarks import follow_landmarks

        return follow_landmarks(image, rect, angle, prev)

    def follow_mesh(self, image: np.ndarray, rect: tuple[float, float, float, float], prev):
        from facecast.faces.landmarks import follow_mesh_box

        return follow_mesh_box(image, rect, prev)


BACKENDS = {"mediapipe+dlib": MediapipeDlibDetector}
DEFAULT_BACKEND = "mediapipe+dlib"


def get_detector(name: str = DEFAULT_BACKEND) -> FaceDetector:
    """The process-wide instance of a backend (models load once per process).

    The cache sits behind this function, keyed on the name alone: an lru_cache on this signature keyed
    `get_detector()` and `get_detector("mediapipe+dlib")` apart and loaded every model twice."""
    if name not in BACKENDS:
        raise FacecastError(f"unknown detector {name!r}: choose one of {', '.join(BACKENDS)}")
    return _instance(name)


@lru_cache(maxsize=None)
def _instance(name: str) -> FaceDetector:
    return BACKENDS[name]()


def detect_faces(image: np.ndarray, min_score: float = 0.5, backend: str = DEFAULT_BACKEND) -> list[DetectedFace]:
    """All faces in an RGB uint8 image with 68 landmarks each, best score first."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise FacecastError(f"detect_faces needs an RGB uint8 image, got {img.dtype} {img.shape}")
    det = get_detector(backend)
    out = []
    for rect, score in det.boxes(img, min_score):
        face = _placed_face(det, img, rect, score)
        if face is not None:
            out.append(face)
    return out


def _placed_face(det: FaceDetector, img: np.ndarray, rect: tuple[float, float, float, float], score: float,
                 prev_box=None) -> DetectedFace | None:
    """The full landmark placement of one detector box as a face; None for an unseen box (`unseen`)."""
    placed = det.place(img, rect, prev_box) if hasattr(det, "place") else None
    if placed is None:
        return DetectedFace(rect, score, det.landmarks(img, rect))
    if unseen(placed, score):
        return None
    return DetectedFace(rect, score, placed.points, placed.angle, placed.box)


def unseen(placed, score: float) -> bool:
    """A weak detector box (score < UNSEEN_MIN_SCORE) where the landmark step found no face at all: no
    HOG box at any angle and no face mesh (landmarks.Placement.seen). mediapipe's boxes near its 0.5
    threshold include such false faces on busy backgrounds (28 of 300 frames of the bench's clip, every
    one at score 0.50-0.52); each cost a full placement and identity descriptors, and made a second
    identity. Strong boxes are kept whatever the landmark step saw."""
    return not getattr(placed, "seen", True) and score < UNSEEN_MIN_SCORE


REDETECT_EVERY = 5  # a followed face gets the full landmark placement at least every this many frames


class FaceFollower:
    """`detect_faces` for the consecutive frames of a video, with the landmark step made cheaper.

    Boxes come from the same whole-frame detector on every frame, so the faces found are exactly those
    `detect_faces` finds (a face coming in, going, or coming back from behind another is seen in the same
    frame). What is saved is the landmark placement's search: a face whose box overlaps a face of the
    previous frame (IoU > MERGE_IOU) is *followed*: one HOG run in the crop at the rotation that won for it
    last frame (landmarks.follow_landmarks) instead of up to three, then the two predictor calls. The full
    placement runs when the HOG box is not found at that angle, when the last placement had no HOG box
    (profiles), and at least every `redetect_every` frames, so a roll that builds up is re-searched.

    Measured on 40-frame 640x480 clips with camera noise (still, moving, rolling +-25 degrees): landmarks
    identical to per-frame `detect_faces` for takeo (upright: its first HOG try is confident, so the
    full placement also runs one HOG; no saving) and 20-30 % less CPU per frame for einstein (rolled 21
    degrees: one HOG run instead of three). Tried and not kept: re-using the previous frame's HOG box
    (relative to the detector box) to skip the HOG run: -5 ms per face, but on a rolling face NME 3.5 ->
    3.9 % and jitter 1.1 -> 2.9 %, also with a guard that re-searched after 2 degrees of roll."""

    def __init__(self, min_score: float = 0.5, redetect_every: int = REDETECT_EVERY, backend: str = DEFAULT_BACKEND):
        self.min_score = min_score
        self.redetect_every = max(1, redetect_every)
        self.backend = backend
        self._last: list[tuple[DetectedFace, int]] = []  # faces of the previous frame, frames since full placement
        self.placed_faces = 0
        self.followed_faces = 0

    def reset(self) -> None:
        self._last = []

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        img = np.ascontiguousarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise FacecastError(f"detect_faces needs an RGB uint8 image, got {img.dtype} {img.shape}")
        det = get_detector(self.backend)
        out: list[tuple[DetectedFace, int]] = []
        for rect, score in det.boxes(img, self.min_score):
            prev = max(self._last, key=lambda p: box_iou(rect, p[0].rect), default=None)
            if prev is not None and box_iou(rect, prev[0].rect) <= MERGE_IOU:
                prev = None  # not the same face: nothing to follow or steady against
            prev_box = None if prev is None else prev[0].box
            placed, since = None, 0
            if prev is not None and prev[1] + 1 < self.redetect_every:
                if prev[0].angle is not None and hasattr(det, "follow"):
                    placed, since = det.follow(img, rect, prev[0].angle, prev_box), prev[1] + 1
                elif prev_box is not None and hasattr(det, "follow_mesh"):  # placed by the mesh box last frame
                    placed, since = det.follow_mesh(img, rect, prev_box), prev[1] + 1
            if placed is not None:
                self.followed_faces += 1
                out.append((DetectedFace(rect, score, placed.points, placed.angle, placed.box), since))
                continue
            self.placed_faces += 1
            face = _placed_face(det, img, rect, score, prev_box)
            if face is not None:
                out.append((face, 0))
        self._last = out
        return [f for f, _ in out]
