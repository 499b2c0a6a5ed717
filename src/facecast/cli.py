"""The `facecast` command line: a thin typer app.

Each stage keeps its commands in `facecast/<stage>/cli.py` with a `register(app)` function, so the
commands live beside the code they call and this root stays a list. Commands only parse arguments and
call the stage's plain Python function of the same name; tests and the UI call those functions directly.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from facecast import __version__
from facecast.console import err_console
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
) -> None:
    """facecast: frames -> extract -> faceset -> xseg -> train -> merge -> video."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr and a non-zero exit."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # mediapipe's TFLite chatter
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)  # typer.Exit(code) is returned, not raised, outside standalone mode
    except FacecastError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted: completed work is kept; run the same command again to resume")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
