"""Commands of the quality stage (registered by facecast.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
