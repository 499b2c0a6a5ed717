"""Shards of a frame list and the progress files a cluster run leaves in the shared workspace.

Why files: the head and every worker see the same workspace path (a shared filesystem), so the head's
progress file (`WS/.facecast/cluster/progress.json`) and one record per shard written by the worker that
runs it (`WS/.facecast/cluster/<run>/shard-NNNN.json`: node, attempt, consent record, state) are enough
for `facecast cluster status` to show workers and shard progress without connecting to Ray.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from facecast.media.images import atomic_write_bytes

T = TypeVar("T")

CLUSTER_DIR = ".facecast/cluster"
PROGRESS_FILE = "progress.json"
# Frames per shard (merge; extract groups its jobs to about this many frames). Measured with
# bench/cluster.py (results/cluster.json, load 5-8 on 2 cores): a Ray task costs ~1.4 ms pipelined and a
# shard with its consent check and two records ~5 ms, but a shard is one call of the stage, and a merge
# call pays a whole prediction pass for its first frames (predict.py pads every CPU pass to 8 faces so a
# face's pixels do not depend on its batch): profiled, a 1-frame shard cost 0.23 s in one process, of
# which 0.14 s was that padded pass. 2 Ray workers merged 2.6 frames/s with 1-frame shards, 11 with 8 and
# 21 with 24. So: a multiple of 8, and large enough that the set-up is a few % of a shard, small enough
# that a lost node costs little and long clips split evenly: 32.
SHARD_FRAMES = 32


def split(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive runs of `size` items (the last one shorter); order is kept."""
    size = max(1, int(size))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def group_by_weight(jobs: Sequence[T], weights: Sequence[int], size: int) -> list[list[int]]:
    """Indices of `jobs` grouped into consecutive shards of about `size` weight (a job heavier than
    `size` is a shard of its own; jobs are never split)."""
    out: list[list[int]] = []
    cur: list[int] = []
    load = 0
    for i, w in enumerate(weights):
        if cur and load + w > size:
            out.append(cur)
            cur, load = [], 0
        cur.append(i)
        load += w
    if cur:
        out.append(cur)
    return out


def cluster_dir(ws_root: str | Path) -> Path:
    return Path(ws_root) / CLUSTER_DIR


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def shard_record_path(ws_root: str | Path, run_id: str, shard: int) -> Path:
    return cluster_dir(ws_root) / run_id / f"shard-{shard:04d}.json"


def write_shard_record(ws_root: str | Path, run_id: str, shard: int, **fields: Any) -> dict[str, Any]:
    """Written by the worker running a shard: where it runs, which attempt, its consent record, its state."""
    path = shard_record_path(ws_root, run_id, shard)
    rec = read_json(path)
    if fields.get("state") == "running":
        fields["attempt"] = int(rec.get("attempt", 0)) + 1
    rec.update(fields, node=socket.gethostname(), pid=os.getpid(), updated=time.time())
    _write_json(path, rec)
    return rec


class ProgressFile:
    """The head's view of a run: stage, workers, shards (pending/done/failed), frames done."""

    def __init__(self, ws_root: str | Path, run_id: str, stage: str, workers: list[dict[str, Any]], address: str):
        self.path = cluster_dir(ws_root) / PROGRESS_FILE
        self.data: dict[str, Any] = {
            "schema": "facecast.cluster_progress/1", "run": run_id, "stage": stage, "address": address,
            "started": time.time(), "updated": time.time(), "state": "running", "workers": workers,
            "shards": {},
        }

    def add(self, shard: int, frames: int) -> None:
        self.data["shards"][str(shard)] = {"frames": frames, "state": "pending"}

    def set(self, shard: int, state: str, **extra: Any) -> None:
        self.data["shards"][str(shard)].update(state=state, **extra)

    def finish(self, state: str) -> None:
        self.data["state"] = state
        self.save()

    def save(self) -> None:
        self.data["updated"] = time.time()
        _write_json(self.path, self.data)


def status(ws_root: str | Path) -> dict[str, Any]:
    """The last run's progress merged with the workers' shard records (running shards, attempts, nodes)."""
    data = read_json(cluster_dir(ws_root) / PROGRESS_FILE)
    if not data:
        return {}
    run = str(data.get("run", ""))
    shards = data.get("shards", {})
    for key, sh in shards.items():
        rec = read_json(shard_record_path(ws_root, run, int(key)))
        if rec:
            sh.update(node=rec.get("node"), attempt=rec.get("attempt"), consent=rec.get("consent"))
            if sh.get("state") == "pending" and rec.get("state") in ("running", "done"):
                sh["state"] = rec["state"]
    counts: dict[str, int] = {}
    for sh in shards.values():
        counts[sh.get("state", "?")] = counts.get(sh.get("state", "?"), 0) + 1
    data["counts"] = counts
    data["frames_done"] = sum(int(sh.get("frames", 0)) for sh in shards.values() if sh.get("state") == "done")
    data["frames_total"] = sum(int(sh.get("frames", 0)) for sh in shards.values())
    return data
