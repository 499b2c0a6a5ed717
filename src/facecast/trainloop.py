"""One training-loop skeleton for every model family (SAEHD swap models, XSeg segmenters).

Why one: the two loops had grown their own save, backup, preview, guard, display and stop rules, and
copies drift. The skeleton owns what every loop does the same way - when to stop (target iteration,
iterations this run, a wall-time budget, Ctrl-C), counting and timing steps, the live status line and
running scheduled hooks - and a family supplies only its step and its hooks:

    loop = Loop(step, start_iter, Budget(target_iter=..., max_seconds=...), display, guard)
    loop.every("preview", write_preview, iters=200)
    loop.every("save", save, minutes=25)
    stats = loop.run()          # stats.stopped: "target_iter" | "max_iters" | "max_seconds" | "interrupted"

Why here, beside `modelstore.py`, and not in `train/`: the XSeg trainer (masks/) uses it too, and a stage
may not import another stage. It knows nothing about models; a step is any callable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facecast.errors import FacecastError

# A time budget still runs this many iterations: the first pays one-off costs (allocations, worker
# start), the second gives the speed figure, so even a budget spent on set-up ends in a measured save.
MIN_ITERS_IN_BUDGET = 2


@dataclass
class StepOut:
    """What one training step reports: losses to show and log, its batch size and timings."""

    losses: dict[str, float]
    samples: int
    seconds: float  # the whole step, data wait included
    wait: float = 0.0  # of which: waiting for the batch


@dataclass
class Budget:
    """When a run stops: the model's total (`target_iter`, 0 = never), iterations in this run, or a
    wall-time budget counted from `started` (the call's start, so set-up counts)."""

    target_iter: int = 0
    max_iters: int | None = None
    max_seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.max_seconds is not None and self.max_seconds < 0:
            raise FacecastError(f"time budget {self.max_seconds} s must be >= 0")
        if self.target_iter < 0:
            raise FacecastError(f"target iteration {self.target_iter} must be >= 0")

    def stop_reason(self, iteration: int, done: int) -> str:
        if self.target_iter and iteration >= self.target_iter:
            return "target_iter"
        if self.max_iters is not None and done >= self.max_iters:
            return "max_iters"
        if (self.max_seconds is not None and done >= MIN_ITERS_IN_BUDGET
                and time.monotonic() - self.started >= self.max_seconds):
            return "max_seconds"
        return ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Hook:
    """A job run after a counted step every `iters` iterations and/or every `minutes` minutes."""

    name: str
    fn: Callable[[int], Any]
    iters: int = 0
    minutes: float = 0.0
    last: float = field(default_factory=time.monotonic)

    def due(self, iteration: int, now: float) -> bool:
        by_iter = bool(self.iters) and iteration % self.iters == 0
        by_time = bool(self.minutes) and now - self.last >= self.minutes * 60
        return by_iter or by_time


@dataclass
class LoopStats:
    stopped: str = ""
    iteration: int = 0
    done: int = 0
    first: StepOut | None = None
    last: StepOut | None = None
    step_s: float = 0.0  # steps after the first (the first pays one-off costs)
    wait_s: float = 0.0

    @property
    def ms_per_iter(self) -> float | None:
        timed = max(0, self.done - 1)
        return self.step_s / timed * 1000 if timed and self.step_s > 0 else None

    def samples_per_s(self, batch: int) -> float | None:
        timed = max(0, self.done - 1)
        return timed * batch / self.step_s if timed and self.step_s > 0 else None

    @property
    def data_wait_share(self) -> float | None:
        return self.wait_s / self.step_s if self.step_s > 0 else None


class Display:
    """The live status line of every trainer: iteration (of the target), ms/it, samples/s and losses,
    on stderr; nothing when quiet."""

    def __init__(self, title: str, target: int, quiet: bool) -> None:
        from facecast.console import make_progress

        self.title, self.quiet = title, quiet
        self.progress = make_progress(quiet)
        self.target = target or None
        self.task = None
        self.last = 0.0

    def __enter__(self) -> "Display":
        self.progress.__enter__()
        self.task = self.progress.add_task(self.title, total=self.target)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, iteration: int, out: StepOut, extra: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if self.quiet or now - self.last < 0.25:
            return
        self.last = now
        ms = out.seconds * 1000
        parts = [f"{self.title} {iteration}", f"{ms:.0f} ms/it", f"{out.samples / max(out.seconds, 1e-9):.1f} samples/s"]
        parts += [f"{k} {v:.4f}" for k, v in out.losses.items()]
        parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in (extra or {}).items()]
        self.progress.update(self.task, completed=iteration, description=" | ".join(parts))


class Loop:
    """The skeleton: `step()` trains once and returns a StepOut (or None when nothing was trained, e.g. a
    retry at a smaller batch); `guard(out)` may undo a step and return the iteration it went back to."""

    def __init__(self, step: Callable[[], StepOut | None], start_iter: int, budget: Budget, display: Display,
                 guard: Callable[[StepOut], int | None] | None = None,
                 on_iteration: Callable[[int, StepOut], None] | None = None) -> None:
        self.step, self.budget, self.display, self.guard = step, budget, display, guard
        self.on_iteration = on_iteration
        self.hooks: list[Hook] = []
        self.stats = LoopStats(iteration=start_iter)
        self.status: dict[str, Any] = {}  # extra fields for the status line (e.g. held-out IoU)

    def every(self, name: str, fn: Callable[[int], Any], iters: int = 0, minutes: float = 0.0) -> Hook:
        hook = Hook(name, fn, iters, minutes)
        if iters or minutes:
            self.hooks.append(hook)
        return hook

    def run(self) -> LoopStats:
        """Train until the budget says stop or Ctrl-C; never raises KeyboardInterrupt (stopped says it)."""
        s = self.stats
        try:
            with self.display:
                while not (stop := self.budget.stop_reason(s.iteration, s.done)):
                    self._one()
                s.stopped = stop
        except KeyboardInterrupt:
            s.stopped = "interrupted"
        return s

    def _one(self) -> None:
        s = self.stats
        out = self.step()
        if out is None:
            return
        back = self.guard(out) if self.guard is not None else None
        if back is not None:
            s.iteration = back
            return
        if s.first is None:
            s.first = out
        else:
            s.step_s += out.seconds
            s.wait_s += out.wait
        s.iteration += 1
        s.done += 1
        s.last = out
        if self.on_iteration is not None:
            self.on_iteration(s.iteration, out)
        self.display.update(s.iteration, out, self.status)
        now = time.monotonic()
        for hook in self.hooks:
            if hook.due(s.iteration, now):
                hook.fn(s.iteration)
                hook.last = time.monotonic()

    def reset_timer(self, name: str) -> None:
        """Restart a hook's minutes clock (a backup also counts as a save)."""
        for hook in self.hooks:
            if hook.name == name:
                hook.last = time.monotonic()
