"""Guidance while training: the identity verdict and the plateau line, as `facecast train` and the
studio show them.

Two questions a user asks of a running model: "is the swap the source person yet?" (the identity
verdict of `verdict.py`, from the held-back dst faces) and "should I stop?" (`training.plateau` over the
identity distance and the dst loss). The plateau line never says training "still gains" unless the
identity evaluations measured a gain: a falling loss while the swap moves away from the source is the
case issue 17 caught, where the old line said "training still gains".
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from facecast.quality.training import default_evaluators, plateau
from facecast.quality.verdict import NO_EVAL, WORSE, eval_points, identity_verdict

DEFAULT_EVAL_EVERY = 500  # the plateau windows when a model has no evaluations to space them by


def read_history(model_dir: Path) -> list[dict[str, Any]]:
    """The rows of `model_dir/history.jsonl`; a line cut by a kill is skipped, the rest still counts."""
    path = Path(model_dir) / "history.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _eval_spacing(records: Sequence[Mapping[str, Any]]) -> int:
    """Iterations between evaluations, read from the history (median gap) so this module needs no
    training options; DEFAULT_EVAL_EVERY with fewer than two evaluations."""
    its = [p[0] for p in eval_points(records)]
    gaps = [b - a for a, b in zip(its, its[1:]) if b > a]
    return int(statistics.median(gaps)) if gaps else DEFAULT_EVAL_EVERY


def plateau_message(records: Sequence[Mapping[str, Any]], eval_every: int | None = None) -> str | None:
    """The objective answer to "when should I stop?": no measurable gain over the last window, in the
    identity distance (5 evaluations) or the dst loss (at least 2,000 iterations); None otherwise."""
    every = eval_every or _eval_spacing(records)
    for key, window, gain in (("id_swap_src", 5 * every, 0.01), ("dst_loss", max(2000, 5 * every), 0.01)):
        message = plateau(records, key, window, gain)
        if message:
            return message
    return None


def _mean_ms(records: Sequence[Mapping[str, Any]], last: int = 50) -> float | None:
    ms = [r["ms"] for r in records if isinstance(r.get("ms"), (int, float)) and not isinstance(r.get("ms"), bool)]
    ms = ms[-last:]
    return sum(ms) / len(ms) if ms else None


def guidance_from_records(records: Sequence[Mapping[str, Any]], ms_per_iter: float | None = None,
                          eval_every: int | None = None) -> dict[str, Any]:
    """`training_guidance` on records already read (the studio page reads the history once)."""
    ms = ms_per_iter if ms_per_iter else _mean_ms(records)
    verdict = identity_verdict(records, ms_per_iter=ms)
    if verdict.state == WORSE:
        line = "identity getting worse: not a plateau to wait out, the swap is moving away from the source"
    else:
        line = plateau_message(records, eval_every)
        if line is None:
            improving = verdict.state != NO_EVAL and bool(verdict.eta_iters)
            line = "no plateau yet: identity still improving" if improving else "no plateau yet"
    return {"identity": verdict.message, "identity_state": verdict.state, "eta_s": verdict.eta_seconds,
            "eta_iters": verdict.eta_iters, "plateau": line}


def training_guidance(model_dir: Path, ms_per_iter: float | None = None,
                      eval_every: int | None = None) -> dict[str, Any]:
    """{"identity": verdict line, "identity_state": state, "eta_s", "eta_iters", "plateau": line} for a
    model folder. ms_per_iter defaults to the mean step time of the last logged steps."""
    return guidance_from_records(read_history(model_dir), ms_per_iter, eval_every)


def summary_fields(guide: Mapping[str, Any]) -> dict[str, Any]:
    """The guidance as the CLI summary, the studio page and the studio job show it (ETA keys prefixed:
    the page's own `eta_s` is the time to target_iter)."""
    return {"identity": guide["identity"], "identity_state": guide["identity_state"],
            "identity_eta_s": guide["eta_s"], "identity_eta_iters": guide["eta_iters"], "plateau": guide["plateau"]}


def quality_evaluators(workspace: Path, model: str, preset: str | None, overrides: dict) -> list:
    """Identity of the swap and reconstruction quality, for the trainer's evaluation hook (logged into
    history.jsonl every eval_every iterations), with the face type the model trains on.

    The identity model (dlib's descriptor) is not used in training, so the score cannot be gamed by it.
    Wiring shared by `facecast train` and the studio: it reads the model's options through the train
    stage's public `resolve_options` (imported here, at call time, so the rest of this module and the
    studio page that shows guidance do not load torch)."""
    from facecast.errors import FacecastError
    from facecast.train.trainer import resolve_options
    from facecast.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    try:
        options, _ = resolve_options(ws.model(model), preset, overrides, repair=False)
    except FacecastError:
        return []  # the same error is raised, with its one line, by train() itself
    return default_evaluators(options.face_type)
