"""The identity verdict while training (issue 17): "recognisable / not yet / getting worse" with an ETA,
and a plateau line that never claims gains while the swap moves away from the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facecast.quality.guidance import guidance_from_records, plateau_message, training_guidance
from facecast.quality.verdict import NO_EVAL, NOT_YET, RECOGNISABLE, WORSE, identity_verdict

EVERY = 500


def ev(it: int, dist: float, ret: float, to_dst: float = 0.6) -> dict:
    return {"iter": it, "eval": {"id_swap_src": dist, "id_swap_dst": to_dst, "id_retrieval": ret, "psnr_dst": 20.0}}


def losses(upto: int, start: float = 0.2, step: int = 100) -> list[dict]:
    """Loss rows falling all the way: the loss alone would say "training still gains"."""
    return [{"iter": i, "src_loss": start * 0.999 ** i, "dst_loss": start * 0.999 ** i, "ms": 80.0}
            for i in range(step, upto + 1, step)]


def series(dists, rets) -> list[dict]:
    return [ev(EVERY * k, d, r) for k, (d, r) in enumerate(zip(dists, rets), 1)]


def test_improving_but_far_is_not_yet_with_the_eta_of_its_slope():
    # distance falls 0.02 per evaluation (4e-5 per iteration); retrieval already at its goal
    records = losses(3000) + series([0.80 - 0.02 * k for k in range(1, 7)], [0.95] * 6)
    v = identity_verdict(records, ms_per_iter=100.0)
    assert v.state == NOT_YET and v.iteration == 3000
    slope = -0.02 / EVERY
    latest = 0.80 - 0.02 * 6  # the fitted line through exact points passes through the latest one
    assert v.eta_iters == pytest.approx((latest - 0.5) / -slope, abs=1)  # 4,500
    assert v.eta_seconds == pytest.approx(v.eta_iters * 0.1)
    assert "not yet recognisable" in v.message and "ETA ~4,500 iterations" in v.message and "8 min" in v.message
    assert v.id_swap_src == pytest.approx((0.70 + 0.68) / 2)  # mean of the last two evaluations


def test_eta_is_the_later_of_distance_and_retrieval():
    # distance already at its goal; retrieval rises 0.05 per evaluation from 0.3 to 0.55
    records = series([0.45] * 6, [0.25 + 0.05 * k for k in range(1, 7)])
    v = identity_verdict(records)
    assert v.state == NOT_YET
    assert v.eta_iters == pytest.approx((0.9 - 0.55) / (0.05 / EVERY), abs=1)  # 3,500
    assert v.eta_seconds is None and "(~" not in v.message  # no step time known: iterations only


def test_reached_is_recognisable():
    records = series([0.7, 0.62, 0.55, 0.48, 0.46], [0.5, 0.7, 0.85, 0.92, 0.95])
    v = identity_verdict(records)
    assert v.state == RECOGNISABLE and v.eta_iters is None
    assert "recognisable at iteration 2,500" in v.message
    # one evaluation at the goal is not enough: the mean of the last two decides
    assert identity_verdict(series([0.7, 0.62, 0.55, 0.48], [0.5, 0.7, 0.6, 0.95])).state == NOT_YET


def test_distance_rising_is_getting_worse_and_the_plateau_line_never_says_gains(tmp_path):
    # the case: losses still falling, identity moving away from the source
    records = losses(3000) + series([0.62, 0.64, 0.65, 0.68, 0.70, 0.72], [0.4, 0.35, 0.3, 0.25, 0.2, 0.2])
    v = identity_verdict(records)
    assert v.state == WORSE
    assert "moving away from the source" in v.message and "facecast restore-backup" in v.message
    assert "0.62 -> 0.71" in v.message
    (tmp_path / "history.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{\"iter\": 31")
    g = training_guidance(tmp_path)  # reads the file, skips the line cut by a kill
    assert g["identity_state"] == WORSE and g["eta_s"] is None
    assert "gain" not in g["plateau"] and "getting worse" in g["plateau"]


def test_retrieval_falling_alone_is_getting_worse():
    records = series([0.66, 0.67, 0.66, 0.67, 0.66, 0.67], [0.75, 0.67, 0.5, 0.42, 0.33, 0.25])
    v = identity_verdict(records)
    assert v.state == WORSE and "share nearer the source fell" in v.message


def test_noisy_flat_is_not_yet_without_an_eta():
    records = losses(3000) + series([0.70, 0.72, 0.69, 0.71, 0.70, 0.72], [0.25, 0.33, 0.25, 0.17, 0.33, 0.25])
    v = identity_verdict(records, ms_per_iter=80.0)
    assert v.state == NOT_YET and v.eta_iters is None and v.eta_seconds is None
    assert "no ETA yet: identity is not improving measurably" in v.message
    g = guidance_from_records(records)
    assert "still" not in g["plateau"]  # no gain measured, none claimed


def test_one_noisy_evaluation_neither_raises_nor_hides_an_alarm():
    improving = [0.80, 0.78, 0.76, 0.74, 0.72, 0.77]  # a steady fall, then one bad evaluation
    assert identity_verdict(series(improving, [0.2] * 6)).state == NOT_YET
    rising = [0.62, 0.64, 0.66, 0.68, 0.70, 0.66]  # a steady rise, then one good evaluation
    assert identity_verdict(series(rising, [0.2] * 6)).state == WORSE


def test_too_few_evaluations_for_a_trend():
    v = identity_verdict(series([0.7, 0.6], [0.3, 0.4]), ms_per_iter=50.0)
    assert v.state == NOT_YET and v.eta_iters is None and "a trend needs 3" in v.message
    # three rising evaluations are not yet an alarm (a 3-point fit has one degree of freedom for noise)...
    assert identity_verdict(series([0.62, 0.65, 0.68], [0.3] * 3)).state == NOT_YET
    # ...four are
    assert identity_verdict(series([0.62, 0.65, 0.68, 0.71], [0.3] * 4)).state == WORSE


def test_no_evaluations_yet():
    v = identity_verdict(losses(2000))
    assert v.state == NO_EVAL and v.iteration is None and v.eta_iters is None
    g = guidance_from_records(losses(2000))
    assert g["identity_state"] == NO_EVAL and g["plateau"] == "no plateau yet"  # no gains claimed unmeasured
    assert training_guidance(Path("/nonexistent"))["identity_state"] == NO_EVAL


def test_improving_identity_is_the_only_gain_the_plateau_line_claims():
    records = losses(3000) + series([0.80 - 0.02 * k for k in range(1, 7)], [0.2 + 0.05 * k for k in range(1, 7)])
    g = guidance_from_records(records, ms_per_iter=100.0)
    assert g["identity_state"] == NOT_YET and g["eta_s"] == pytest.approx(g["eta_iters"] * 0.1)
    assert g["plateau"] == "no plateau yet: identity still improving"


def test_a_plateau_is_still_reported():
    flat = [{"iter": i, "src_loss": 0.1, "dst_loss": 0.1, "ms": 50.0} for i in range(100, 6001, 100)]
    records = flat + [ev(i, 0.6 + 0.001 * ((i // 500) % 2), 0.5) for i in range(500, 6001, 500)]
    msg = plateau_message(records)
    assert msg and "plateaued" in msg
    g = guidance_from_records(records)
    assert g["plateau"] == msg and g["identity_state"] == NOT_YET


# -- the trainer's held-back faces and the CLI summary ---------------------------------------------------

def test_eval_count_holds_back_up_to_twelve_but_never_more_than_a_tenth():
    from facecast.train.trainer import EVAL_FACES, PREVIEW_FACES, eval_count

    assert (PREVIEW_FACES, EVAL_FACES) == (4, 12)
    assert [eval_count(n) for n in (5, 30, 49, 80, 119, 120, 5000)] == [4, 4, 4, 8, 11, 12, 12]


def test_evaluators_score_twelve_held_back_faces_while_the_preview_shows_four(workspace):
    import torch

    from facecast.media.images import read_image
    from facecast.train.testdata import make_faceset
    from facecast.train.trainer import train

    torch.set_num_threads(2)
    make_faceset(workspace.aligned("src"), "einstein", 120, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 120, size=48, seed=1)
    seen = []

    def recorder(batch):
        seen.append((len(batch.src), len(batch.dst), len(batch.swap)))
        return {"faces": float(len(batch.swap))}

    res = train(workspace, "m", "tiny", overrides=dict(resolution=32, preview_every=1, eval_every=1),
                max_iters=2, evaluators=[recorder], quiet=True, precision="fp32")
    assert res.iteration == 2 and seen and all(s == (12, 12, 12) for s in seen)
    grid = read_image(workspace.model("m") / "previews" / "preview.png")
    assert grid.shape[:2] == (4 * 32, 5 * 32)  # four rows of src, src->src, dst, dst->dst, dst->src
    rows = [json.loads(x) for x in (workspace.model("m") / "history.jsonl").read_text().splitlines()]
    assert [r["eval"]["faces"] for r in rows if "eval" in r] == [12.0] * len(seen)


@pytest.mark.slow  # two CLI runs (~30 s under load)
def test_cli_train_summary_has_the_identity_verdict(workspace):
    from facecast.train.testdata import make_faceset
    from tests.conftest import run_cli

    make_faceset(workspace.aligned("src"), "einstein", 6, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 6, size=48, seed=1)
    code, out, err = run_cli("train", "-w", str(workspace.root), "--model", "c", "--preset", "tiny",
                             "--resolution", "32", "--set", "preview_every=0", "--set", "eval_every=1",
                             "--max-iters", "2", "--precision", "fp32", "--json")
    assert code == 0, err
    data = json.loads(out)
    # two evaluations ran (dlib identity on the held-back faces): too few for a trend, so no ETA
    assert data["identity_state"] == NOT_YET and data["identity_eta_s"] is None
    assert data["identity"].startswith("not yet recognisable: distance to source")
    assert "a trend needs 3" in data["identity"]
    assert "gain" not in data["plateau"]
    code, out, err = run_cli("train", "-w", str(workspace.root), "--model", "c", "--max-iters", "1",
                             "--precision", "fp32")
    assert code == 0, err
    assert "identity" in out and "not yet recognisable" in out and "plateau" in out
