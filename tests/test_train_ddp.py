"""DDP with gloo and 2 CPU processes trains what one process trains on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from facecast.train.testdata import make_faceset
from facecast.train.trainer import train

OPTS = dict(resolution=32, batch_size=4, preview_every=0, eval_every=0, optimizer="adamw", lr=5e-4)


def test_ddp_two_processes_match_single_process(workspace):
    torch.set_num_threads(1)
    make_faceset(workspace.aligned("src"), "einstein", 6, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 6, size=48, seed=1)
    single = train(workspace, "single", "tiny", overrides=OPTS, max_iters=3, quiet=True, precision="fp32")
    assert single.iteration == 3
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    sets = [x for k, v in OPTS.items() if k not in ("resolution", "batch_size") for x in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
           "-m", "facecast", "train", "-w", str(workspace.root), "--model", "ddp", "--preset", "tiny",
           "--resolution", "32", "--batch-size", "4", "--max-iters", "3", "--precision", "fp32", "--device", "cpu",
           "--quiet", *sets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(workspace.model("single") / "model.safetensors"))
    b = load_file(str(workspace.model("ddp") / "model.safetensors"))
    assert sorted(a) == sorted(b)
    from facecast.train.archs.registry import build_model
    from facecast.train.options import preset

    torch.manual_seed(0)
    init = build_model(preset("tiny").with_overrides(OPTS)).state_dict()
    moved = max(float((a["model." + k] - v).abs().max()) for k, v in init.items())
    assert moved > 1e-3, "training did not move the weights: the comparison would be trivial"
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, f"DDP and single-process weights differ by {worst}"
    state = (workspace.model("ddp") / "state.json").read_text()
    assert '"iteration": 3' in state
    # only rank 0 wrote: no stray files from rank 1 (e.g. a second pending save)
    assert not (workspace.model("ddp") / ".pending").exists()
