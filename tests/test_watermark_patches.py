"""Bypass 1 of issue 13: compositor patches carry the watermark in their pixels.

The attack: `merge --export-patches`, then a short script that follows the recipe in each patch's JSON
rebuilds the swapped frames from the unmarked dst frames, re-saving the PNGs (which drops their C2PA
manifests), and `facecast video` makes an .mkv (no manifest possible). The test below *is* that script:
the composite must still be found by `facecast verify` with the workspace's tag."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facecast.media.images import read_image, write_image
from facecast.merge.merger import merge
from facecast.merge.settings import MergeSettings
from facecast.merge.testing import FakePredictor, build_dst_workspace
from facecast.provenance import workspace_payload
from facecast.provenance import watermark as wm
from tests.conftest import run_cli

N = 30


def recomposite(frame_path, info_path, which="face"):
    """The 20-line compositor, written from nothing but the patch JSON's "composite" instructions."""
    info = json.loads(info_path.read_text())
    folder = info_path.parent
    frame = read_image(frame_path).astype(np.float32) / 255.0
    img = read_image(folder / info["files"][which], cv2.IMREAD_UNCHANGED)
    face = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)  # 16-bit: value/65535
    mask = read_image(folder / info["files"]["mask"], cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535.0
    x0, y0, x1, y1 = info["roi"]
    m = np.asarray(info["roi_to_face"], np.float64)
    wh = (x1 - x0, y1 - y0)
    flags = cv2.WARP_INVERSE_MAP
    fw = np.clip(cv2.warpAffine(face, m, wh, flags=flags | cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), 0, 1)
    mw = np.clip(cv2.warpAffine(mask, m, wh, flags=flags | cv2.INTER_LINEAR), 0, 1)
    mw[mw < 1 / 255] = 0
    out = frame.copy()
    out[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - mw[..., None]) + fw * mw[..., None]
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from facecast.workspace import Workspace
    from tests.conftest import grant_consent

    ws = Workspace.open(tmp_path_factory.mktemp("patches") / "ws", create=True)
    grant_consent(ws)
    # faces of ~half the frame height: with a face square under ~25 % of a 256x192 frame, the composite
    # after CRF 18 reads "mark present, payload unreadable" (see bench/provenance.py), not "labelled"
    names = build_dst_workspace(ws, n_frames=N, size=(256, 192), face_px=(120.0, 130.0))
    merge(ws, "m", MergeSettings(mode="overlay", blur=8, erode=2), FakePredictor(64), export_patches=True, quiet=True)
    return ws, names


@pytest.mark.parametrize("which", ["face", "raw"])  # the 16-bit final face and the 8-bit raw prediction
def test_composite_from_patches_is_found_by_verify(exported, tmp_path, which):
    ws, names = exported
    pdir = ws.data("dst") / "merged_patches"
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for n in names:
        write_image(frames_dir / n, recomposite(ws.data("dst") / n, pdir / f"{n[:-4]}_0.json", which))
    out = tmp_path / "out.mkv"  # .mkv: no C2PA manifest possible, the pixels are all there is
    code, _, err = run_cli("video", str(frames_dir), str(out), "--fps", "25", "-q")
    assert code == 0, err
    code, text, err = run_cli("verify", str(out), "--json")
    rep = json.loads(text)
    assert code == 0, (text, err)
    assert not rep["manifest"]["present"]
    assert rep["watermark"]["verdict"] == "labelled"
    assert rep["watermark"]["payload"] == workspace_payload(ws).hex()


def test_patches_carry_the_mark_and_dst_frames_do_not(exported):
    ws, names = exported
    pdir = ws.data("dst") / "merged_patches"
    info = json.loads((pdir / f"{names[0][:-4]}_0.json").read_text())
    face = read_image(pdir / info["files"]["face"], cv2.IMREAD_UNCHANGED)
    assert face.dtype == np.uint16  # still a 16-bit patch, now marked
    # the same recipe on the unmarked dst frames alone (no patch): no mark, so the mark above came from
    # the patches and not from the content
    plain = [read_image(ws.data("dst") / n) for n in names]
    assert wm.detect(plain).verdict == wm.VERDICT_NONE
