"""The XSeg segmenter: no-label pretraining beats the hull on occluded real-photo faces, fine-tuning on
labels, resume, Ctrl-C, apply/remove/preview, the merge contract, and the bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facecast.errors import FacecastError
from facecast.faces.aligned import list_aligned, read_meta
from facecast.masks.synthfaces import occlusion_set, region_iou, write_faceset
from facecast.masks.xseg import store
from facecast.masks.xseg.apply import load_segmenter, xseg_apply, xseg_preview, xseg_remove
from facecast.masks.xseg.train import XSegTrainSettings, iou, xseg_pretrain, xseg_train
from facecast.workspace import Workspace
from tests.conftest import run_cli

torch.set_num_threads(2)
R = 64  # the tiny preset's resolution
# 700: at 400 the held-out and occluded-region margins held for some data seeds and not others (measured
# over seeds 0-3: region IoU 0.36-0.42 vs the hull's 0.346); at 700 every seed beat the hull by >= 0.045
PRETRAIN_ITERS = 700
SETTINGS = dict(batch_size=8, save_every=200, preview_every=200, device="cpu", seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One workspace, pretrained once (the expensive part), shared by the tests below."""
    ws = Workspace.open(tmp_path_factory.mktemp("xs") / "ws", create=True)
    write_faceset(ws.aligned("src"), 24, size=R, seed=1)
    write_faceset(ws.aligned("dst"), 24, size=R, seed=2, labelled=8)
    result = xseg_pretrain(ws, "xseg", preset="tiny", target_iter=PRETRAIN_ITERS,
                           settings=XSegTrainSettings(**SETTINGS), quiet=True)
    return ws, result


def test_pretrain_without_labels_beats_hull_on_occluded_faces(trained):
    ws, result = trained
    assert result["iterations"] == PRETRAIN_ITERS and result["labelled_faces"] == 0 and result["faces"] == 48
    assert result["heldout_iou_after"] >= 0.8  # stated: >= 0.8 on held-out faces within 700 CPU steps
    ev = occlusion_set(24, size=R, seed=99)  # unseen poses and occluders
    seg = load_segmenter(ws.model("xseg"), "cpu")
    pred = seg(ev["images"])
    assert pred.shape == (24, R, R) and pred.dtype == np.float32 and 0 <= pred.min() and pred.max() <= 1
    whole = iou(pred, ev["target"])
    model_region = region_iou(pred, ev["target"], ev["region"])
    hull_region = region_iou(ev["hull"], ev["target"], ev["region"])
    assert whole >= 0.72
    assert model_region >= hull_region + 0.02, (model_region, hull_region)


def test_checkpoint_files_history_and_previews(trained):
    ws, _ = trained
    d = ws.model("xseg")
    for name in ("options.json", "model.safetensors", "optimizer.safetensors", "state.json", "history.jsonl"):
        assert (d / name).is_file(), name
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    opts = json.loads((d / "options.json").read_text())
    assert opts["preset"] == "tiny" and opts["resolution"] == R and opts["face_type"] == "whole_face"
    lines = [json.loads(l) for l in (d / "history.jsonl").read_text().splitlines()]
    assert any("loss" in l for l in lines) and any("heldout_iou" in l for l in lines)
    assert (d / "previews" / "latest.png").is_file() and (d / "previews" / f"pretrain_{PRETRAIN_ITERS:06d}.png").is_file()
    # weights are plain safetensors (no pickle) and reload into an identical model
    model, _, state = store.load_model(d)
    assert state.iterations["pretrain"] == PRETRAIN_ITERS


def test_finetune_on_labels_reports_counts_and_resumes(trained, tmp_path):
    ws, _ = trained
    import shutil

    shutil.copytree(ws.root, tmp_path / "ws2")
    ws2 = Workspace.open(tmp_path / "ws2")
    res = xseg_train(ws2, "xseg", target_iter=40, settings=XSegTrainSettings(**SETTINGS), quiet=True)
    assert res["labelled_faces"] == 8 and res["trained_on"] == 7 and res["resumed"]
    assert res["heldout_iou_before"] is not None and 0 < res["heldout_iou_after"] <= 1
    state = store.read_state(ws2.model("xseg"))
    assert state.iterations == {"pretrain": PRETRAIN_ITERS, "train": 40} and state.labelled_faces == 8
    again = xseg_train(ws2, "xseg", target_iter=40, settings=XSegTrainSettings(**SETTINGS), quiet=True)
    assert again["trained_now"] == 0  # resumed at its target: nothing to do
    with pytest.raises(FacecastError, match="existing xseg model differs: preset tiny"):
        xseg_train(ws2, "xseg", preset="default", target_iter=50, settings=XSegTrainSettings(**SETTINGS), quiet=True)


def test_ctrl_c_saves_and_resume_continues(trained, tmp_path):
    ws = Workspace.open(tmp_path / "ws", create=True)
    for p in list_aligned(trained[0].aligned("src"))[:6]:
        (ws.aligned("src") / p.name).write_bytes(p.read_bytes())

    def stop_at_7(it, loss):
        if it == 7:
            raise KeyboardInterrupt

    res = xseg_pretrain(ws, "m", preset="tiny", target_iter=20, settings=XSegTrainSettings(**SETTINGS),
                        quiet=True, on_step=stop_at_7)
    assert res["interrupted"] and res["iterations"] == 7
    assert store.read_state(ws.model("m")).iterations["pretrain"] == 7
    res = xseg_pretrain(ws, "m", target_iter=12, settings=XSegTrainSettings(**SETTINGS), quiet=True)
    assert res["resumed"] and res["trained_now"] == 5 and store.read_state(ws.model("m")).iterations["pretrain"] == 12


def test_apply_writes_masks_remove_and_preview(trained, tmp_path):
    ws, _ = trained
    res = xseg_apply(ws, "dst", "xseg", batch_size=10, device="cpu", quiet=True)
    assert res["applied"] == 24 and res["skipped"] == 0
    seg = load_segmenter(ws.model("xseg"), "cpu")
    from facecast.faces.aligned import read_aligned

    face = read_aligned(list_aligned(ws.aligned("dst"))[3])
    mask = face.meta.get_xseg_mask()
    assert mask.shape == (R, R) and mask.dtype == np.float32
    assert np.abs(mask - seg(face.image[None])[0]).max() < 2 / 255 + 1e-6  # PNG-quantised, same values
    assert face.meta.extra["xseg"]["model"] == "xseg"
    again = xseg_apply(ws, "dst", "xseg", device="cpu", quiet=True)
    assert again["applied"] == 0 and again["skipped"] == 24  # resumable: same weights, nothing to redo
    out = xseg_preview(ws, "dst", tmp_path / "prev", quiet=True)
    assert out["written"] == 24 and len(list((tmp_path / "prev").glob("*.jpg"))) == 24
    rem = xseg_remove(ws, "dst", quiet=True)
    assert rem["removed"] == 24
    assert all(read_meta(p).get_xseg_mask() is None for p in list_aligned(ws.aligned("dst")))
    assert sum(bool(read_meta(p).mask_polygons) for p in list_aligned(ws.aligned("dst"))) == 8  # labels kept
    with pytest.raises(FacecastError, match="no face has an xseg mask"):
        xseg_preview(ws, "dst", tmp_path / "prev2", quiet=True)


def test_segmenter_contract_and_wrong_inputs(trained, tmp_path):
    ws, _ = trained
    seg = load_segmenter(ws.model("xseg"), "cpu")
    assert seg.resolution == R and seg.face_type == "whole_face"
    with pytest.raises(FacecastError, match=f"takes {R}x{R} RGB whole_face faces"):
        seg(np.zeros((2, 128, 128, 3), np.uint8))
    # faces of another face type / resolution: one clear line, nothing written
    other = Workspace.open(tmp_path / "other", create=True)
    write_faceset(other.aligned("dst"), 2, face_type="full", size=R, seed=3)
    write_faceset(other.aligned("src"), 2, size=128, seed=4)
    (other.models / "xseg").mkdir(parents=True)
    for f in ("options.json", "model.safetensors", "state.json"):
        (other.model("xseg") / f).write_bytes((ws.model("xseg") / f).read_bytes())
    before = [p.read_bytes() for p in list_aligned(other.aligned("dst"))]
    with pytest.raises(FacecastError, match="face type full, but xseg model xseg was trained for whole_face"):
        xseg_apply(other, "dst", device="cpu", quiet=True)
    assert [p.read_bytes() for p in list_aligned(other.aligned("dst"))] == before
    with pytest.raises(FacecastError, match=f"face is 128px, but xseg model xseg was trained at {R}px"):
        xseg_apply(other, "src", device="cpu", resize=False, quiet=True)  # --no-resize: a forced refusal
    assert xseg_apply(other, "src", device="cpu", resize=True, quiet=True)["applied"] == 2
    assert read_meta(list_aligned(other.aligned("src"))[0]).get_xseg_mask().shape == (128, 128)


def test_apply_resizes_a_512px_faceset_for_a_64px_segmenter(trained, tmp_path):
    """Issue 11.3: no flag needed; the summary says the faces were scaled; the mask matches the one
    made from the face cut at the segmenter's size."""
    import cv2

    from facecast.faces.aligned import read_aligned

    ws, _ = trained
    big = Workspace.open(tmp_path / "big", create=True)
    write_faceset(big.aligned("dst"), 3, size=512, seed=5)
    (big.models / "xseg").mkdir(parents=True)
    for f in ("options.json", "model.safetensors", "state.json"):
        (big.model("xseg") / f).write_bytes((ws.model("xseg") / f).read_bytes())
    res = xseg_apply(big, "dst", device="cpu", quiet=True)
    assert res["applied"] == 3 and res["resized"].startswith("yes: 3 face(s) of 512px scaled to the segmenter's 64px")
    face = read_aligned(list_aligned(big.aligned("dst"))[0])
    mask = face.meta.get_xseg_mask()
    assert mask.shape == (512, 512)
    seg = load_segmenter(big.model("xseg"), "cpu")
    small = seg(cv2.resize(face.image, (R, R), interpolation=cv2.INTER_AREA)[None])[0]
    assert np.abs(cv2.resize(mask, (R, R), interpolation=cv2.INTER_AREA) - small).mean() < 0.02
    code, out, err = run_cli("xseg", "apply", "dst", "-w", str(big.root), "--force", "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(out)["resized"].startswith("yes: 3 face(s)")


def test_cli_errors_are_one_line(trained, tmp_path):
    ws, _ = trained
    empty = Workspace.open(tmp_path / "nolabels", create=True)
    write_faceset(empty.aligned("src"), 3, size=R, seed=7)
    code, _, err = run_cli("xseg", "train", "-w", str(empty.root), "--preset", "tiny", "--target-iter", "5")
    assert code == 2 and "facecast xseg pretrain" in err
    assert "no labelled faces" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("xseg", "apply", "-w", str(empty.root), "src", "--model", "nothing")
    assert code == 2 and "no xseg model here" in err and len(err.strip().splitlines()) == 1
    (empty.models / "bad").mkdir(parents=True)
    (empty.model("bad") / "options.json").write_text("{not json")
    (empty.model("bad") / "model.safetensors").write_bytes(b"junk")
    code, _, err = run_cli("xseg", "apply", "-w", str(empty.root), "src", "--model", "bad")
    assert code == 2 and "corrupt options file" in err


def test_cli_pretrain_and_apply_json(tmp_path):
    ws = Workspace.open(tmp_path / "ws", create=True)
    write_faceset(ws.aligned("dst"), 4, size=R, seed=8)
    code, out, err = run_cli("xseg", "pretrain", "-w", str(ws.root), "--preset", "tiny", "--target-iter", "3",
                             "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(out)["iterations"] == 3
    code, out, err = run_cli("xseg", "apply", "-w", str(ws.root), "dst", "--json", "--device", "cpu")
    assert code == 0, err
    assert json.loads(out)["applied"] == 4
