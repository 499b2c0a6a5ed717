"""Precision is measured robustly once, stored with the model, kept on resume, re-measured only when asked."""

from __future__ import annotations


import pytest
import torch
from safetensors.torch import load_file

from facecast import compute
from facecast.compute import compare_precisions
from facecast.doctor import doctor
from facecast.train import checkpoint
from facecast.train import precision as precision_rules
from facecast.train.testdata import make_faceset
from facecast.train.trainer import train

torch.set_num_threads(2)
FAST = dict(resolution=32, preview_every=0, eval_every=0)


@pytest.fixture()
def ws(workspace):
    make_faceset(workspace.aligned("src"), "einstein", 4, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 4, size=48, seed=1)
    return workspace


class _Clock:
    """A clock that only the fake steps move: the timing rules are tested exactly, whatever the load."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


@pytest.fixture()
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(compute, "time", c)  # compare_precisions times its steps with time.perf_counter
    return c


def _sleeper(clock: _Clock, fp32_s: float, bf16_s: float, spikes: dict[int, float] | None = None):
    calls = []

    def step(bf16: bool) -> None:
        calls.append(bf16)
        clock.t += (spikes or {}).get(len(calls), bf16_s if bf16 else fp32_s)

    return step, calls


def test_bf16_needs_a_clear_margin_and_a_load_spike_does_not_decide(clock):
    step, calls = _sleeper(clock, 0.02, 0.01)
    use, why, ratio = compare_precisions(step, repeats=3)
    assert use and ratio > 1.5 and "median" in why
    assert calls[2:] == [False, True, True, False, False, True]  # interleaved, order alternating
    step, _ = _sleeper(clock, 0.02, 0.0175)  # 1.14x: inside the noise, keep fp32
    use, why, ratio = compare_precisions(step, repeats=3)
    assert not use and ratio < 1.2 and "1.2x" in why
    # a 0.3 s stall during one bf16 run (the machine got busy) does not flip a clear bf16 win
    step, _ = _sleeper(clock, 0.03, 0.01, spikes={4: 0.3})
    assert compare_precisions(step, repeats=3)[0]


def test_far_slower_bf16_stops_the_measurement_early(clock):
    step, calls = _sleeper(clock, 0.005, 0.05)
    use, why, _ = compare_precisions(step, repeats=3)
    assert not use and len(calls) == 2 and "warm-up" in why


def test_resumed_model_keeps_its_stored_precision(ws, monkeypatch):
    probes = []

    def probe(answer: bool, why: str):
        def fake(step, repeats=3, margin=1.2):
            probes.append(answer)
            return answer, why, 2.0 if answer else 0.5
        return fake

    monkeypatch.setattr(precision_rules, "compare_precisions", probe(True, "fake: bf16 2x faster"))
    res = train(ws, "p", "tiny", overrides=FAST, max_iters=1, quiet=True)
    assert res.precision == "bfloat16" and "fake: bf16 2x faster" in res.precision_reason and probes == [True]
    stored = checkpoint.stored_precision(ws.model("p"))
    assert stored.precision == "bfloat16" and stored.device_type == "cpu" and stored.ratio == 2.0
    # the probe would now answer fp32 (a loaded machine): the resumed model is not re-measured
    monkeypatch.setattr(precision_rules, "compare_precisions", probe(False, "fake: bf16 slower"))
    res = train(ws, "p", max_iters=1, quiet=True)
    assert res.precision == "bfloat16" and "fake: bf16 2x faster" in res.precision_reason and probes == [True]
    assert "p" in doctor(workspace=ws.root).model_precisions
    assert doctor(workspace=ws.root).model_precisions["p"].startswith("bfloat16 on cpu: measured")
    # only when asked
    res = train(ws, "p", max_iters=1, quiet=True, remeasure_precision=True)
    assert res.precision == "fp32" and "fake: bf16 slower" in res.precision_reason and probes == [True, False]
    assert checkpoint.stored_precision(ws.model("p")).precision == "fp32"
    res = train(ws, "p", max_iters=1, quiet=True, precision="bf16")  # a named precision is stored too
    assert res.precision == "bfloat16" and res.precision_reason.startswith("requested")
    res = train(ws, "p", max_iters=1, quiet=True)
    assert res.precision == "bfloat16" and len(probes) == 2


def test_measurement_runs_real_steps_and_leaves_training_untouched(ws, monkeypatch):
    real = compute.compare_precisions
    seen = []

    def spy(step, repeats=3, margin=1.2):
        out = real(step, repeats=1, margin=margin)
        seen.append(out)
        return False, out[1], out[2]  # the test compares against an fp32 run

    monkeypatch.setattr(precision_rules, "compare_precisions", spy)
    train(ws, "measured", "tiny", overrides=FAST, max_iters=2, quiet=True)
    assert seen and "fp32" in seen[0][1] and "bf16" in seen[0][1]
    train(ws, "plain", "tiny", overrides=FAST, max_iters=2, quiet=True, precision="fp32")
    a = load_file(str(ws.model("measured") / "model.safetensors"))
    b = load_file(str(ws.model("plain") / "model.safetensors"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_precision_is_one_line(ws):
    from facecast.errors import FacecastError

    with pytest.raises(FacecastError, match="choose auto, fp32, bf16 or fp16"):
        train(ws, "x", "tiny", overrides=FAST, max_iters=1, quiet=True, precision="int8")
