"""Commands of the quality stage: `facecast score` (registered by facecast.cli).

Only argument parsing and printing; the work is in facecast.quality.score."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from facecast.cluster.cli import AddressOpt, EngineOpt, ShardSizeOpt, make_engine
from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, out_console, summary


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return "-" if v is None else str(v)


def print_report(report: dict[str, Any]) -> None:
    """Per-shot table, overall summary and the worst frames, for people."""
    from rich.table import Table

    cols = {"shot": "shot", "frames": "n", "id_to_src": "id→src", "id_to_dst": "id→dst", "retrieval": "retr",
            "pose_error": "pose°", "expression_error": "expr", "sharpness_ratio": "sharp",
            "colour_flicker": "col.fl", "mask_flicker": "mask.fl"}
    table = Table(title="swap quality per shot (flicker and sharpness: swap / dst)")
    for c, label in cols.items():
        table.add_column(label, justify="right" if c != "shot" else "left", no_wrap=True)
    for shot in report["shots"]:
        table.add_row(*(_fmt(shot.get(c)) for c in cols))
    out_console.print(table)
    s = report["summary"]
    out_console.print(
        f"identity: {_fmt(s['id_to_src'])} to src (src faces spread {_fmt(s['src_spread'])}), "
        f"{_fmt(s['id_to_dst'])} to dst, closer to src in {100 * (s['retrieval'] or 0):.0f} % of faces "
        f"(dlib distance; < 0.6 = same person)"
    )
    if not s.get("pose_available"):
        out_console.print("pose error not measured: facecast.faces.pose is not installed")
    worst = ", ".join(f"{w['frame']} ({w['worst_on']})" for w in report["worst"])
    out_console.print(f"look first at: {worst}")
    out_console.print(f"wrote {report['paths']['json']} and {report['paths']['plot']}")


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score_cmd(
        workspace: WorkspaceOpt,
        model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model to predict with when nothing is merged (default: the only one).")] = None,
        source: Annotated[str, typer.Option(help="auto (merged frames if any), merged, or predict (aligned dst faces through --model).")] = "auto",
        max_src: Annotated[int, typer.Option(help="src faces used for the src identity centroid.")] = 48,
        worst: Annotated[int, typer.Option(help="How many worst frames to list.")] = 8,
        engine: EngineOpt = None,
        address: AddressOpt = None,
        shard_size: ShardSizeOpt = 0,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Score a swap objectively: identity vs src/dst, pose, expression, flicker, sharpness."""
        from facecast.quality.score import ScoreSettings, score

        settings = ScoreSettings(model_name=model, source=source, max_src=max_src, worst=worst)
        cluster = make_engine(engine, address, shard_size)
        try:
            report = score(workspace, settings=settings, quiet=quiet or json_out, engine=cluster)
        finally:
            if cluster is not None:
                cluster.shutdown()
        if json_out:
            summary({k: report[k] for k in ("summary", "shots", "worst", "paths")}, True)
        elif not quiet:
            print_report(report)
