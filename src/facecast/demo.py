"""`facecast demo`: the whole pipeline on bundled sample faces (not built yet)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
