"""Training across "nodes": two torchrun launchers (1 process each) rendezvous on 127.0.0.1 with the c10d
backend and train over gloo, exactly as two machines would (`--nnodes 2 --rdzv-endpoint HEAD:PORT`).

Both nodes see the workspace at the same path, as on machines sharing a filesystem (the DDP path needs
it: every rank loads the checkpoint rank 0 created, so all start from the same weights). Only global
rank 0 writes; the checkpoint equals a single-process run's, and nothing a second writer would leave
(temporary files, a pending save) is there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from facecast.train.testdata import make_faceset
from facecast.train.trainer import train

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).resolve().parents[1] / "src")
OPTS = dict(resolution=32, batch_size=4, preview_every=0, eval_every=0, optimizer="adamw", lr=5e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_like_one_process_and_write_once(workspace):
    torch.set_num_threads(1)
    make_faceset(workspace.aligned("src"), "einstein", 6, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 6, size=48, seed=1)
    single = train(workspace, "single", "tiny", overrides=OPTS, max_iters=3, quiet=True, precision="fp32")
    assert single.iteration == 3

    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sets = [x for k, v in OPTS.items() if k not in ("resolution", "batch_size") for x in ("--set", f"{k}={v}")]
    procs = []
    for rank in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               # both "nodes" resolve 127.0.0.1 as their own address: say which one hosts the store
               "--rdzv-id", "facecast-test", "--max-restarts", "0", "--rdzv-conf", f"is_host={rank == 0}",
               "-m", "facecast", "train", "-w", str(workspace.root), "--model", "multi", "--preset", "tiny",
               "--resolution", "32", "--batch-size", "4", "--max-iters", "3", "--precision", "fp32",
               "--device", "cpu", "--quiet", *sets]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, "\n".join(e[-2500:] for _, e in outs)

    folder = workspace.model("multi")
    leftovers = [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".partial")]
    assert not leftovers, leftovers
    assert not (folder / ".pending").exists()
    a = load_file(str(workspace.model("single") / "model.safetensors"))
    b = load_file(str(folder / "model.safetensors"))
    assert sorted(a) == sorted(b)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, f"two-node and single-process weights differ by {worst}"
    assert '"iteration": 3' in (folder / "state.json").read_text()
