"""The merge runner on a short rendered clip with a fake predictor: outputs, identity, resume, overrides,
interrupts, patch export, workers, temporal smoothing, and the CLI's one-line errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.faces.aligned import list_aligned, read_meta, update_meta
from facecast.media.images import read_image
from facecast.merge.merger import merge, resolve_settings
from facecast.merge.settings import MergeSettings
from facecast.merge.testing import FakePredictor, FakeSegmenter, build_dst_workspace
from tests.conftest import run_cli

N = 6
BLANK = (3,)


@pytest.fixture()
def clip_ws(workspace):
    names = build_dst_workspace(workspace, n_frames=N, blank_frames=BLANK, second_actor=True)
    return workspace, names


import facecast.merge.merger as merger_mod

_LABEL_FRAME = merger_mod._label_frame


@pytest.fixture(autouse=True)
def _geometry_without_watermark(monkeypatch):
    """These tests check compositing geometry pixel by pixel ("nothing changes outside the mask", patch
    round trips), so they look at frames before the watermark is added; the label itself is checked by
    test_merged_frames_and_patches_are_labelled with the real hook."""
    monkeypatch.setattr(merger_mod, "_label_frame", lambda ws, image: image)
    monkeypatch.setattr(merger_mod, "_mark_patch", lambda ws, patch, matrix, wh: patch)


def _merged(ws, name):
    return read_image(ws.merged / name)


def test_end_to_end_outputs_identity_and_passthrough(clip_ws):
    ws, names = clip_ws
    takeo: dict[str, list] = {}
    for p in list_aligned(ws.aligned("dst")):
        meta = read_meta(p)
        if meta.identity == 1:
            takeo.setdefault(meta.source.filename, []).append(meta)
    assert takeo
    pred = FakePredictor(64, "full")
    rep = merge(ws, "m", MergeSettings(), pred, workers=1, quiet=True)
    assert rep.frames == N and rep.merged == N and rep.skipped == 0
    assert rep.passthrough == [names[i] for i in BLANK]
    assert rep.faces == N - len(BLANK) and rep.identity == 0
    for i, n in enumerate(names):
        src, out = read_image(ws.data("dst") / n), _merged(ws, n)
        mask = read_image(ws.merged_mask / n, cv2.IMREAD_GRAYSCALE)
        assert out.shape == src.shape and mask.shape == src.shape[:2]
        if i in BLANK:
            assert np.array_equal(out, src) and mask.max() == 0
            continue
        changed = np.any(out != src, axis=-1)
        assert changed.sum() > 300 and not changed[mask == 0].any()
        # Takeo (identity 1, first half of the clip) is never swapped
        for meta in takeo.get(n, []):
            x0, y0, x1, y1 = (int(v) for v in meta.source.rect)
            assert not changed[y0:y1, x0:x1].any()
    session = json.loads((ws.model("m") / "merge_session.json").read_text())
    assert session["progress"] == {"done": N, "total": N}
    assert session["no_face"] == [names[i] for i in BLANK]


def test_resume_skips_done_frames(clip_ws):
    ws, names = clip_ws
    merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    pred = FakePredictor(64)
    rep = merge(ws, "m", None, pred, quiet=True)
    assert rep.merged == 0 and rep.skipped == N and pred.calls == 0
    (ws.merged / names[1]).unlink()
    rep = merge(ws, "m", None, pred, quiet=True)
    assert rep.merged == 1 and (ws.merged / names[1]).exists()


def test_changed_setting_remerges_only_affected_frames(clip_ws):
    ws, names = clip_ws
    merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    before = {n: _merged(ws, n) for n in names}
    # a per-frame override redoes that frame only
    rep = merge(ws, "m", None, FakePredictor(64), overrides={names[2]: {"blur": 20}}, quiet=True)
    assert rep.merged == 1
    assert not np.array_equal(_merged(ws, names[2]), before[names[2]])
    # a global change redoes every face frame whose effective settings changed: not frame 2 (its
    # override already says blur 20) and not the face-less frame
    rep = merge(ws, "m", resolve_settings(ws, "m", {"blur": 20}), FakePredictor(64), quiet=True)
    assert rep.merged == N - len(BLANK) - 1
    with pytest.raises(FacecastError, match="no such frame"):
        merge(ws, "m", None, FakePredictor(64), overrides={"nope.png": {"blur": 1}})
    with pytest.raises(FacecastError, match="out of range"):
        merge(ws, "m", None, FakePredictor(64), overrides={names[0]: {"blur": -3}})


class _Interrupting(FakePredictor):
    def predict(self, faces):
        if self.calls >= 1:
            raise KeyboardInterrupt
        return super().predict(faces)


def test_interrupt_loses_nothing(clip_ws):
    ws, names = clip_ws
    with pytest.raises(KeyboardInterrupt):
        merge(ws, "m", MergeSettings(), _Interrupting(64), batch_frames=2, quiet=True)
    session = json.loads((ws.model("m") / "merge_session.json").read_text())
    assert set(session["frames"]) == set(names[:2])
    assert not [p for p in ws.merged.iterdir() if p.name.startswith(".")]
    rep = merge(ws, "m", None, FakePredictor(64), batch_frames=2, quiet=True)
    assert rep.merged == N - 2 and rep.skipped == 2


def _composite(frame, face, mask, mat):
    h, w = frame.shape[:2]
    flags = cv2.WARP_INVERSE_MAP
    fw = np.clip(cv2.warpAffine(face, mat, (w, h), flags=flags | cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), 0, 1)
    mw = np.clip(cv2.warpAffine(mask, mat, (w, h), flags=flags | cv2.INTER_LINEAR), 0, 1)
    mw[mw < 1 / 255] = 0
    return frame * (1 - mw[..., None]) + fw * mw[..., None]


def test_patch_export_round_trips_overlay(clip_ws):
    ws, names = clip_ws
    s = MergeSettings(mode="overlay", blur=8, erode=2, color_transfer="rct")
    merge(ws, "m", s, FakePredictor(64), export_patches=True, quiet=True)
    pdir = ws.data("dst") / "merged_patches"
    checked = 0
    for i, n in enumerate(names):
        if i in BLANK:
            assert not list(pdir.glob(f"{n[:-4]}_*"))
            continue
        info = json.loads((pdir / f"{n[:-4]}_0.json").read_text())
        face = read_image(pdir / info["files"]["face"], cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535.0
        mask = read_image(pdir / info["files"]["mask"], cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535.0
        raw = read_image(pdir / info["files"]["raw"])
        assert face.shape == (64, 64, 3) and mask.shape == (64, 64) and raw.shape == (64, 64, 3)
        frame = read_image(ws.data("dst") / n).astype(np.float32) / 255.0
        merged = _merged(ws, n).astype(np.float32)
        # bit-exact recipe: warp into the recorded box with the box-local matrix
        x0, y0, x1, y1 = info["roi"]
        comp = frame.copy()
        comp[y0:y1, x0:x1] = _composite(frame[y0:y1, x0:x1], face, mask, np.asarray(info["roi_to_face"]))
        diff = np.abs(np.round(comp * 255) - merged)
        assert diff.max() <= 1.0, (n, diff.max())
        # the whole-frame matrix gives the same picture up to OpenCV's fixed-point coordinate rounding
        full = _composite(frame, face, mask, np.asarray(info["frame_to_face"]))
        diff = np.abs(np.round(full * 255) - merged)
        assert (diff > 1).mean() < 0.001 and diff.max() <= 4
        checked += 1
    assert checked == N - len(BLANK)
    # turning export on later redoes frames that have no patches; off again skips them
    rep = merge(ws, "m", None, FakePredictor(64), quiet=True)
    assert rep.merged == 0


@pytest.mark.parametrize("parallel", ["thread", "process"])
def test_two_workers_match_one(clip_ws, parallel, monkeypatch):
    # spawned workers run the real hook, so every run here does (the watermark is deterministic)
    monkeypatch.setattr(merger_mod, "_label_frame", _LABEL_FRAME)
    ws, names = clip_ws
    merge(ws, "a", MergeSettings(mode="seamless", color_transfer="mkl-m"), FakePredictor(64), workers=1, quiet=True)
    one = {n: _merged(ws, n) for n in names}
    rep = merge(ws, "b", MergeSettings(mode="seamless", color_transfer="mkl-m"), FakePredictor(64), workers=2,
                parallel=parallel, batch_frames=2, quiet=True)
    assert rep.merged == N and rep.parallel == parallel
    for n in names:
        assert np.array_equal(one[n], _merged(ws, n)), n


def test_temporal_window_smooths_colour(workspace):
    """A flickering dst brightness: with a 5-frame window, the swapped face's brightness flickers less."""
    names = build_dst_workspace(workspace, n_frames=8)
    ws = workspace
    # add frame-to-frame flicker to dst: alternate frames 12% darker
    for i, n in enumerate(names):
        if i % 2:
            img = read_image(ws.data("dst") / n).astype(np.float32) * 0.88
            from facecast.media.images import write_image

            write_image(ws.data("dst") / n, np.clip(img, 0, 255).astype(np.uint8))

    def face_levels():
        out = []
        for n in names:
            m = read_image(ws.merged_mask / n, cv2.IMREAD_GRAYSCALE) > 250
            out.append(_merged(ws, n)[m].mean())
        return np.abs(np.diff(out)).mean()

    merge(ws, "m", MergeSettings(temporal_window=1, mask_mode="dst"), FakePredictor(64), quiet=True)
    flicker1 = face_levels()
    merge(ws, "m", MergeSettings(temporal_window=5, mask_mode="dst"), FakePredictor(64), quiet=True)
    flicker5 = face_levels()
    assert flicker5 < 0.7 * flicker1, (flicker1, flicker5)


def test_xseg_modes(clip_ws):
    ws, names = clip_ws
    with pytest.raises(FacecastError, match="XSeg"):
        merge(ws, "m", MergeSettings(mask_mode="xseg-dst"), FakePredictor(64), quiet=True)
    seg = FakeSegmenter(48, "whole_face")
    rep = merge(ws, "m", MergeSettings(mask_mode="learned-prd*learned-dst*xseg-prd*xseg-dst"), FakePredictor(64), segmenter=seg, quiet=True)
    assert rep.merged == N and seg.calls >= 2
    # xseg-dst can come from masks stored in the aligned files instead of a segmenter
    for p in list_aligned(ws.aligned("dst")):
        meta = read_meta(p)
        m = np.zeros((meta.size, meta.size), np.float32)
        cv2.circle(m, (meta.size // 2, meta.size // 2), meta.size // 3, 1.0, -1)
        meta.set_xseg_mask(m)
        update_meta(p, meta)
    rep = merge(ws, "m2", MergeSettings(mask_mode="xseg-dst"), FakePredictor(64), quiet=True)
    assert rep.merged == N


def test_cli_errors_are_one_line(clip_ws, tmp_path):
    ws, _ = clip_ws
    code, out, err = run_cli("merge", "-w", str(ws.root), "--model", "nosuch", "--quiet")
    assert code != 0 and "Traceback" not in err and "nosuch" in err
    code, out, err = run_cli("merge", "-w", str(ws.root), "--model", "m", "--mode", "blend")
    assert code != 0 and "Traceback" not in err and "overlay" in err
    code, out, err = run_cli("merge", "-w", str(ws.root), "--model", "m", "--override", "blur=3")
    assert code != 0 and "--frame" in err


def _tiny_model(ws, name: str = "tiny") -> None:
    """A real (random-weight) DF model folder written the way training writes it: tests the contract."""
    torch = pytest.importorskip("torch")
    from facecast.train import checkpoint
    from facecast.train.archs.registry import build_model
    from facecast.train.options import ModelOptions

    torch.manual_seed(0)
    opts = ModelOptions(arch="df", resolution=32, face_type="full", e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=8).validate()
    model = build_model(opts)
    weights = {"model." + k: v for k, v in model.state_dict().items()}
    checkpoint.save_checkpoint(ws.model(name), weights, {}, {}, {"iteration": 0}, opts.to_json())


def test_cli_end_to_end_with_tiny_model(clip_ws):
    ws, names = clip_ws
    _tiny_model(ws)
    args = ("merge", "-w", str(ws.root), "--model", "tiny", "--workers", "1", "--device", "cpu")
    code, out, err = run_cli(*args, "--mask-mode", "dst", "--blur", "4", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["merged"] == N and rep["passthrough"] == [names[i] for i in BLANK]
    assert all((ws.merged / n).exists() and (ws.merged_mask / n).exists() for n in names)
    # settings persist in the session; a per-frame override re-merges that frame only
    code, out, err = run_cli(*args, "--frame", names[0], "--override", "erode=6", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["merged"] == 1 and rep["skipped"] == N - 1
    session = json.loads((ws.model("tiny") / "merge_session.json").read_text())
    assert session["settings"]["blur"] == 4 and session["settings"]["mask_mode"] == "dst"
    assert session["overrides"] == {names[0]: {"erode": 6}}


def test_more_training_remerges(clip_ws):
    ws, _ = clip_ws
    merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    trained_more = FakePredictor(64)
    trained_more.iteration = 500  # what load_predictor reports after more training
    rep = merge(ws, "m", None, trained_more, quiet=True)
    assert rep.merged == N - len(BLANK)  # face frames redone; face-less frames stay copied


def test_preview_matches_written_frame_and_writes_nothing(clip_ws):
    from facecast.merge.merger import preview

    ws, names = clip_ws
    s = MergeSettings(mode="overlay", blur=6)
    res = preview(ws, names[1], s, FakePredictor(64))
    assert not any(ws.merged.iterdir())
    merge(ws, "m", s, FakePredictor(64), quiet=True)
    assert np.array_equal(res.image, _merged(ws, names[1]))
    blank = preview(ws, names[BLANK[0]], s, FakePredictor(64))
    assert np.array_equal(blank.image, read_image(ws.data("dst") / names[BLANK[0]]))
    with pytest.raises(FacecastError, match="not found"):
        preview(ws, "nope.png", s, FakePredictor(64))


def test_real_xseg_segmenter_contract(clip_ws):
    """The XSeg stage's Segmenter (random weights) plugs into the merge as-is."""
    pytest.importorskip("torch")
    from facecast.masks.xseg.apply import Segmenter
    from facecast.masks.xseg.model import build_model, preset_options
    from facecast.masks.xseg.store import XSegState

    ws, _ = clip_ws
    opts = preset_options("tiny", face_type="whole_face")
    seg = Segmenter(build_model(opts), opts, XSegState(), "cpu", None, name="xseg")
    rep = merge(ws, "m", MergeSettings(mask_mode="xseg-prd*xseg-dst"), FakePredictor(64), segmenter=seg, quiet=True)
    assert rep.merged == N


def test_merged_frames_and_patches_are_labelled(clip_ws, monkeypatch):
    monkeypatch.setattr(merger_mod, "_label_frame", _LABEL_FRAME)
    from facecast.provenance.c2pa import read_manifest
    from facecast.provenance.watermark import detect

    ws, names = clip_ws
    merge(ws, "m", MergeSettings(mode="overlay"), FakePredictor(64), export_patches=True, quiet=True)
    merged = [read_image(ws.merged / n) for n in names]
    found = detect(merged)
    assert found.found
    from facecast.provenance import workspace_payload

    assert found.payload == workspace_payload(ws)
    patch = next((ws.data("dst") / "merged_patches").glob("*_face.png"))
    assert read_manifest(patch, ws=ws).valid


def test_merge_without_consent_stops_before_work(tmp_path):
    from facecast.errors import ConsentError
    from facecast.provenance.consent import revoke_consent
    from facecast.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", create=True)
    build_dst_workspace(ws, n_frames=2)
    revoke_consent(ws, "sample", "withdrawn")
    with pytest.raises(ConsentError, match="revoked"):
        merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    assert not any(ws.merged.iterdir())


def test_merge_cli_without_consent_refuses_in_one_line_before_loading(tmp_path):
    """QA: the CLI printed "merging with model ..." and a progress bar before the consent refusal, and a
    workspace without consent and without the model was told to train first (train refuses too)."""
    from facecast.provenance.consent import revoke_consent
    from facecast.workspace import Workspace
    from tests.conftest import run_cli

    ws = Workspace.open(tmp_path / "ws", create=True)
    build_dst_workspace(ws, n_frames=2)
    revoke_consent(ws, "sample", "withdrawn")
    code, out, err = run_cli("merge", "-w", str(ws.root), "--model", "nosuchmodel")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error:") and "revoked" in lines[0], err
    assert "merging with model" not in err + out and "train it first" not in err
    assert not any(ws.merged.iterdir())
