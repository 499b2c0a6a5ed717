"""mediapipe's 468-point face mesh as a robust anchor for dlib's 68 points (landmarks.py).

Why: dlib's predictor is the more precise of the two where it works (NME 4.7-5.3 % on the annotated
photos against the mesh's 7-15 %), but it fails outright when its HOG box is wrong, e.g. on a turned head
in a rendered clip (breakingbad, 150 px face: NME 26-40 % per frame, the points slid off the face). The
mesh rarely fails that way: on the same frames its eyes, nose and mouth stay within 7-8 % even where its
jaw, a 3-D surface line rather than the visible outline 300-W annotates, is 33 % off. So the mesh is not
averaged into the points (averaging cost 3-4 points of NME on the held-out turned face); landmarks.py
uses it to *notice* a failed placement (eye and mouth points far from the mesh's) and to build a second
box, de-rotated by the mesh's eye line, for the predictor.

MESH_TO_68: for each of the 68 points, the mesh vertex nearest to the 300-W annotation on average over
the tuning frames only (the einstein and takeo photos and the 54 bench frames rendered from them;
breakingbad was held out), the argmin of the mean inter-ocular-normalised distance. Re-derive it with
`bench/extract.py --derive-mesh-map`.

Cost: ~4-6 ms per face on a 240 px crop (its own BlazeFace run inside the crop, then the 192 px mesh
model), once per placement. The model ships in the mediapipe wheel (nothing downloads).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from facecast.console import native_quiet

MESH_TO_68 = (
    127, 234, 132, 58, 172, 136, 149, 148, 152, 400, 379, 365, 288, 361, 323, 447, 372,  # jaw
    70, 63, 105, 66, 107, 336, 295, 282, 283, 276,  # brows
    168, 197, 5, 4, 98, 99, 164, 393, 327,  # nose
    161, 29, 28, 173, 158, 144, 398, 385, 387, 388, 373, 380,  # eyes
    61, 74, 72, 12, 268, 272, 306, 405, 314, 17, 84, 91,
    96, 82, 13, 312, 324, 316, 15, 86,  # mouth
)
MIN_CONFIDENCE = 0.2  # the crop is known to hold a face: accept a weak detection inside it


@lru_cache(maxsize=1)
def _model():  # -> mediapipe FaceMesh
    """The mesh graph, once per process (static images: every crop is detected afresh, no tracking
    state that could carry one face's mesh into another face's crop)."""
    with native_quiet():
        import mediapipe as mp

        model = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                refine_landmarks=False, min_detection_confidence=MIN_CONFIDENCE)
        model.process(np.zeros((64, 64, 3), np.uint8))  # open the interpreters while quiet (see detect.py)
    return model


def mesh_points(crop: np.ndarray, indices=None) -> np.ndarray | None:
    """The mesh's points `indices` (default all 468; crop pixels, float64) for the face in an RGB uint8
    crop; None when the mesh finds no face there."""
    with native_quiet():
        result = _model().process(np.ascontiguousarray(crop))
    if not result.multi_face_landmarks:
        return None
    h, w = crop.shape[:2]
    marks = result.multi_face_landmarks[0].landmark
    picked = marks if indices is None else [marks[i] for i in indices]
    return np.array([[m.x * w, m.y * h] for m in picked], dtype=np.float64)


def mesh68(crop: np.ndarray) -> np.ndarray | None:
    """The mesh's 68 anchor points (MESH_TO_68) for the face in a crop; None when it finds no face."""
    return mesh_points(crop, MESH_TO_68)


def mesh_version() -> str:
    from importlib.metadata import version

    return f"mediapipe {version('mediapipe')} face_mesh check"
