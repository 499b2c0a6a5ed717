"""Stand-ins for a trained model and an XSeg segmenter, for merge tests and benchmarks.

Why in the package: tests, the merge benchmark and the UI's merge preview need something with the
predictor contract (`facecast.train.predict`: `name, resolution, face_type, arch, predict(faces)`)
that behaves predictably without training a network. The fake "swap" is a deterministic colour shift
plus a mirror, so a merged frame visibly differs from dst exactly where the mask says.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.faces.facetype import template_landmarks
from facecast.masks.hull import hull_mask


@dataclass
class FakeOutput:
    face: np.ndarray
    src_mask: np.ndarray
    dst_mask: np.ndarray


class FakePredictor:
    """Returns each face mirrored and colour-shifted, with template-hull learned masks.

    `work` adds a realistic cost: that many 3x3 convolutions of a 32-channel feature map per face (a
    stand-in for a small model's inference) so benchmarks see prediction time."""

    def __init__(self, resolution: int = 64, face_type: str = "full", tint=(1.15, 0.9, 0.8), work: int = 0):
        self.name = "fake"
        self.arch = "fake"
        self.resolution = resolution
        self.face_type = face_type
        self.tint = np.asarray(tint, np.float32)
        self.work = work
        lm = template_landmarks(face_type, resolution)
        self._prd = hull_mask(lm, resolution, forehead=0.2)
        self._dst = cv2.erode(self._prd, np.ones((3, 3), np.uint8))
        self.calls = 0

    def predict(self, faces: np.ndarray) -> FakeOutput:
        faces = np.asarray(faces)
        assert faces.ndim == 4 and faces.shape[1:] == (self.resolution, self.resolution, 3), faces.shape
        self.calls += 1
        out = np.clip(faces[:, :, ::-1].astype(np.float32) / 255.0 * self.tint, 0.0, 1.0)
        if self.work:
            self._burn(len(faces))
        n = len(faces)
        return FakeOutput(out, np.repeat(self._prd[None], n, 0), np.repeat(self._dst[None], n, 0))

    def _burn(self, n: int) -> None:
        import torch

        x = torch.zeros(n, 32, self.resolution // 2, self.resolution // 2)
        w = torch.zeros(32, 32, 3, 3)
        with torch.no_grad():
            for _ in range(self.work):
                x = torch.nn.functional.conv2d(x, w, padding=1)


class FakeSegmenter:
    """An 'XSeg' that returns an ellipse covering the middle of the face at its own geometry."""

    def __init__(self, resolution: int = 64, face_type: str = "whole_face", shrink: float = 0.35):
        self.name = "fake-xseg"
        self.resolution = resolution
        self.face_type = face_type
        m = np.zeros((resolution, resolution), np.float32)
        c = resolution // 2
        cv2.ellipse(m, (c, int(c * 1.1)), (int(resolution * shrink), int(resolution * (shrink + 0.08))), 0, 0, 360, 1.0, -1)
        self._mask = m
        self.calls = 0

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        assert faces.shape[1:] == (self.resolution, self.resolution, 3), faces.shape
        self.calls += 1
        return np.repeat(self._mask[None], len(faces), 0)


def build_dst_workspace(
    ws,
    n_frames: int = 6,
    size: tuple[int, int] = (256, 192),
    blank_frames: tuple[int, ...] = (),
    second_actor: bool = False,
    aligned_size: int = 128,
    face_px: tuple[float, float] = (90.0, 100.0),
    seed: int = 0,
) -> list[str]:
    """Render a short dst clip into `ws/data_dst/` and write its aligned faces with ground-truth landmarks.

    Actor 0 (Einstein) is identity 0 in every non-blank frame; with `second_actor`, Takeo (identity 1)
    appears in the first half, so a merge must keep to identity 0. No detector involved. Returns the
    frame file names. Records a consent statement for the bundled sample photos (merge requires one)."""
    from facecast.faces.align import align_face
    from facecast.provenance.consent import add_consent
    from facecast.faces.aligned import AlignedMeta, SourceInfo, write_aligned
    from facecast.media.images import write_image
    from facecast.media.synth import Actor, render_clip, sample_photo
    from facecast.provenance import gate_verdict

    add_consent(ws, "sample", "bundled public-domain/test photos, used only in tests and benchmarks",
                "facecast tests", src=True)
    e_img, e_lm = sample_photo("einstein")
    actors = [Actor(e_img, e_lm, start=(0.35, 0.5), end=(0.6, 0.5), face_px=face_px)]
    if second_actor:
        t_img, t_lm = sample_photo("takeo")
        actors.append(Actor(t_img, t_lm, start=(0.82, 0.5), end=(0.82, 0.5), face_px=(50, 50), visible=(0, n_frames // 2)))
    clip = render_clip(actors, size=size, n_frames=n_frames, seed=seed, blank_frames=blank_frames)
    names = []
    for i, (frame, marks) in enumerate(zip(clip.frames, clip.landmarks)):
        name = f"{i:05d}.png"
        write_image(ws.data("dst") / name, frame)
        names.append(name)
        for k, lm in enumerate(marks):
            if lm is None:
                continue
            face, mat, aligned_lm = align_face(frame, lm, "whole_face", aligned_size)
            lo, hi = lm.min(0), lm.max(0)
            meta = AlignedMeta(
                face_type="whole_face", size=aligned_size, landmarks=aligned_lm.tolist(),
                source=SourceInfo(name, (size[0], size[1]), (*lo.tolist(), *hi.tolist()), lm.tolist()),
                image_to_face=mat.tolist(), face_index=k, identity=k, detector={"name": "ground-truth"},
            )
            meta.content_gate = gate_verdict(frame, name)  # as extract records it
            write_aligned(ws.aligned("dst") / f"{i:05d}_{k}.jpg", face, meta)
    return names
