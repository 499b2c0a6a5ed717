"""`facecast demo`: the whole pipeline on bundled sample faces, the README's first command.

Kept light on import (the CLI imports every stage at start-up): the work lives in `run.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from facecast.console import JsonOpt, QuietOpt


def demo(out_dir: str | Path | None = None, fast: bool = False, from_scratch: bool = False,
         quiet: bool = False, **kwargs: Any):
    """See `facecast.demo.run.demo`."""
    from facecast.demo.run import demo as _demo

    return _demo(out_dir, fast=fast, from_scratch=from_scratch, quiet=quiet, **kwargs)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Workspace folder for the demo (default ./facecast-demo).")] = None,
        fast: Annotated[bool, typer.Option("--fast", help="Every stage on tiny budgets (CI, ~1-2 minutes).")] = False,
        from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Ignore the shipped demo weights and train from nothing.")] = False,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Swap a bundled sample face into a rendered clip: consent, frames, extract, train, merge, video."""
        from facecast.console import summary

        result = demo(out, fast=fast, from_scratch=from_scratch, quiet=quiet or json_out)
        data = result.as_dict()
        ident = data.get("identity") or {}
        if not json_out and ident.get("id_to_src") is not None and ident.get("id_to_dst") is not None:
            data["identity"] = (f"distance to {result.pair.split(' -> ')[0]} {ident['id_to_src']:.2f}, "
                                f"to the original face {ident['id_to_dst']:.2f} (dlib; < 0.6 = same person)")
        summary(data, json_out, quiet, title="facecast demo")
