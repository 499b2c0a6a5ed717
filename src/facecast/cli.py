"""The `facecast` command line: a thin typer app.

Each stage keeps its commands in `facecast/<stage>/cli.py` with a `register(app)` function, so the
commands live beside the code they call and this root stays a list. Commands only parse arguments and
call the stage's plain Python function of the same name; tests and the UI call those functions directly.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from typing import Any

import typer
import typer.rich_utils
from rich.markup import escape

from facecast import __version__
from facecast.console import VERBOSE_ENV, err_console, error_line
from facecast.errors import FacecastError

app = typer.Typer(
    name="facecast",
    help="Face-replacement studio. Every output is labelled as synthetic; consent is required.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order here is the order `facecast --help` lists them: the pipeline's order.
STAGE_MODULES = (
    "facecast.workspace_cli",
    "facecast.media.cli",
    "facecast.faces.cli",
    "facecast.faceset.cli",
    "facecast.masks.cli",
    "facecast.train.cli",
    "facecast.merge.cli",
    "facecast.quality.cli",
    "facecast.provenance.cli",
    "facecast.demo",
    "facecast.studio.cli",
    "facecast.cluster.cli",
)

for _name in STAGE_MODULES:
    importlib.import_module(_name).register(app)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"facecast {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also show what native libraries (mediapipe, TFLite, absl) print."
    ),
) -> None:
    """facecast: frames -> extract -> faceset -> xseg -> train -> merge -> video."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # read by console.native_quiet, here and in worker processes


INTERRUPTED = "interrupted: completed work is kept; run the same command again to resume"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr and a non-zero exit."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # mediapipe's TFLite chatter
    _set_help_width()
    command = typer.main.get_command(app)
    tidy_help(command)
    try:
        rc = command.main(args=argv, prog_name="facecast", standalone_mode=False)
        if rc == 130:  # typer turns Ctrl-C into Exit(130), which click returns outside standalone mode
            err_console.print(INTERRUPTED)
        if isinstance(rc, int) and rc:
            sys.exit(rc)  # typer.Exit(code) is returned, not raised, outside standalone mode
    except FacecastError as err:
        err_console.print(error_line(str(err)), highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print(INTERRUPTED)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except _USAGE_ERROR as exc:  # typer's (click's) usage errors arrive here in non-standalone mode
        err_console.print(error_line(usage_message(exc)), highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2) or 2)


def _set_help_width() -> None:
    """Help at the terminal's width but never under 120 columns (160 when piped).

    rich cuts table cells at 80 columns (`--output-face-s…`); a narrow terminal soft-wraps the wider
    lines instead, which loses nothing. `TERMINAL_WIDTH` (typer's own setting) still wins.
    """
    chosen = os.environ.get("TERMINAL_WIDTH", "")
    if chosen.isdigit():
        width = int(chosen)
    else:
        width = max(shutil.get_terminal_size((160, 24)).columns, 120)
    typer.rich_utils.MAX_WIDTH = width  # read by typer each time it renders help


def _breakable(text: str) -> str:
    """Space out long `a|b|c` choice lists so rich wraps them instead of cutting them with `…`."""
    return re.sub(r"\S{30,}", lambda m: m.group(0).replace("|", " | "), text)


def _help_option(command: Any) -> Any:
    """The command's own `--help` option (built on demand by click/typer, cached since click 8.1)."""
    try:
        return command.get_help_option(typer.Context(command))
    except Exception:  # an older typer without the cache: its `--help` keeps its default look
        return None


def tidy_help(command: Any) -> None:
    """Make every command's help print what was written.

    On/off flags show no `<bool>` value (they take none), and help texts are escaped so rich does not
    read `[[x, y] * 68]` or `[--resize]` as style tags.
    """
    for param in [*getattr(command, "params", []), _help_option(command)]:
        if param is None:
            continue
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        if getattr(param, "help", None):
            param.help = escape(_breakable(param.help))
    for attr in ("help", "short_help", "epilog"):
        text = getattr(command, attr, None)
        if text:
            setattr(command, attr, escape(text))
    for sub in (getattr(command, "commands", None) or {}).values():
        tidy_help(sub)


# The base class of typer's usage errors (unknown option, missing option, bad value...). typer <0.20
# raises `click.ClickException`, newer typer vendors click as `typer._click` and no longer installs the
# `click` package: importing `click` here crashed every usage error on a fresh install. Found through
# the MRO of `typer.BadParameter`, which every typer version exports, so no undeclared import is needed.
_USAGE_ERROR: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"
)


def usage_message(exc: Exception) -> str:
    """The text of one `error:` line for a usage error, naming the command and where its help is."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "facecast"
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        names = sorted(getattr(ctx.command, "commands", {}) or {})
        choices = f"; one of: {', '.join(names)}" if names else ""
        return f"`{command}` needs a command{choices} (see `{command} --help`)"
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    return f"{message} (see `{command} --help`)"
