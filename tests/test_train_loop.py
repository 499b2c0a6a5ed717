"""The one training-loop skeleton: stop rules, hooks, guard, Ctrl-C; and both trainers run on it."""

from __future__ import annotations

import time

import pytest
import torch

from facecast import trainloop
from facecast.errors import FacecastError
from facecast.trainloop import MIN_ITERS_IN_BUDGET, Budget, Display, Loop, StepOut

torch.set_num_threads(2)


def _loop(budget: Budget, start: int = 0, guard=None, step_s: float = 0.0, fail_at: int | None = None):
    calls = []

    def step():
        calls.append(len(calls))
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        if step_s:
            time.sleep(step_s)
        return StepOut({"loss": 1.0 / len(calls)}, 4, step_s or 0.001)

    return Loop(step, start, budget, Display("t", budget.target_iter, True), guard), calls


def test_stop_rules():
    loop, _ = _loop(Budget(target_iter=5), start=2)
    assert loop.run().stopped == "target_iter" and loop.stats.iteration == 5 and loop.stats.done == 3
    loop, _ = _loop(Budget(max_iters=4))
    assert loop.run().stopped == "max_iters" and loop.stats.done == 4
    loop, _ = _loop(Budget(max_seconds=0.2), step_s=0.03)
    t0 = time.monotonic()
    stats = loop.run()
    assert stats.stopped == "max_seconds" and time.monotonic() - t0 >= 0.2 and stats.done >= MIN_ITERS_IN_BUDGET
    loop, _ = _loop(Budget(max_seconds=0.0))
    assert loop.run().done == MIN_ITERS_IN_BUDGET
    loop, calls = _loop(Budget(max_iters=10), fail_at=3)
    stats = loop.run()
    assert stats.stopped == "interrupted" and stats.done == 2
    with pytest.raises(FacecastError, match="time budget"):
        Budget(max_seconds=-1)


def test_hooks_guard_and_timing():
    seen = {"every2": [], "minutes": [], "iters": []}
    rolled = []

    def guard(out):
        if out.losses["loss"] == 1.0 / 4 and not rolled:  # the 4th step "diverged": back to iteration 1
            rolled.append(True)
            return 1
        return None

    loop, _ = _loop(Budget(target_iter=6), guard=guard)
    loop.on_iteration = lambda it, out: seen["iters"].append(it)
    loop.every("every2", lambda it: seen["every2"].append(it), iters=2)
    loop.every("minutes", lambda it: seen["minutes"].append(it), minutes=1e-9)
    loop.every("off", lambda it: pytest.fail("a hook with no schedule never runs"))
    stats = loop.run()
    assert seen["iters"] == [1, 2, 3, 2, 3, 4, 5, 6]
    assert seen["every2"] == [2, 2, 4, 6] and seen["minutes"] == seen["iters"]
    assert stats.first.losses["loss"] == 1.0 and stats.ms_per_iter is not None and stats.done == 8


def test_both_trainers_run_on_the_skeleton(workspace, monkeypatch):
    from facecast.masks.synthfaces import write_faceset
    from facecast.masks.xseg.train import XSegTrainSettings, xseg_pretrain
    from facecast.train.testdata import make_faceset
    from facecast.train.trainer import train

    runs = []
    real = trainloop.Loop.run

    def spy(self):
        stats = real(self)
        runs.append((self.display.title, stats.stopped, stats.done))
        return stats

    monkeypatch.setattr(trainloop.Loop, "run", spy)
    make_faceset(workspace.aligned("src"), "einstein", 4, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 4, size=48, seed=1)
    train(workspace, "s", "tiny", overrides=dict(resolution=32, preview_every=0, eval_every=0), max_iters=2,
          quiet=True, precision="fp32")
    other = workspace.root.parent / "xs"
    from facecast.workspace import Workspace

    xws = Workspace.open(other, create=True)
    write_faceset(xws.aligned("src"), 6, size=64, seed=1)
    res = xseg_pretrain(xws, "xseg", preset="tiny", target_iter=3, quiet=True,
                        settings=XSegTrainSettings(batch_size=2, save_every=2, device="cpu", max_seconds=600))
    assert res["iterations"] == 3 and res["stopped"] == "target_iter"
    assert [(r[1], r[2]) for r in runs] == [("max_iters", 2), ("target_iter", 3)]
    assert runs[1][0].startswith("xseg pretrain")
