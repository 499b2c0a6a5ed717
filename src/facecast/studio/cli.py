"""`facecast studio`: the browser workspace (see facecast/studio/__init__.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facecast.console import WorkspaceOpt


def register(app: typer.Typer) -> None:
    @app.command("studio")
    def studio_cmd(
        workspace: WorkspaceOpt,
        host: Annotated[str, typer.Option("--host", help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
        port: Annotated[Optional[int], typer.Option("--port", help="Port (default: a free one).")] = None,
        no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    ) -> None:
        """Open the studio: pages for every stage over the same functions as these commands.

        Prints a link with a one-time access token (like Jupyter); every request needs it."""
        from facecast.studio.server import serve

        serve(workspace, host=host, port=port, open_browser=not no_browser)
