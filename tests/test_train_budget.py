"""A time budget: one training session (set-up once) trains until the budget is spent."""

from __future__ import annotations

import json
import time

import pytest
import torch

from facecast.errors import FacecastError
from facecast.train import trainer
from facecast.train.testdata import make_faceset
from facecast.train.trainer import MIN_ITERS_IN_BUDGET, train
from tests.conftest import run_cli

torch.set_num_threads(2)
FAST = dict(resolution=32, preview_every=0, eval_every=0)


@pytest.fixture()
def ws(workspace):
    make_faceset(workspace.aligned("src"), "einstein", 6, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 6, size=48, seed=1)
    return workspace


def test_max_seconds_trains_for_the_whole_budget_in_one_session(ws):
    t0 = time.monotonic()
    res = train(ws, "b", "tiny", overrides=FAST, max_seconds=3.0, quiet=True, precision="fp32")
    wall = time.monotonic() - t0
    assert res.stopped == "max_seconds"
    assert res.seconds >= 3.0  # it did not stop early
    assert res.trained_now >= MIN_ITERS_IN_BUDGET and res.iteration == res.trained_now
    # stops at the first iteration boundary past the budget: the overshoot is one step plus the final save
    step_s = (res.ms_per_iter or 1000.0) / 1000
    assert wall < 3.0 + 5 * step_s + 30
    again = train(ws, "b", max_seconds=0.0, quiet=True, precision="fp32")
    assert again.trained_now == MIN_ITERS_IN_BUDGET and again.iteration == res.iteration + MIN_ITERS_IN_BUDGET


def test_negative_budget_is_one_line(ws):
    with pytest.raises(FacecastError, match="time budget"):
        train(ws, "b", "tiny", overrides=FAST, max_seconds=-1, quiet=True)


def test_cli_max_minutes_prints_the_setup_once(ws):
    code, out, err = run_cli("train", "-w", str(ws.root), "--model", "c", "--preset", "tiny", "--resolution", "32",
                             "--set", "preview_every=0", "--set", "eval_every=0", "--max-minutes", "0.05",
                             "--precision", "fp32", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["stopped"] == "max_seconds" and data["seconds"] >= 3.0 and data["trained_now"] >= 2
    code, out, err = run_cli("train", "-w", str(ws.root), "--model", "c", "--max-minutes", "0.05",
                             "--precision", "fp32")
    assert code == 0, err
    assert err.count("model c:") == 1 and err.count("device cpu") == 1  # set-up block printed once


def test_demo_trains_its_budget_in_one_call(workspace, monkeypatch):
    from facecast.demo import material, run

    for side, photo in (("src", "einstein"), ("dst", "takeo")):
        make_faceset(workspace.aligned(side), photo, 4, face_type=material.FACE_TYPE, size=64)
    calls = []
    real = trainer.train

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train", counting)
    monkeypatch.setitem(run.MODEL_OPTIONS, "batch_size", 2)
    total, ran = run.train_for(workspace, 2.0, quiet=True, create=True)
    assert len(calls) == 1 and calls[0]["max_seconds"] == 2.0
    assert total == ran >= MIN_ITERS_IN_BUDGET
