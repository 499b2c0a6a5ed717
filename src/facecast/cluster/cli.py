"""`facecast cluster status`, and the `--engine/--address/--shard-size` options merge and extract share.

Importing this module never imports Ray: only `make_engine("ray", ...)` followed by a run does.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Optional

import typer

from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, summary
from facecast.errors import FacecastError

EngineOpt = Annotated[Optional[str], typer.Option("--engine", help="ray: shard the frames over a Ray cluster (pip install -e \".[cluster]\"); default: this machine.")]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (HEAD:6379 or auto); default: start Ray on this machine.")]
ShardSizeOpt = Annotated[int, typer.Option("--shard-size", help="Frames per cluster task (--engine ray).")]


def make_engine(engine: str | None, address: str | None, shard_size: int = 0) -> Any:
    """None without --engine (nothing imported); a RayEngine for --engine ray."""
    if engine is None:
        if address or shard_size:
            raise FacecastError("--address and --shard-size need --engine ray")
        return None
    if engine != "ray":
        raise FacecastError(f"--engine {engine}: the only engine is ray")
    if shard_size < 0:
        raise FacecastError(f"--shard-size {shard_size}: use 1 or more")
    from facecast.cluster.engine import RayEngine

    return RayEngine(address=address, shard_size=shard_size or None)


def _when(ts: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return "?"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Runs sharded over a Ray cluster (--engine ray): progress and workers.", no_args_is_help=True)
    app.add_typer(group, name="cluster")

    @group.command("status")
    def status_cmd(workspace: WorkspaceOpt, quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
        """The last cluster run of this workspace: stage, workers, shards done/running/failed, frames done."""
        from facecast.cluster.shards import status
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace)
        data = status(ws.root)
        if not data:
            raise FacecastError(f"no cluster run recorded in {ws.root}: run a stage with --engine ray first")
        if as_json:
            summary(data, True, quiet, title="cluster")
            return
        shown = {
            "run": data.get("run"), "stage": data.get("stage"), "state": data.get("state"),
            "address": data.get("address"), "started": _when(data.get("started")), "updated": _when(data.get("updated")),
            "workers": ", ".join(f"{w.get('node')} {w.get('id')} cpus={w.get('cpus')}{'' if w.get('alive') else ' (dead)'}"
                                 for w in data.get("workers", [])),
            "shards": ", ".join(f"{k} {v}" for k, v in sorted(data.get("counts", {}).items())),
            "frames": f"{data.get('frames_done')}/{data.get('frames_total')}",
            "retried shards": sum(1 for s in data.get("shards", {}).values() if int(s.get("attempt") or 1) > 1),
        }
        summary(shown, False, quiet, title="cluster")
