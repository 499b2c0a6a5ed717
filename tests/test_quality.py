"""Quality metrics on constructed cases with known answers, and `facecast score` on hand-built workspaces."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from facecast.faces.identity import descriptor_distance, face_descriptor
from facecast.quality import metrics as M
from facecast.quality.training import IdentityEvaluator, plateau, psnr, reconstruction_scores, ssim

HAS_POSE = importlib.util.find_spec("facecast.faces.pose") is not None
needs_pose = pytest.mark.skipif(not HAS_POSE, reason="facecast.faces.pose (extraction stage) not installed yet")


def _similarity(points: np.ndarray, angle: float, scale: float, shift=(7.0, -4.0)) -> np.ndarray:
    c = points.mean(0)
    mat = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, scale)
    mat[:, 2] += shift
    return points @ mat[:, :2].T + mat[:, 2]


# -- identity ------------------------------------------------------------------------------------------
def test_identical_faces_have_zero_distance(einstein):
    img, lm = einstein
    a = face_descriptor(img, lm)
    assert a.shape == (128,)
    assert descriptor_distance(a, face_descriptor(img.copy(), lm)) < 1e-6


def test_different_people_are_far_apart(einstein, takeo):
    d = descriptor_distance(face_descriptor(*einstein), face_descriptor(*takeo))
    assert d > 0.6


def test_identity_scores_and_retrieval():
    rng = np.random.default_rng(0)
    src, dst = rng.normal(size=128), rng.normal(size=128)
    swaps = np.stack([src + 0.01, dst, 0.4 * src + 0.6 * dst])
    s = M.identity_scores(swaps, src, np.stack([dst] * 3))
    assert s.to_dst[1] == 0.0 and s.to_src[0] < 0.2
    assert s.closer_to_src == [True, False, False]
    assert s.retrieval_rate == pytest.approx(1 / 3)


# -- pose ----------------------------------------------------------------------------------------------
@needs_pose
def test_rotated_copy_gives_rotation_as_roll_error(einstein):
    lm = einstein[1]
    err = M.pose_error(_similarity(lm, 15.0, 0.8), lm)
    assert err["roll"] == pytest.approx(15.0, abs=0.5)
    assert err["yaw"] < 0.5 and err["pitch"] < 0.5
    assert M.pose_error(lm, lm)["total"] < 1e-6


def test_pose_error_wraps_angles():
    est = iter([{"yaw": 179.0, "pitch": 0.0, "roll": -170.0}, {"yaw": -179.0, "pitch": 3.0, "roll": 170.0}])
    err = M.pose_error(np.zeros((68, 2)), np.zeros((68, 2)), estimator=lambda _: next(est))
    assert err["yaw"] == pytest.approx(2.0) and err["roll"] == pytest.approx(20.0) and err["pitch"] == pytest.approx(3.0)


# -- expression ----------------------------------------------------------------------------------------
def test_expression_error_ignores_pose_and_scale(einstein):
    lm = einstein[1]
    assert M.expression_error(_similarity(lm, -20.0, 1.7), lm) < 1e-9


def test_expression_error_sees_a_moved_mouth(einstein):
    lm = einstein[1]
    opened = lm.copy()
    opened[[56, 57, 58, 65, 66, 67], 1] += 0.3 * M.inter_ocular(lm)  # drop the lower lip: mouth opens
    e = M.expression_error(opened, lm)
    assert e > 0.02
    # scaling the opened face does not change the answer
    assert M.expression_error(_similarity(opened, 10.0, 0.5), lm) == pytest.approx(e, rel=1e-6)


# -- flicker and sharpness -----------------------------------------------------------------------------
def test_flickering_sequence_scores_worse_than_steady(einstein):
    img = cv2.resize(einstein[0], (96, 120))
    mask = np.ones(img.shape[:2], np.float32)
    ramp = [np.clip(img * (1.0 + 0.03 * t), 0, 255).astype(np.uint8) for t in range(8)]  # slow light change
    flick = [np.clip(img * (1.0 + (0.12 if t % 2 else 0.0)), 0, 255).astype(np.uint8) for t in range(8)]
    dst = M.temporal_change([M.region_stats(f, mask) for f in ramp])
    steady = M.flicker_ratio(dst, dst, M.COLOUR_FLOOR)
    flicker = M.flicker_ratio(M.temporal_change([M.region_stats(f, mask) for f in flick]), dst, M.COLOUR_FLOOR)
    assert steady == pytest.approx(1.0)
    assert flicker > 3 * steady


def test_mask_change_measures_edge_motion():
    base = np.zeros((64, 64), np.float32)
    base[16:48, 16:48] = 1
    moved = np.roll(base, 4, axis=1)
    still = M.mask_change([base, base, base])
    jumpy = M.mask_change([base, moved, base])
    assert np.all(still == 0) and np.all(jumpy > 0.1)


def test_sharpness_ratio_drops_for_blur(einstein):
    img = cv2.resize(einstein[0], (128, 160))
    assert M.sharpness_ratio(img, img) == pytest.approx(1.0)
    assert M.sharpness_ratio(cv2.GaussianBlur(img, (7, 7), 2.0), img) < 0.5


def test_shots_split_on_gaps_and_cuts():
    stats = [np.zeros(6), np.zeros(6), np.full(6, 20.0), np.full(6, 20.0), np.full(6, 20.0)]
    assert M.split_shots([1, 2, 3, 4, 7], stats) == [0, 0, 1, 1, 2]


# -- training-time -------------------------------------------------------------------------------------
def test_plateau_detection():
    falling = [{"iter": i, "loss": 1.0 / (1 + i / 100)} for i in range(0, 2000, 50)]
    assert plateau(falling, "loss", 500, 0.01) is None
    flat = falling + [{"iter": i, "loss": 0.0476 + 0.0005 * ((i // 50) % 2)} for i in range(2000, 4000, 50)]
    msg = plateau(flat, "loss", 500, 0.01)
    assert msg is not None and "no measurable gain in loss in the last 500 iterations" in msg
    rising_psnr = [{"iteration": i, "psnr_dst": 20 + i / 100} for i in range(0, 1000, 100)]
    assert plateau(rising_psnr, "psnr_dst", 300, 0.01) is None  # higher is better: still gaining
    assert plateau(rising_psnr, "psnr_dst", 300, 0.01, higher_is_better=False) is not None
    assert plateau(falling[:3], "loss", 500, 0.01) is None  # not enough history
    assert plateau(falling, "missing", 500, 0.01) is None
    nested = [{"iter": i, "eval": {"id_swap_src": 0.7}} for i in range(0, 1000, 100)]  # the trainer's layout
    assert "id_swap_src" in (plateau(nested, "id_swap_src", 300, 0.01) or "")


def test_training_evaluators(einstein, takeo):
    from facecast.faces.align import align_face

    s = np.stack([align_face(einstein[0], _similarity(einstein[1], a, 1.0, (0, 0)), "whole_face", 64)[0] for a in (0, 5)])
    d = np.stack([align_face(takeo[0], _similarity(takeo[1], a, 1.0, (0, 0)), "whole_face", 64)[0] for a in (0, -5)])
    ev = IdentityEvaluator("whole_face")
    no_swap = ev(SimpleNamespace(src=s, dst=d, src_recon=s, dst_recon=d, swap=d))
    perfect = ev(SimpleNamespace(src=s, dst=d, src_recon=s, dst_recon=d, swap=s.copy()))
    assert no_swap["id_swap_dst"] < 1e-6 and no_swap["id_retrieval"] == 0.0
    assert perfect["id_retrieval"] == 1.0 and perfect["id_swap_src"] < perfect["id_swap_dst"]
    blurred = np.stack([cv2.GaussianBlur(x, (5, 5), 1.5) for x in d])
    rec = reconstruction_scores(SimpleNamespace(src=s, dst=d, src_recon=s, dst_recon=blurred, swap=d))
    assert rec["psnr_src"] == 100.0 and rec["ssim_src"] == pytest.approx(1.0)
    assert 15 < rec["psnr_dst"] < 60 and rec["ssim_dst"] < 0.99
    assert psnr(d, blurred) == pytest.approx(rec["psnr_dst"]) and ssim(d, d) == pytest.approx(1.0)


# -- score on hand-built workspaces --------------------------------------------------------------------
@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from facecast.quality.score import score
    from facecast.quality.synthetic import build_workspace

    out = {}
    for kind in ("none", "paste"):
        ws = build_workspace(tmp_path_factory.mktemp(kind) / "ws", merged=kind, n_src=3, n_dst=5, size=96)
        out[kind] = (ws, score(ws))
    return out


def test_score_no_swap_is_dst(scored):
    _, report = scored["none"]
    s = report["summary"]
    assert s["mode"] == "merged" and s["faces"] == 5
    assert s["id_to_dst"] < 1e-6 and s["retrieval"] == 0.0 and s["id_to_src"] > 0.6
    assert s["expression_error"] < 1e-6 and s["sharpness_ratio"] == pytest.approx(1.0)
    assert s["colour_flicker"] == pytest.approx(1.0)
    if HAS_POSE:
        assert s["pose_error"] < 1e-3


def test_score_paste_is_src(scored):
    ws, report = scored["paste"]
    s = report["summary"]
    assert s["retrieval"] == 1.0 and s["id_to_src"] < 0.6 < s["id_to_dst"]
    assert s["expression_error"] > scored["none"][1]["summary"]["expression_error"]
    saved = json.loads((ws.root / "score.json").read_text())
    assert saved["schema"] == "facecast.score/1" and len(saved["frames"]) == 5
    assert len(saved["worst"]) == 5 and saved["worst"][0]["badness"] >= saved["worst"][-1]["badness"]
    assert {"shot", "colour_jump", "badness", "worst_on"} <= set(saved["frames"][0])
    assert (ws.root / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_score_cli(scored, tmp_path):
    from conftest import run_cli

    ws, _ = scored["paste"]
    code, out, err = run_cli("score", "-w", str(ws.root), "--json", "--max-src", "2")
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"]["src_faces"] == 2 and data["summary"]["retrieval"] == 1.0
    # nothing merged and no model: one clear line, no traceback
    from facecast.quality.synthetic import build_workspace

    bare = build_workspace(tmp_path / "bare", merged=None, n_src=1, n_dst=1, size=64)
    code, out, err = run_cli("score", "-w", str(bare.root), "-q")
    assert code != 0 and "Traceback" not in err and "facecast train" in err


def test_score_predict_mode_reframes_for_the_model(tmp_path, monkeypatch):
    """Nothing merged: faces go through the model's predictor (here one that returns dst unchanged,
    at another face type and resolution than the faceset), so the score must read "no swap"."""
    import sys

    from facecast.quality.score import score
    from facecast.quality.synthetic import build_workspace

    class EchoPredictor:
        resolution, face_type = 80, "full"

        def predict(self, faces):
            assert faces.shape[1:] == (80, 80, 3) and faces.dtype == np.uint8
            n = len(faces)
            return SimpleNamespace(face=faces / 255.0, src_mask=np.ones((n, 80, 80)), dst_mask=np.ones((n, 80, 80)))

    seen = []
    fake = SimpleNamespace(load_predictor=lambda d: seen.append(d) or EchoPredictor())
    monkeypatch.setitem(sys.modules, "facecast.train.predict", fake)
    ws = build_workspace(tmp_path / "ws", merged=None, n_src=2, n_dst=3, size=96)
    ws.model("echo").mkdir()
    s = score(ws)["summary"]
    assert seen == [ws.model("echo")]
    assert s["mode"] == "predict" and s["faces"] == 3
    assert s["id_to_dst"] < 1e-6 and s["retrieval"] == 0.0 and s["expression_error"] < 1e-6
