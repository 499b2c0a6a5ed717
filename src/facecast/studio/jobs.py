"""The studio's job runner: stage functions run as background jobs, one runner per workspace.

    job = runner.submit("merge", lambda ctx: merge(..., progress=ctx.progress_hook()),
                        exclusive_key="merge:alice", queue="stage", title="merge alice")

Why threads (not processes): every stage is a plain Python function whose heavy work happens in torch,
OpenCV or numpy with the GIL released, or in the stage's own worker processes; a thread calls exactly the
function the CLI calls, with no second entry point, shares the process's loaded models, and reports
progress through a callback instead of a pipe protocol.

Rules (issue 12):
- one runner per workspace; a job whose `exclusive_key` is already queued or running is refused
  (no two trainings of one model);
- jobs with the same `queue` name run one after another in submission order (merges and extractions
  queue: they would fight over the same 2 cores and the same folders); `queue=None` starts at once;
- a job lives in the server, not the page: a reload lists it again (`GET /api/jobs`) and re-attaches
  to its events;
- stop is the Ctrl-C path: `JobStopped` subclasses KeyboardInterrupt, so a stage's existing
  `except KeyboardInterrupt` / `finally` code (trainer saves, merge saves its session, extract saves its
  progress file) runs unchanged. It is raised from the stage's progress callback (`ctx.check_stop()`),
  or, for a stage without one, injected into the job's thread like a signal (`interrupt="async"`);
- closing the server stops every job that way and waits for them (work kept).
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facecast.errors import FacecastError

STATES = ("queued", "running", "done", "failed", "stopped")
LOG_LINES = 400
EVENT_BACKLOG = 2000
PROGRESS_MIN_INTERVAL_S = 0.2  # progress events per job at most ~5 per second (a step may take 1 ms)


class JobStopped(KeyboardInterrupt):
    """Raised inside a job when the user pressed Stop: the stage handles it exactly like Ctrl-C."""


class JobConflict(FacecastError):
    """A job with the same exclusive key is already queued or running (HTTP 409)."""


@dataclass
class Job:
    id: str
    kind: str
    title: str
    exclusive_key: str | None
    queue: str | None
    interrupt: str
    state: str = "queued"
    done: int = 0
    total: int | None = None
    message: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # live figures a page shows (e.g. ms/it)
    logs: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def to_dict(self, logs: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id, "kind": self.kind, "title": self.title, "state": self.state, "done": self.done,
            "total": self.total, "message": self.message, "created": self.created, "started": self.started,
            "finished": self.finished, "error": self.error, "result": _jsonable(self.result),
            "exclusive_key": self.exclusive_key, "queue": self.queue, "extra": dict(self.extra),
            "stopping": self.stop_event.is_set() and self.active,
        }
        if logs:
            out["logs"] = list(self.logs)
        return out


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


class JobContext:
    """What a job's target gets: progress and log reporting and the cooperative stop flag."""

    def __init__(self, runner: "JobRunner", job: Job) -> None:
        self._runner, self.job = runner, job
        self._last_progress = 0.0

    def progress(self, done: int, total: int | None, message: str = "") -> None:
        """Report progress (throttled); also the place a stop request turns into JobStopped."""
        job = self.job
        job.done, job.total = int(done), (None if total is None else int(total))
        if message:
            job.message = message
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_MIN_INTERVAL_S or (total is not None and done >= total):
            self._last_progress = now
            self._runner._emit("job", job.to_dict())
        self.check_stop()

    def log(self, line: str) -> None:
        line = str(line).rstrip()
        self.job.logs.append(line)
        self._runner._emit("log", {"id": self.job.id, "line": line})

    def should_stop(self) -> bool:
        return self.job.stop_event.is_set()

    def check_stop(self) -> None:
        if self.job.stop_event.is_set():
            raise JobStopped()

    def progress_hook(self, message: str = "") -> Callable[[int, int], None]:
        """A `progress(done, total)` callback for stage functions that take one (merge, train)."""
        return lambda done, total: self.progress(done, total, message)


class JobRunner:
    """Background jobs of one workspace (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._events: deque[tuple[int, str, Any]] = deque(maxlen=EVENT_BACKLOG)
        self._seq = 0
        self._changed = threading.Condition(self._lock)
        self._closed = False

    # -- submitting ---------------------------------------------------------------------------------
    def submit(self, kind: str, target: Callable[[JobContext], Any], *, exclusive_key: str | None = None,
               title: str = "", queue: str | None = "stage", interrupt: str = "callback") -> Job:
        """Queue `target(ctx)`; refuses (JobConflict) when `exclusive_key` is already queued or running.

        `interrupt`: "callback" (the target calls ctx.progress/check_stop often) or "async" (the stage has
        no callback: Stop raises JobStopped in its thread at the next Python instruction, like SIGINT)."""
        if interrupt not in ("callback", "async"):
            raise ValueError(f"interrupt={interrupt!r}")
        with self._lock:
            if self._closed:
                raise FacecastError("the studio is shutting down: no new jobs")
            if exclusive_key is not None:
                for other in self._jobs.values():
                    if other.active and other.exclusive_key == exclusive_key:
                        raise JobConflict(f"{other.title or other.kind} is already {other.state} "
                                          f"(job {other.id}): stop it first or wait for it")
            job = Job(str(next(self._ids)), kind, title or kind, exclusive_key, queue, interrupt)
            self._jobs[job.id] = job
            job.thread = threading.Thread(target=self._run, args=(job, target), name=f"job-{job.id}-{kind}",
                                          daemon=True)
            self._emit("job", job.to_dict())
            job.thread.start()
            return job

    def _wait_turn(self, job: Job) -> bool:
        """Block until every earlier job of the same queue has finished; False if stopped meanwhile."""
        if job.queue is None:
            return True
        with self._lock:
            while True:
                if job.stop_event.is_set():
                    return False
                ahead = [j for j in self._jobs.values()
                         if j.queue == job.queue and j.active and int(j.id) < int(job.id)]
                if not ahead:
                    return True
                self._changed.wait(0.5)

    def _run(self, job: Job, target: Callable[[JobContext], Any]) -> None:
        try:
            self._run_job(job, target)
        except KeyboardInterrupt:  # an async stop delivered just after the target returned
            pass
        if job.active:
            self._finish(job, "stopped", None, None)

    def _run_job(self, job: Job, target: Callable[[JobContext], Any]) -> None:
        ctx = JobContext(self, job)
        if not self._wait_turn(job):
            self._finish(job, "stopped", None, None)
            return
        with self._lock:
            job.state, job.started = "running", time.time()
            self._emit("job", job.to_dict())
        ctx.log(f"started: {job.title}")
        try:
            result = target(ctx)
        except KeyboardInterrupt:
            ctx.log("stopped: completed work is kept; run it again to resume")
            self._finish(job, "stopped", None, None)
        except FacecastError as err:
            ctx.log(f"error: {err}")
            self._finish(job, "failed", None, str(err))
        except BaseException as err:  # a bug: keep its traceback in the job's log, the server lives on
            for line in traceback.format_exc().splitlines()[-12:]:
                ctx.log(line)
            self._finish(job, "failed", None, f"{type(err).__name__}: {err}")
        else:
            ctx.log("done")
            self._finish(job, "done", result, None)

    def _finish(self, job: Job, state: str, result: Any, error: str | None) -> None:
        with self._lock:
            job.state, job.result, job.error, job.finished = state, result, error, time.time()
            self._emit("job", job.to_dict())

    # -- stopping -----------------------------------------------------------------------------------
    def stop(self, job_id: str) -> Job:
        job = self.get(job_id)
        if not job.active:
            return job
        job.stop_event.set()
        if job.state == "running" and job.interrupt == "async":
            _raise_in_thread(job.thread, JobStopped)
        with self._lock:
            self._emit("job", job.to_dict())
        return job

    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop every job (the Ctrl-C path) and wait for them to save their work."""
        with self._lock:
            self._closed = True
            jobs = [j for j in self._jobs.values() if j.active]
        for j in jobs:
            self.stop(j.id)
        deadline = time.monotonic() + timeout
        for j in jobs:
            if j.thread is not None:
                j.thread.join(max(0.0, deadline - time.monotonic()))

    # -- reading ------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(str(job_id))
        if job is None:
            raise KeyError(job_id)
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: int(j.id))

    def active(self, exclusive_key: str | None = None, kind: str | None = None) -> list[Job]:
        return [j for j in self.list() if j.active and (exclusive_key is None or j.exclusive_key == exclusive_key)
                and (kind is None or j.kind == kind)]

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        job = self.get(job_id)
        if job.thread is not None:
            job.thread.join(timeout)
        return job

    # -- events -------------------------------------------------------------------------------------
    def _emit(self, kind: str, data: Any) -> None:
        with self._lock:
            self._seq += 1
            self._events.append((self._seq, kind, data))
            self._changed.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    def events_since(self, seq: int) -> list[tuple[int, str, Any]]:
        with self._lock:
            return [e for e in self._events if e[0] > seq]


def _raise_in_thread(thread: threading.Thread | None, exc: type[BaseException]) -> None:
    """Deliver `exc` to `thread` at its next Python instruction (how SIGINT reaches the main thread)."""
    if thread is None or thread.ident is None or not thread.is_alive():
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc))
