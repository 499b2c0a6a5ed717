"""JobRunner: exclusive keys, queues, the Ctrl-C stop path, shutdown, events."""

from __future__ import annotations

import threading
import time

import pytest

from facecast.errors import FacecastError
from facecast.studio.jobs import JobConflict, JobRunner


def _wait(runner, job, timeout=10.0):
    runner.wait(job.id, timeout)
    assert not job.active, job.to_dict()
    return job


def test_result_progress_and_logs():
    runner = JobRunner()

    def target(ctx):
        for i in range(5):
            ctx.progress(i + 1, 5, "step")
        ctx.log("hello")
        return {"answer": 42}

    job = _wait(runner, runner.submit("t", target))
    assert job.state == "done" and job.result == {"answer": 42} and (job.done, job.total) == (5, 5)
    assert "hello" in job.logs
    kinds = [k for _, k, _ in runner.events_since(0)]
    assert "job" in kinds and "log" in kinds


def test_exclusive_key_refuses_a_second_training_of_one_model():
    runner = JobRunner()
    gate = threading.Event()
    first = runner.submit("train", lambda ctx: gate.wait(10), exclusive_key="train:a", queue=None)
    with pytest.raises(JobConflict):
        runner.submit("train", lambda ctx: None, exclusive_key="train:a", queue=None)
    other = runner.submit("train", lambda ctx: None, exclusive_key="train:b", queue=None)  # another model: fine
    _wait(runner, other)
    gate.set()
    _wait(runner, first)
    again = _wait(runner, runner.submit("train", lambda ctx: None, exclusive_key="train:a", queue=None))
    assert again.state == "done"


def test_same_queue_runs_in_order():
    runner = JobRunner()
    order, gate = [], threading.Event()

    def slow(ctx):
        gate.wait(10)
        order.append("merge")

    a = runner.submit("merge", slow, queue="stage")
    b = runner.submit("extract", lambda ctx: order.append("extract"), queue="stage")
    time.sleep(0.3)
    assert b.state == "queued" and order == []
    gate.set()
    _wait(runner, a), _wait(runner, b)
    assert order == ["merge", "extract"]


def test_stop_takes_the_ctrl_c_path_and_keeps_work():
    runner = JobRunner()
    saved = []

    def target(ctx):
        i = 0
        try:
            while True:
                i += 1
                ctx.progress(i, None)
                time.sleep(0.01)
        except KeyboardInterrupt:  # what the trainer does on Ctrl-C: save, then re-raise
            saved.append(i)
            raise

    job = runner.submit("train", target, queue=None)
    time.sleep(0.2)
    runner.stop(job.id)
    _wait(runner, job)
    assert job.state == "stopped" and saved and saved[0] > 1


def test_async_stop_reaches_a_stage_without_a_callback():
    runner = JobRunner()
    cleaned = []

    def target(ctx):
        try:
            while True:  # a stage loop with no progress callback
                sum(range(1000))
        finally:
            cleaned.append(True)

    job = runner.submit("extract", target, interrupt="async")
    time.sleep(0.2)
    runner.stop(job.id)
    _wait(runner, job)
    assert job.state == "stopped" and cleaned == [True]


def test_queued_job_stopped_before_it_starts():
    runner = JobRunner()
    gate = threading.Event()
    a = runner.submit("merge", lambda ctx: gate.wait(10))
    ran = []
    b = runner.submit("merge", lambda ctx: ran.append(1))
    runner.stop(b.id)
    gate.set()
    _wait(runner, a), _wait(runner, b)
    assert b.state == "stopped" and not ran


def test_errors_become_failed_jobs_and_shutdown_stops_everything():
    runner = JobRunner()

    def bad(ctx):
        raise FacecastError("no consent record")

    job = _wait(runner, runner.submit("merge", bad))
    assert job.state == "failed" and "consent" in job.error

    def forever(ctx):
        while True:
            ctx.progress(0, None)
            time.sleep(0.01)

    running = runner.submit("train", forever, queue=None)
    time.sleep(0.1)
    runner.shutdown(timeout=10)
    assert running.state == "stopped"
    with pytest.raises(FacecastError):
        runner.submit("train", forever)


def test_closing_the_server_stops_jobs_cleanly(tmp_path):
    from fastapi.testclient import TestClient

    from facecast.studio.app import create_app
    from facecast.workspace import Workspace

    saved = []

    def training(ctx):
        try:
            while True:
                ctx.progress(1, None)
                time.sleep(0.01)
        except KeyboardInterrupt:
            saved.append("saved")  # the trainer's Ctrl-C save
            raise

    app = create_app(Workspace.open(tmp_path / "ws", create=True), "t" * 24)
    with TestClient(app):
        job = app.state.jobs.submit("train", training, queue=None)
        time.sleep(0.2)
        assert job.state == "running"
    assert job.state == "stopped" and saved == ["saved"]
