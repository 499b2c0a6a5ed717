"""Shared CLI plumbing: common options, progress bars, one-line errors, JSON summaries.

Every stage's command module uses these so `--quiet`, `--json` and `--workspace` mean the same
everywhere and long loops look the same.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
__all__ = ["native_quiet", "VERBOSE_ENV", "escape", "err_console", "out_console", "info", "error_line", "summary", "track", "make_progress"]

# Markup off by default: most lines carry user data (file names like `take [final].mp4`) that rich
# would read as style tags, eat or crash on. Lines with intended styling say `markup=True` or use Text.
err_console = Console(stderr=True, markup=False)
out_console = Console(markup=False)

WorkspaceOpt = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="Workspace folder (see `facecast workspace init`)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary.")]


def track(
    items: Iterable[T], total: int | None = None, description: str = "", quiet: bool = False
) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (nothing when quiet or not a terminal-less run)."""
    if quiet:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    progress = Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def make_progress(quiet: bool = False) -> Progress:
    """A Progress for loops that are not a simple iteration (workers, nested stages)."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet,
    )


def summary(data: dict[str, Any], as_json: bool, quiet: bool = False, title: str = "") -> None:
    """Print a result summary: JSON on stdout with --json, else a short table unless quiet."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if quiet:
        return
    from rich.table import Table

    table = Table(title=title or None, show_header=False)
    for key, value in data.items():
        table.add_row(str(key), _cell(value))
    out_console.print(table)


def _cell(value: Any) -> str:
    """A table cell as a person reads it: no `None`, `[]`, list brackets or 16-digit floats (JSON keeps them)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return "-"
        shown = ", ".join(_cell(v) for v in value[:8])
        return shown + (f", ... ({len(value)} in all)" if len(value) > 8 else "")
    if isinstance(value, tuple) and len(value) > 8:
        return ", ".join(map(str, value[:8])) + f", ... ({len(value)} in all)"
    return str(value)


def info(message: str, quiet: bool = False, *, markup: bool = False) -> None:
    """A status line on stderr (so stdout stays clean for --json).

    Printed literally unless `markup=True`; then any user data inside must go through `escape` first.
    """
    if not quiet:
        err_console.print(message, markup=markup, highlight=False)


def error_line(message: str) -> Text:
    """`error: MESSAGE` with the message printed literally (file names may hold `[...]`)."""
    return Text.assemble(("error:", "red"), " ", message)


VERBOSE_ENV = "FACECAST_VERBOSE"  # set by `facecast --verbose`; worker processes inherit it
_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: tuple[int, Any] | None = None


@contextmanager
def native_quiet() -> Iterator[None]:
    """Silence what native libraries (mediapipe, TFLite, absl, glog) write to file descriptor 2.

    Their warnings (`All log messages before absl::InitializeLog()`, `inference_feedback_manager`) come
    from C++ and bypass Python's logging, so only redirecting the descriptor stops them. Python's own
    stderr (our progress bars and error lines) keeps writing to the real terminal through a duplicate of
    the descriptor. Re-entrant and thread-safe (only the outermost use redirects); `facecast --verbose`
    (FACECAST_VERBOSE=1) turns it off to show everything.
    """
    global _quiet_depth, _quiet_saved
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = _redirect_fd2()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                _restore_fd2(*_quiet_saved)
                _quiet_saved = None


def _redirect_fd2() -> tuple[int, Any] | None:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return None  # no real descriptor 2 (embedded, pytest capture without fd): nothing to do
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None) or "utf-8",
                           errors="backslashreplace", closefd=True)
    return saved, python_stderr


def _restore_fd2(saved: int, python_stderr: Any) -> None:
    try:
        sys.stderr.flush()
        sys.stderr.close()
    finally:
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
