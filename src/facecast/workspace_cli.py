"""`facecast workspace init` and `facecast doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facecast.console import JsonOpt, QuietOpt, summary
from facecast.workspace import Workspace


def register(app: typer.Typer) -> None:
    ws_app = typer.Typer(help="Create and inspect workspaces.", no_args_is_help=True)

    @ws_app.command("init")
    def init(
        path: Annotated[Path, typer.Argument(help="Folder to create (DeepFaceLab's layout).")],
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Create a workspace folder with DeepFaceLab's folder names."""
        ws = Workspace.open(path, create=True)
        summary({"workspace": str(ws.root), "id": ws.id}, json_out, quiet, title="workspace")

    app.add_typer(ws_app, name="workspace")

    @app.command("doctor")
    def doctor_cmd(
        device: Annotated[
            str, typer.Option(help="Device you intend to use: auto, cpu, cuda, cuda:N, mps.")
        ] = "auto",
        workspace: Annotated[
            Path, typer.Option("--workspace", "-w", help="Workspace whose free disk to report.")
        ] = Path("."),
        json_out: JsonOpt = False,
    ) -> None:
        """Report versions, the compute device that will be used and why, codecs and free disk."""
        from facecast.doctor import doctor

        report = doctor(device=device, workspace=workspace)
        summary(report.as_dict(), json_out, title="facecast doctor")
        if not report.device_ok:
            raise typer.Exit(1)
