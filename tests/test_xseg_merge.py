"""End to end: a stored XSeg mask keeps a pasted occluder in the dst frame untouched at merge time, where
the landmark-hull mask paints the swapped face over it (issue 8's merge test)."""

from __future__ import annotations

import cv2
import numpy as np

import facecast.merge.merger as merger_mod
from facecast.faces.align import warp_to_face
from facecast.faces.aligned import list_aligned, read_meta, update_meta
from facecast.imaging.hull import hull_mask
from facecast.media.images import read_image, write_image
from facecast.merge.merger import merge
from facecast.merge.settings import MergeSettings
from facecast.merge.testing import FakePredictor, build_dst_workspace


def _occlude(ws, names):
    """Paste a textured bar across the lower face of every frame; return the frame-level occluder masks."""
    masks = {}
    metas = {read_meta(p).source.filename: (p, read_meta(p)) for p in list_aligned(ws.aligned("dst"))}
    rng = np.random.default_rng(3)
    for n in names:
        if n not in metas:
            continue
        frame = read_image(ws.data("dst") / n)
        path, meta = metas[n]
        lm = meta.source_landmarks
        x0, x1 = int(lm[:, 0].min()) - 4, int(lm[:, 0].max()) + 4
        y0, y1 = int(lm[51, 1]), int(lm[8, 1]) + 2  # from the upper lip to the chin
        occ = np.zeros(frame.shape[:2], np.float32)
        occ[y0:y1, x0:x1] = 1.0
        texture = rng.integers(0, 255, size=frame.shape, dtype=np.uint8)
        texture = cv2.GaussianBlur(texture, (5, 5), 0)
        frame = np.where(occ[..., None] > 0, texture, frame).astype(np.uint8)
        write_image(ws.data("dst") / n, frame)
        # the mask an XSeg model would write: the face minus the occluder, in aligned coordinates
        occ_face = warp_to_face(occ, meta.matrix, meta.size, interpolation=cv2.INTER_LINEAR)
        meta.set_xseg_mask(hull_mask(meta.landmarks_array, meta.size, forehead=0.2) * (1.0 - occ_face))
        update_meta(path, meta)
        masks[n] = occ
    return masks


def test_xseg_dst_keeps_occluder_while_hull_paints_over_it(workspace, monkeypatch):
    # look at pixels before the watermark (itself checked in test_merge_runner)
    monkeypatch.setattr(merger_mod, "_label_frame", lambda ws, image: image)
    names = build_dst_workspace(workspace, n_frames=3, aligned_size=128)
    occluders = _occlude(workspace, names)
    assert occluders
    changed = {}
    for mode in ("dst", "xseg-dst"):
        merge(workspace, mode, MergeSettings(mode="overlay", mask_mode=mode, color_transfer="none"),
              FakePredictor(64, "whole_face"), quiet=True)
        for n, occ in occluders.items():
            inner = cv2.erode(occ, np.ones((9, 9), np.uint8)) > 0  # away from the feathered edge
            src = read_image(workspace.data("dst") / n).astype(int)
            out = read_image(workspace.merged / n).astype(int)
            face = hull_mask(read_meta(next(p for p in list_aligned(workspace.aligned("dst"))
                                            if read_meta(p).source.filename == n)).source_landmarks,
                             (src.shape[1], src.shape[0])) > 0.5
            region = inner & face
            changed[(mode, n)] = float((np.abs(out - src).max(-1)[region] > 8).mean())
        # merge writes every frame again for the next mode: clear the previous results
        for p in workspace.merged.iterdir():
            p.unlink()
    for n in occluders:
        assert changed[("dst", n)] > 0.5, changed  # the hull paints over the occluder
        assert changed[("xseg-dst", n)] < 0.02, changed  # XSeg keeps it
