"""Workspace page API: every stage's state, the next step, and stage buttons that start jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from facecast.errors import FacecastError
from facecast.studio import stages

router = APIRouter()


class RunRequest(BaseModel):
    action: str  # frames:src|frames:dst|extract:src|extract:dst|merge:<model>|video


@router.get("/api/workspace/status")
def status(request: Request) -> dict[str, Any]:
    return stages.workspace_status(request.app.state.workspace)


@router.get("/api/workspace/cluster")
def cluster(request: Request) -> dict[str, Any]:
    """The last `--engine ray` run of this workspace, as `facecast cluster status` shows it ({} when none).

    Read from the progress file the head writes into the shared workspace, so it needs no Ray here."""
    from facecast.cluster.shards import status as cluster_status

    return cluster_status(request.app.state.workspace.root)


def submit_action(app, action: str):
    """Start the job an action names (the same function as its CLI command); returns the Job."""
    ws, jobs = app.state.workspace, app.state.jobs
    kind, _, arg = action.partition(":")
    if kind in ("frames", "extract"):
        if arg not in ("src", "dst"):
            raise FacecastError(f"{kind} needs src or dst, not {arg!r}")
        make = stages.frames_job if kind == "frames" else stages.extract_job
        # side folders are written by frames/extract: one job per side at a time, all in the stage queue
        return jobs.submit(kind, make(ws, arg), exclusive_key=f"side:{arg}", title=f"{kind} {arg}",
                           queue="stage", interrupt="async")
    if kind == "merge":
        if not arg or not ws.model(arg).is_dir():
            raise FacecastError(f"no model {arg!r} in {ws.models}")
        return jobs.submit("merge", stages.merge_job(ws, arg), exclusive_key=f"merge:{arg}", title=f"merge {arg}",
                           queue="stage")
    if kind == "video":
        return jobs.submit("video", stages.video_job(ws), exclusive_key="video", title="make result.mp4",
                           queue="stage", interrupt="async")
    raise FacecastError(f"unknown action {action!r}")


@router.post("/api/workspace/run")
def run(request: Request, body: RunRequest) -> dict[str, Any]:
    return submit_action(request.app, body.action).to_dict()
