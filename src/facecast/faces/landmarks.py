"""68-point landmarks (iBUG 300-W scheme) placed by dlib's shape predictor, checked against mediapipe's
face mesh, and the error metric.

Why dlib here: its 68-point predictor (the `.dat` inside the pip package `face-recognition-models`)
places points at ~1 ms per face and is the more precise model where it works; mediapipe's 468-point mesh
mapped to 68 points is worse on average (photos 7-15 % against dlib's 4-5 %; the mesh's jaw is a 3-D
surface line, not the visible outline 300-W annotates: 33 % on the turned head of breakingbad), and
averaging the two per region cost the held-out photo 3-4 points, so the mesh is not averaged in. dlib's
weakness: it was trained on boxes from dlib's own HOG detector and is very sensitive to where the box
sits, and its HOG detector only finds roughly upright faces. So `place_landmarks`:

1. cuts a square crop around the detector's box, scaled so the face is ~120 px (small faces are
   upsampled, big ones shrunk: constant cost per face whatever the frame size);
2. runs dlib's HOG detector *inside that crop only* (~3-5 ms, against up to 0.7 s on a whole 1080p
   frame) to get the box the predictor was trained with. It tries the upright crop first and, unless
   that hit is confident, crops rotated by +-25 degrees too; a rotated crop wins only if its HOG score
   beats the upright one by ROLL_MARGIN. Without this, faces rolled ~45 degrees (a photo's own roll plus
   head tilt) got a wrong upright HOG box and NME 55-62 %; now 3-6 %. If HOG finds nothing at any angle
   (profile faces), the detector box moved to where HOG boxes sit relative to mediapipe's (~8 % of the
   side higher, 4 % larger) is used, upright, then once more rotated by the eye line of that first guess;
3. places the 68 points with the box resampled to 320 px (`predict_in_box`, the subpixel step: dlib
   rounds to whole pixels), averaged with the prediction on the mirrored crop;
4. checks them against the mesh (mesh.py, ~6 ms): when the eye and mouth points stray from the mesh's by
   more than MESH_DISAGREE, the predictor runs again in a box built from the mesh (de-rotated by its eye
   line), and whichever placement is nearer the mesh is kept (`_checked`).

Measured (bench/extract.py; NME = mean point error / outer-eye-corner distance; the mesh check's
constants and MESH_TO_68 were chosen on the einstein and takeo frames, breakingbad held out):
- annotated photos: einstein 6.96, takeo 3.53, breakingbad 4.33 % (mean 4.94; without the mesh check
  6.58 / 3.53 / 4.33; the 240 px-crop path before the subpixel step 7.08 / 3.46 / 4.72). The 4 % goal is
  out of reach for one dlib prediction on these photos: the best single box found by a grid search
  against the ground truth gives 6.29/2.97/3.88 % (mean 4.38).
- 81 frames rendered from those photos (render_clip: faces 55 px in 176x144, 100 px in 320x240, 220 px
  in 640x480; extra roll -20/0/+20 degrees; brightness x0.6/1/1.4): mean 5.8 % with the mesh check
  (tuning photos' frames 5.95, held-out 5.54) against 8.2 % without (8.17 / 8.12); p95 10.3 % (19.6 %),
  worst 12.5 % (25.7 %). Costs ~6-9 ms of CPU per face.
Tried and not kept: averaging over jittered boxes (+-5 %: photos 5.39 %, +-10 %: 8.34 %); a second pass
with the box re-derived from the first pass's points (photos up to 20 %: the HOG-box-to-landmark
relation differs per face: centre offset 0.09 / 0.02 / -0.28 of the face width on the three photos);
always de-rotating by the eye line or by mediapipe's eye keypoints (photos 7.0 / 6.5 %: the predictor
copes with moderate roll and mediapipe's eye points were 31 degrees off on einstein); a 150 px face in
the crop (photos 4.60 % but rendered frames 8.6 %, worst 59 %); the mesh box on every face (rendered
6.0 / 6.9 % tune / held out, against 6.0 / 5.5 % with the check); per-region averaging with the mesh
(tuned weights: tune frames 5.2 %, held-out frames 7.8 %).

`import face_recognition_models` fails on current setuptools, so the folder is found with importlib
(`identity.models_dir`) and the `.dat` loaded by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.faces.align import box_iou, invert, matrix_scale, transform_points

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
CROP_FACE_PX = 120.0  # detector box side inside the crop
CROP_PX = 240  # crop side: twice the box, room for HOG's box to sit elsewhere
HOG_THRESHOLD = -0.5  # accept weak HOG hits: we already know a face is there
ROLL_TRIES = (0.0, 25.0, -25.0)  # crop rotations (degrees) tried for the HOG box, upright first
ROLL_MARGIN = 0.3  # a rotated crop must beat the upright HOG score by this much to be used
UPRIGHT_ENOUGH = 1.0  # an upright HOG score this high skips the rotated tries
FALLBACK_MIN_ROLL = 15.0  # without any HOG box, re-predict upright when the first guess is rolled more
MESH_CHECK = True  # check each placement against mediapipe's mesh (mesh.py); False: dlib alone (for benches)
MESH_DISAGREE = 0.08  # eye+mouth points further than this from the mesh's (mean, / inter-ocular): suspect
MESH_BOX_SCALE = 1.45  # the predictor's box side over the extent of the mesh's brow-to-mouth points
MESH_FOLLOW_LIMIT = 0.15  # a followed mesh-box placement further than this from its mesh is placed afresh
PREDICT_BOX_PX = 320.0  # the predictor's box is sampled at this size (predict_in_box: the subpixel step)
PREDICT_MARGIN = 1.5  # the predictor's crop side over its box side
STEADY_BAND = 0.08  # box changes below this fraction of its side are steadied (steady_box)
STEADY_GAIN = 0.3  # ... by moving only this share of the way
STEADY_ANGLE = 3.0  # degrees: a crop rotation changing more than this is a new box


@lru_cache(maxsize=1)
def _predictor():  # -> dlib.shape_predictor
    """Load the 68-point model once per process (~0.3 s, 100 MB)."""
    import dlib

    from facecast.faces.identity import models_dir

    path = models_dir() / PREDICTOR_FILE
    if not path.is_file():
        raise FacecastError(f"{path} is missing: reinstall face-recognition-models")
    return dlib.shape_predictor(str(path))


@lru_cache(maxsize=1)
def _hog():  # -> dlib.fhog_object_detector
    import dlib

    return dlib.get_frontal_face_detector()


def predictor_version() -> str:
    import dlib

    base = f"dlib {dlib.__version__} {PREDICTOR_FILE} + frontal HOG box"
    if not MESH_CHECK:
        return base
    from facecast.faces.mesh import mesh_version

    return f"{base} + {mesh_version()}"


def _run(image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    import dlib

    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    shape = _predictor()(image, dlib.rectangle(x0, y0, x1, y1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def rect_for_dlib(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A mediapipe box moved to where dlib's HOG boxes sit (measured: ~8 % of the side higher, 4 % larger)."""
    x0, y0, x1, y1 = rect
    side = max(x1 - x0, y1 - y0) * 1.04
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.08 * side
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _crop(img: np.ndarray, centre: tuple[float, float], side: float, angle: float,
          face_px: float = CROP_FACE_PX, out_px: int = CROP_PX) -> tuple[np.ndarray, np.ndarray]:
    """An `out_px` square around `centre`, `side` scaled to `face_px`, rotated by `angle` degrees
    (counter-clockwise on screen, so a face rolled by +angle comes out upright); returns (crop, 2x3 matrix)."""
    mat = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), face_px / side)
    mat[:, 2] += np.array([out_px / 2 - centre[0], out_px / 2 - centre[1]])
    crop = cv2.warpAffine(img, mat, (out_px, out_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, mat


def _hog_box(crop: np.ndarray, expected: tuple[float, ...]) -> tuple[tuple[float, float, float, float] | None, float]:
    """dlib's HOG box in the crop that overlaps the expected face best (IoU > 0.3), and its HOG score."""
    dets, scores, _idx = _hog().run(crop, 0, HOG_THRESHOLD)
    best, box, score = 0.3, None, -np.inf
    for d, s in zip(dets, scores):
        cand = (float(d.left()), float(d.top()), float(d.right()), float(d.bottom()))
        overlap = box_iou(cand, expected)
        if overlap > best:
            best, box, score = overlap, cand, float(s)
    return box, score


@dataclass(frozen=True)
class Box:
    """The predictor's box in frame coordinates: a square of `side` px centred on (cx, cy), in a crop
    rotated by `angle` degrees (the crop rotation of landmarks._crop)."""

    cx: float
    cy: float
    side: float
    angle: float

    @staticmethod
    def in_crop(box: tuple[float, float, float, float], mat: np.ndarray, angle: float) -> "Box":
        """The frame-coordinate Box of a (x0, y0, x1, y1) box found in a crop made with matrix `mat`."""
        x0, y0, x1, y1 = box
        (cx, cy), = transform_points(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]), invert(mat))
        return Box(float(cx), float(cy), max(x1 - x0, y1 - y0) / matrix_scale(mat), float(angle))


def _predict_mirrored(crop: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Mean of the prediction on the crop and on its mirror image (points remapped with MIRROR_68).

    The regression trees are not symmetric, so the two predictions err differently; averaging them
    cut the mean NME on the rendered frames from 8.6 to 8.0 % for one more ~1-2 ms predictor call."""
    from facecast.faces.facetype import MIRROR_68

    pred = _run(crop, box)
    w = crop.shape[1]
    flipped = np.ascontiguousarray(crop[:, ::-1])
    mirrored = _run(flipped, (w - 1 - box[2], box[1], w - 1 - box[0], box[3]))
    mirrored[:, 0] = w - 1 - mirrored[:, 0]
    return (pred + mirrored[MIRROR_68]) / 2


def predict_in_box(img: np.ndarray, box: Box) -> np.ndarray:
    """68 points (frame pixels) for the predictor's `box`, read from a crop sampled so that the box is
    PREDICT_BOX_PX wide: the subpixel step.

    dlib returns whole pixels, and it reads whole pixels at its feature points. With the box at the
    ~60-160 px it had inside the 240 px detection crop, one crop pixel was 1-2 % of the inter-ocular
    distance, so rounding alone moved the points of a still head from frame to frame. Sampled at 320 px
    (bilinear, from the frame itself, so a large face keeps its detail) the rounding is a fraction of a
    percent; on a still head's clip raw jitter fell by about half (bench/extract.py)."""
    out_px = int(round(PREDICT_BOX_PX * PREDICT_MARGIN))
    crop, mat = _crop(img, (box.cx, box.cy), box.side, box.angle, PREDICT_BOX_PX, out_px)
    lo, hi = out_px / 2 - PREDICT_BOX_PX / 2, out_px / 2 + PREDICT_BOX_PX / 2
    return transform_points(_predict_mirrored(crop, (lo, lo, hi, hi)), invert(mat))


def steady_box(new: Box, prev: Box | None) -> Box:
    """`new`, pulled towards the previous frame's box when the two are within STEADY_BAND of each other.

    The mesh box (_mesh_box) moves with the mesh's per-frame noise, and the predictor, which is sensitive
    to its box, moves every point with it. Inside the band the box moves by STEADY_GAIN of the difference (an
    exponential average); a larger change (motion, a new face) is taken as it is, so lag stays bounded."""
    if prev is None or abs(new.angle - prev.angle) > STEADY_ANGLE:
        return new
    band = STEADY_BAND * prev.side
    if (abs(new.cx - prev.cx) > band or abs(new.cy - prev.cy) > band or abs(new.side - prev.side) > band):
        return new
    g = STEADY_GAIN
    return Box(prev.cx + g * (new.cx - prev.cx), prev.cy + g * (new.cy - prev.cy),
               prev.side + g * (new.side - prev.side), prev.angle + g * (new.angle - prev.angle))


def eye_roll(landmarks: np.ndarray) -> float:
    """In-plane angle (degrees, clockwise on screen) of the line from one eye centre to the other."""
    d = landmarks[42:48].mean(0) - landmarks[36:42].mean(0)
    return float(np.degrees(np.arctan2(d[1], d[0])))


@dataclass
class Placement:
    """68 points and how they were placed: `angle` is the crop rotation whose HOG box the predictor used,
    None when no HOG box was found (the fallback and mesh-box paths); a follower re-uses the angle in the
    next frame. `box` is the mesh-box path's predictor box (frame coordinates; None on dlib's own paths),
    which the same face's box in the next frame is steadied against."""

    points: np.ndarray
    angle: float | None
    hog_score: float = -np.inf
    box: Box | None = None
    seen: bool = True  # False: neither dlib's HOG nor the mesh found a face in the detector's box


def _check_input(image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise FacecastError(f"landmarks need an RGB uint8 image, got {img.dtype} {img.shape}")
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not (x1 > x0 and y1 > y0):
        raise FacecastError(f"empty face rectangle {rect}")
    return img


def _centre_side(rect: tuple[float, float, float, float]) -> tuple[tuple[float, float], float]:
    x0, y0, x1, y1 = (float(v) for v in rect)
    return ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0)


def _expected() -> tuple[float, float, float, float]:
    lo, hi = CROP_PX / 2 - CROP_FACE_PX / 2, CROP_PX / 2 + CROP_FACE_PX / 2
    return (lo, lo, hi, hi)


def disagreement(points: np.ndarray, anchor: np.ndarray) -> float:
    """Mean distance of the eye and mouth points (36-67) from the mesh anchor's, over the anchor's
    inter-ocular distance. On the bench's frames its rank correlation with dlib's NME is 0.87."""
    d = np.linalg.norm(points[36:68] - anchor[36:68], axis=1).mean()
    return float(d / max(interocular(anchor), 1e-9))


def _mesh_anchor(crop: np.ndarray, mat: np.ndarray) -> np.ndarray | None:
    from facecast.faces.mesh import mesh68

    pts = mesh68(crop)
    return None if pts is None else transform_points(pts, invert(mat))


def _mesh_box(anchor: np.ndarray) -> Box:
    """A predictor box from the mesh: the crop de-rotated by the mesh's eye line, the box centred on the
    bounding box of the mesh's brow-to-mouth points (17-67) and MESH_BOX_SCALE times its larger side (a
    grid on the tuning frames chose 1.45 of 1.0-1.9). Tried and not kept: the points' mean and RMS spread
    instead of their bounding box, which is less noisy but sits off-centre on a turned head (held-out
    still clip NME 6 -> 19 %)."""
    angle = eye_roll(anchor)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    inner = anchor[17:68] @ np.array([[c, -s], [s, c]])  # rotated so that the eye line is level
    (x0, y0), (x1, y1) = inner.min(0), inner.max(0)
    (cx, cy), = np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]) @ np.array([[c, s], [-s, c]])
    return Box(float(cx), float(cy), MESH_BOX_SCALE * float(max(x1 - x0, y1 - y0)), angle)


def _mesh_box_placement(img: np.ndarray, anchor: np.ndarray, prev: Box | None, hog_score: float = -np.inf) -> Placement:
    """The predictor in the mesh's box (steadied against the same face's box in the previous frame)."""
    box = steady_box(_mesh_box(anchor), prev)
    return Placement(predict_in_box(img, box), None, hog_score, box)


def _checked(placed: Placement, img: np.ndarray, crop: np.ndarray, mat: np.ndarray, prev: Box | None) -> Placement:
    """`placed`, or the mesh-box placement when `placed` strays from the mesh and the other is nearer it.

    Measured (bench/extract.py; tuning frames of einstein and takeo, breakingbad held out): rendered-frame
    NME 8.2 -> 6.0 % (tune) and 8.1 -> 5.5 % (held out); a held-out turned head in a still clip 38 -> 7 %.
    Using the mesh box on every face instead was worse (6.0 / 6.9 %): dlib's HOG box is the better box
    where it is right. A replaced placement has angle None and carries its box: a follower follows it on
    the mesh box (follow_mesh_box) until its next full placement, and the next frame's mesh box is
    steadied against it (steady_box): the mesh's
    per-frame noise moved this box enough to make a still head's points jitter (held-out still clip,
    One-Euro: 0.67 % of the inter-ocular distance unsteadied, 0.49 % steadied).
    Only this path is steadied: dlib's own HOG boxes gained nothing from it (0.47 / 0.04 % either way),
    and unsteadied they give the same points for a frame whatever came before it."""
    if not MESH_CHECK:
        return placed
    anchor = _mesh_anchor(crop, mat)
    if anchor is None and placed.angle is None:
        return Placement(placed.points, None, placed.hog_score, placed.box, seen=False)
    if anchor is None:
        return placed
    off = disagreement(placed.points, anchor)
    if off <= MESH_DISAGREE:
        return placed
    other = _mesh_box_placement(img, anchor, prev, placed.hog_score)
    return other if disagreement(other.points, anchor) < off else placed


def place_landmarks(image: np.ndarray, rect: tuple[float, float, float, float], prev: Box | None = None) -> Placement:
    """68 points for the face in `rect` = (x0, y0, x1, y1) of an RGB image, with the angle used; `prev` is
    the same face's predictor box in the previous frame of a video (steady_box), None for a photo."""
    img = _check_input(image, rect)
    centre, side = _centre_side(rect)
    expected = _expected()
    best = None  # (score, matrix, box, angle)
    upright = None  # (crop, matrix): the mesh check reads the upright crop
    for angle in ROLL_TRIES:
        crop, mat = _crop(img, centre, side, angle)
        if angle == 0.0:
            upright = (crop, mat)
        box, score = _hog_box(crop, expected)
        if box is not None and angle != 0.0:
            score -= ROLL_MARGIN
        if box is not None and (best is None or score > best[0]):
            best = (score, mat, box, angle)
        if angle == 0.0 and box is not None and score >= UPRIGHT_ENOUGH:
            break  # a confident upright HOG hit: the rotated tries would not win
    assert upright is not None
    if best is not None:
        score, mat, box, angle = best
        placed = Placement(predict_in_box(img, Box.in_crop(box, mat, angle)), angle, score)
    else:
        # no HOG box at any angle (profile, odd light): the moved detector box, then once more upright
        pbox = Box.in_crop(rect_for_dlib(expected), upright[1], 0.0)
        pts = predict_in_box(img, pbox)
        roll = eye_roll(pts)
        if abs(roll) >= FALLBACK_MIN_ROLL:
            pbox = Box(pbox.cx, pbox.cy, pbox.side, roll)
            pts = predict_in_box(img, pbox)
        placed = Placement(pts, None)
    return _checked(placed, img, upright[0], upright[1], prev)


def follow_landmarks(image: np.ndarray, rect: tuple[float, float, float, float], angle: float,
                     prev: Box | None = None) -> Placement | None:
    """The tracked-frame path: one HOG run in the crop at the angle that won in the previous frame.

    One HOG run instead of up to three (~3-5 ms each on a 240 px crop) and no whole-frame detector: the
    HOG box doubles as the check that the face is still there, so None (no HOG box where the face is
    expected) tells the caller to run the full detector on this frame."""
    img = _check_input(image, rect)
    centre, side = _centre_side(rect)
    crop, mat = _crop(img, centre, side, angle)
    box, score = _hog_box(crop, _expected())
    if box is None:
        return None
    placed = Placement(predict_in_box(img, Box.in_crop(box, mat, angle)), angle, score)
    return _checked(placed, img, crop, mat, prev)


def follow_mesh_box(image: np.ndarray, rect: tuple[float, float, float, float], prev: Box) -> Placement | None:
    """The tracked-frame path for a face the mesh box placed last frame (a turned head whose HOG box was
    wrong): the mesh in the upright crop, its box steadied against `prev`, the predictor in
    it; no HOG runs and no second placement. None (the mesh finds no face there, or the points stray from
    it by more than MESH_FOLLOW_LIMIT) tells the caller to place the face afresh, as do the follower's
    regular full placements, which let dlib's own box win back a face that turns to the camera.
    Measured on the held-out turned-head clips: ~56 -> ~30 ms a frame (bench/extract.py)."""
    img = _check_input(image, rect)
    centre, side = _centre_side(rect)
    crop, mat = _crop(img, centre, side, 0.0)  # upright, as in place_landmarks: the same mesh either way
    anchor = _mesh_anchor(crop, mat)
    if anchor is None:
        return None
    placed = _mesh_box_placement(img, anchor, prev)
    return None if disagreement(placed.points, anchor) > MESH_FOLLOW_LIMIT else placed


def landmarks_for_rect(image: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """68x2 landmarks (frame pixels, float64) for the face in `rect` = (x0, y0, x1, y1) of an RGB image."""
    return place_landmarks(image, rect).points


def interocular(gt: np.ndarray) -> float:
    """Outer eye corner distance (points 36 and 45), the 300-W normaliser."""
    gt = np.asarray(gt, dtype=np.float64)
    return float(np.linalg.norm(gt[36] - gt[45]))


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """Normalised mean error: mean point-to-point distance / inter-ocular (outer corners) distance."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != (68, 2) or gt.shape != (68, 2):
        raise FacecastError(f"nme needs two 68x2 arrays, got {pred.shape} and {gt.shape}")
    return float(np.linalg.norm(pred - gt, axis=1).mean() / max(interocular(gt), 1e-9))
