"""Checkpoints survive kill -9 mid-save; resume refuses changed architecture options; the guard rolls
back on NaN; bad input gives one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facecast.errors import FacecastError
from facecast.train import checkpoint, losses
from facecast.train.testdata import make_faceset
from facecast.train.trainer import train

torch.set_num_threads(2)
FAST = dict(resolution=32, preview_every=0, eval_every=0)


@pytest.fixture()
def ws(workspace):
    make_faceset(workspace.aligned("src"), "einstein", 6, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 6, size=48, seed=1)
    return workspace


def _weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def _same(a, b):
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from facecast.train import checkpoint
    from facecast.train.trainer import train
    phase = sys.argv[2]
    def hook(p):
        if p == phase:
            print("PHASE", p, flush=True)
            time.sleep(120)
    checkpoint._phase_hook = hook
    train(sys.argv[1], "m", overrides=dict(resolution=32, preview_every=0, eval_every=0), max_iters=2,
          quiet=True, precision="fp32")
""")


@pytest.mark.parametrize("phase", ["pending-written", "committed"])
def test_kill_9_during_save_leaves_last_completed_checkpoint(ws, tmp_path, phase):
    train(ws, "m", "tiny", overrides=FAST, max_iters=2, quiet=True, precision="fp32")
    model_dir = ws.model("m")
    before = _weights(model_dir)
    assert checkpoint.read_state(model_dir)["iteration"] == 2
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(ws.root), phase], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PHASE"), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    if phase == "pending-written":
        assert (model_dir / checkpoint.PENDING).is_dir()  # the half-done save is really there
        expected, expected_iter = before, 2
    else:
        assert (model_dir / checkpoint.COMMIT).is_dir()
        expected, expected_iter = load_file(str(model_dir / checkpoint.COMMIT / "model.safetensors")), 4
        assert not _same(expected, before)
    from facecast.train.predict import load_predictor

    pred = load_predictor(model_dir, device="cpu")  # recovers, then loads
    assert not (model_dir / checkpoint.PENDING).exists() and not (model_dir / checkpoint.COMMIT).exists()
    assert _same(_weights(model_dir), expected)
    assert checkpoint.read_state(model_dir)["iteration"] == expected_iter
    out = pred.predict(np.zeros((1, 32, 32, 3), np.uint8))
    assert out.face.shape == (1, 32, 32, 3)
    # and training resumes from there
    res = train(ws, "m", max_iters=1, quiet=True, precision="fp32")
    assert res.iteration == expected_iter + 1 and not res.created


def test_architecture_options_are_refused_on_resume(ws):
    train(ws, "m", "tiny", overrides=FAST, max_iters=1, quiet=True, precision="fp32")
    for change in ({"resolution": 64}, {"arch": "liae"}, {"ae_dims": 32}, {"face_type": "full"}):
        with pytest.raises(FacecastError, match="cannot change after creation"):
            train(ws, "m", overrides=change, max_iters=1, quiet=True)
    # training options may change; the same value for a fixed one is fine
    res = train(ws, "m", overrides={"batch_size": 2, "lr": 1e-4, "resolution": 32, "ct_mode": "rct"},
                max_iters=1, quiet=True, precision="fp32")
    assert res.iteration == 2 and res.batch_size == 2
    saved = json.loads((ws.model("m") / "options.json").read_text())
    assert saved["lr"] == 1e-4 and saved["resolution"] == 32


def test_incompatible_checkpoint_lists_mismatched_keys(ws):
    train(ws, "m", "tiny", overrides=FAST, max_iters=1, quiet=True, precision="fp32")
    path = ws.model("m") / "options.json"
    data = json.loads(path.read_text())
    data["d_dims"] = 5  # as if someone edited the file or copied weights from another model
    path.write_text(json.dumps(data))
    with pytest.raises(FacecastError, match=r"does not fit this architecture \(\d+ shape mismatch"):
        train(ws, "m", max_iters=1, quiet=True)


def test_injected_nan_rolls_back_and_lowers_lr(ws, monkeypatch):
    real = losses.reconstruction_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] == 7 else out  # iteration 4's src loss

    monkeypatch.setattr(losses, "reconstruction_loss", poisoned)
    res = train(ws, "m", "tiny", overrides=FAST, max_iters=6, quiet=True, precision="fp32")
    assert res.rollbacks == 1
    ev = [e for e in res.events if e["event"] == "rollback"]
    assert len(ev) == 1 and "nan" in ev[0]["message"] and "rolled back to iteration 0" in ev[0]["message"]
    state = checkpoint.read_state(ws.model("m"))
    assert state["lr_scale"] == 0.5 and state["rollbacks"] == 1
    assert all(torch.isfinite(t).all() for t in _weights(ws.model("m")).values())
    history = [json.loads(x) for x in (ws.model("m") / "history.jsonl").read_text().splitlines()]
    assert any(h.get("event") == "rollback" for h in history)


def test_empty_and_missing_facesets(workspace):
    with pytest.raises(FacecastError, match="no aligned faces"):
        train(workspace, "m", "tiny", max_iters=1, quiet=True)
    with pytest.raises(FacecastError, match="not found"):
        train(workspace, "m", "tiny", src_faceset=workspace.root / "nope", max_iters=1, quiet=True)
    assert not workspace.model("m").exists()


def test_other_face_type_is_refused(workspace):
    make_faceset(workspace.aligned("src"), "einstein", 3, face_type="full", size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 3, size=48)
    with pytest.raises(FacecastError, match="face type 'full' but the model trains 'whole_face'"):
        train(workspace, "m", "tiny", max_iters=1, quiet=True)


def test_backup_retention(tmp_path):
    d = tmp_path / "m"
    checkpoint.save_checkpoint(d, {"model.w": torch.ones(2)}, {}, {}, {"iteration": 1}, "{}")
    for it in range(1, 5):
        checkpoint.backup(d, it, keep=2)
    names = sorted(p.name for p in (d / "backups").iterdir())
    assert names == ["00000003", "00000004"]
    assert (d / "backups" / "00000004" / "model.safetensors").exists()


def test_cli_train_export_and_errors(ws, tmp_path):
    from tests.conftest import run_cli

    code, out, err = run_cli("train", "-w", str(ws.root), "--model", "c", "--preset", "tiny", "--resolution", "32",
                             "--max-iters", "2", "--precision", "fp32", "--set", "preview_every=1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["iteration"] == 2 and data["created"] is True
    assert (ws.model("c") / "previews" / "preview.png").exists() and (ws.model("c") / "previews" / "loss.png").exists()
    code, out, err = run_cli("train", "-w", str(ws.root), "--model", "c", "--resolution", "64", "--max-iters", "1")
    assert code != 0 and "cannot change after creation" in err and "Traceback" not in err
    code, out, err = run_cli("export", "-w", str(ws.root), "--model", "c", "--format", "onnx", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["max_abs_diff"] <= 1e-4 and os.path.exists(data["path"])
    code, out, err = run_cli("train-options", "--preset", "tiny", "--json")
    assert code == 0, err
    table = json.loads(out)
    assert table["resolution"] == {"value": 64, "kind": "fixed at creation"}
    assert table["lr"]["kind"] == "changeable on resume"
    code, _, err = run_cli("export", "-w", str(ws.root), "--model", "nope")
    assert code != 0 and "not found" in err and "Traceback" not in err


def test_evaluators_previews_interrupt_and_target_iter(ws):
    from facecast.train.trainer import EvalBatch

    seen = []

    def evaluator(batch: EvalBatch) -> dict[str, float]:
        seen.append(batch)
        for arr in (batch.src, batch.dst, batch.src_recon, batch.dst_recon, batch.swap):
            assert arr.dtype == np.uint8 and arr.shape[1:] == (32, 32, 3)
        if batch.iteration == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C here
        return {"swap_mean": float(batch.swap.mean())}

    opts = dict(resolution=32, eval_every=1, preview_every=2, write_preview_history=True)
    with pytest.raises(KeyboardInterrupt):
        train(ws, "m", "tiny", overrides=opts, max_iters=10, evaluators=[evaluator], quiet=True, precision="fp32")
    model_dir = ws.model("m")
    assert checkpoint.read_state(model_dir)["iteration"] == 3  # saved on Ctrl-C
    assert [b.iteration for b in seen] == [1, 2, 3]
    rows = [json.loads(x) for x in (model_dir / "history.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval" in r]
    assert [r["iter"] for r in evals] == [1, 2] and all("swap_mean" in r["eval"] for r in evals)
    assert (model_dir / "previews" / "history" / "00000002.png").exists()
    res = train(ws, "m", target_iter=5, quiet=True, precision="fp32")
    assert res.iteration == 5 and res.stopped == "target_iter"
    res = train(ws, "m", quiet=True, precision="fp32")  # target_iter is remembered in options.json
    assert res.iteration == 5 and res.stopped == "target_iter"


def test_pretrain_then_reuse_with_new_dst(ws, tmp_path):
    generic = tmp_path / "generic"
    make_faceset(generic, "einstein", 3, size=48, seed=4)
    make_faceset(generic, "takeo", 3, size=48, seed=5)
    res = train(ws, "p", "tiny", overrides=dict(resolution=32, pretrain=True), pretrain_faceset=generic,
                max_iters=2, quiet=True, precision="fp32")
    assert res.iteration == 2 and checkpoint.read_state(ws.model("p"))["pretrain"] is True
    res = train(ws, "p", overrides=dict(pretrain=False), max_iters=1, quiet=True, precision="fp32")
    assert any(e["event"] == "pretrain-finished" for e in res.events) and res.iteration == 1
    new_dst = tmp_path / "dst2"
    make_faceset(new_dst, "takeo", 3, size=48, seed=9)
    res = train(ws, "p", dst_faceset=new_dst, max_iters=1, quiet=True, precision="fp32")
    assert res.iteration == 2 and not res.created
