"""The Ray engine: shards of work as Ray tasks, retried when a worker or node dies.

    engine = RayEngine(address="auto")          # or None: a local Ray instance on this machine
    for job, result in engine.mapper(ws, "extract-dst")(fn, jobs, progress, task): ...

Why tasks (not a home-made scheduler): Ray re-runs a task whose worker process or node died
(`max_retries`), spreads tasks over nodes and reuses worker processes between tasks, so models a stage
loads into module-level caches (the detectors, the content gate, `cached_model` below) load once per
worker process. Application errors (a refused frame, a missing consent) are not retried
(`retry_exceptions=False`): they would fail again, and they must stop the run.

The rules on every worker: the head checks consent once (`consent_token`) and each shard carries the
token; `run_shard` checks it again on the worker against the workspace's signed consent log before it
reads a frame (a shard without a token, or whose record was revoked since, is refused) and records it in
the shard's record. The content gate and the watermark live inside the stage functions the shards call.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from facecast.cluster import shards as sh
from facecast.errors import ConsentError, FacecastError

MAX_RETRIES = 3
CONSENT_STAGES = ("merge", "extract-src")


def ray_module():
    """Import Ray (only ever called on the `--engine ray` path)."""
    try:
        import ray
    except ImportError:
        raise FacecastError('--engine ray needs the cluster extra: pip install -e ".[cluster]"') from None
    return ray


# -- consent ------------------------------------------------------------------------------------------
def consent_token(ws, stage: str) -> dict[str, Any]:
    """Checked once at the head: the consent record every shard of this run carries."""
    if stage not in CONSENT_STAGES:
        return {"required": False, "stage": stage}
    from facecast.provenance import require_consent

    rec = require_consent(ws)
    return {"required": True, "stage": stage, "record": rec.id, "identity": rec.identity}


def check_shard_consent(ws, token: Any) -> dict[str, Any]:
    """On the worker, before any frame is read: the shard must carry the head's consent token and, where
    the stage needs consent, that record must still be valid in the shared workspace (raises ConsentError)."""
    if not isinstance(token, dict) or "required" not in token:
        raise ConsentError("shard refused: it carries no consent record from the head (start it with the facecast head)")
    if token["required"]:
        from facecast.provenance import require_consent

        rec = require_consent(ws)  # the signed log, read on this worker
        if rec.id != token.get("record"):
            raise ConsentError(f"shard refused: consent record {token.get('record')!r} of the head is not the valid record {rec.id!r}")
    return token


# -- worker side ----------------------------------------------------------------------------------------
_MODELS: dict[tuple, Any] = {}


def cached_model(spec: tuple[str, dict[str, Any]] | None) -> Any:
    """Build `module:callable(**kwargs)` once per worker process (a predictor, a segmenter)."""
    if spec is None:
        return None
    target, kwargs = spec
    key = (target, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _MODELS:
        mod, _, name = target.partition(":")
        _MODELS[key] = getattr(importlib.import_module(mod), name)(**kwargs)
    return _MODELS[key]


def run_shard(ws_root: str, run_id: str, shard: int, fn: Callable, jobs: list[tuple], token: Any) -> list[Any]:
    """One shard on a worker: consent, a record in the shared workspace, then the stage's own function."""
    from facecast.workspace import Workspace

    ws = Workspace.open(ws_root)
    try:
        token = check_shard_consent(ws, token)
    except ConsentError as err:
        sh.write_shard_record(ws_root, run_id, shard, state="refused", reason=str(err), consent=None)
        raise
    t0 = time.perf_counter()
    import sys

    ray = sys.modules.get("ray")
    node_id = ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
    sh.write_shard_record(ws_root, run_id, shard, state="running", consent=token, jobs=len(jobs), ray_node=node_id)
    results = [fn(*job) for job in jobs]
    sh.write_shard_record(ws_root, run_id, shard, state="done", seconds=round(time.perf_counter() - t0, 3))
    return results


# -- head side ------------------------------------------------------------------------------------------
class RayEngine:
    """Connects to a Ray cluster (`address`, e.g. "auto" or "HEAD:6379"; None starts a local one) and runs
    shards there. `shard_size`: frames per shard (shards.SHARD_FRAMES by default)."""

    def __init__(self, address: str | None = None, shard_size: int | None = None, max_retries: int = MAX_RETRIES,
                 num_cpus: float = 1.0):
        self.address = address
        self.shard_size = int(shard_size or sh.SHARD_FRAMES)
        if self.shard_size < 1:
            raise FacecastError(f"--shard-size {shard_size}: use 1 or more")
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self._remote = None

    def _check_reachable(self) -> None:
        """Fail in seconds with one line when HOST:PORT does not answer (ray.init would wait minutes)."""
        import socket

        host, _, port = (self.address or "").rpartition(":")
        if not host or not port.isdigit() or self.address.startswith(("ray://", "auto")):
            return
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as err:
            raise FacecastError(f"--address {self.address}: no Ray head answers there ({err.strerror or err}); "
                                f"start one with `ray start --head --port {port}`") from None

    def connect(self):
        ray = ray_module()
        if not ray.is_initialized():
            self._check_reachable()
            try:
                # workers import facecast themselves: install it on every node (a local instance's
                # workers inherit this process's environment, PYTHONPATH included)
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as err:
                raise FacecastError(f"--address {self.address}: cannot reach a Ray cluster ({err})") from None
        if self._remote is None:
            self._remote = ray.remote(run_shard)
        return ray

    def workers(self) -> list[dict[str, Any]]:
        ray = self.connect()
        return [{"node": n.get("NodeManagerAddress"), "id": n.get("NodeID", "")[:12], "alive": bool(n.get("Alive")),
                 "cpus": n.get("Resources", {}).get("CPU", 0)} for n in ray.nodes()]

    def run(self, ws, stage: str, fn: Callable, shard_jobs: Sequence[list[tuple]], weights: Sequence[int],
            on_done: Callable[[int, list[Any]], None] | None = None, token: dict[str, Any] | None = None
            ) -> Iterator[tuple[int, list[Any]]]:
        """Run `fn(*job)` for every job of every shard on the cluster; yield (shard index, results) as
        shards finish. Writes the progress file; a failed shard (after Ray's retries) stops the run."""
        ray = self.connect()
        token = consent_token(ws, stage) if token is None else token
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        prog = sh.ProgressFile(ws.root, run_id, stage, self.workers(), str(self.address or "local"))
        opts = dict(num_cpus=self.num_cpus, max_retries=self.max_retries, retry_exceptions=False,
                    scheduling_strategy="SPREAD")
        refs = {}
        for i, jobs in enumerate(shard_jobs):
            prog.add(i, weights[i])
            refs[self._remote.options(**opts).remote(str(ws.root), run_id, i, fn, list(jobs), token)] = i
        prog.save()
        try:
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                i = refs[ready[0]]
                try:
                    results = ray.get(ready[0])
                except ray.exceptions.RayTaskError as err:
                    prog.set(i, "failed")
                    cause = err.as_instanceof_cause() if hasattr(err, "as_instanceof_cause") else err
                    if isinstance(cause, FacecastError):
                        raise type(cause)(str(cause).splitlines()[0] if str(cause) else repr(cause)) from None
                    raise
                prog.set(i, "done")
                prog.save()
                yield i, results
            prog.finish("done")
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            prog.finish("failed")
            raise

    def mapper(self, ws, stage: str) -> Callable:
        """A drop-in for a stage's `_map(fn, jobs, progress, task, advance)`: jobs grouped into shards of
        about `shard_size` frames (`advance(job[0])` frames per job; 1 without it), yielded as they finish."""
        token = consent_token(ws, stage)  # once at the head, before any shard is scheduled

        def run(fn, jobs, pool=None, progress=None, task=None, advance=None):  # pool: unused (the cluster is the pool)
            if not jobs:
                return
            weights = [advance(job[0]) if advance else 1 for job in jobs]
            groups = sh.group_by_weight(jobs, weights, self.shard_size)
            for i, results in self.run(ws, stage, fn, [[jobs[k] for k in g] for g in groups],
                                       [sum(weights[k] for k in g) for g in groups], token=token):
                for k, res in zip(groups[i], results):
                    yield jobs[k], res
                if progress is not None:
                    progress.advance(task, sum(weights[k] for k in groups[i]))

        return run

    def shutdown(self) -> None:
        """Disconnect this driver (a cluster started with `ray start` keeps running)."""
        import sys

        if "ray" in sys.modules:
            ray = sys.modules["ray"]
            if ray.is_initialized():
                ray.shutdown()
