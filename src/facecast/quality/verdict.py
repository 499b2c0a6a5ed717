"""The identity verdict while training: "recognisable", "not yet" or "getting worse", with an ETA.

Read from the evaluation rows the trainer writes into history.jsonl every `eval_every` iterations
(`{"iter": N, "eval": {"id_swap_src": .., "id_swap_dst": .., "id_retrieval": ..}}`), which score the
dst->src swap of held-back dst faces with dlib's descriptor (a model the trainer never optimises, so
the score cannot be gamed). Losses say how well the autoencoder reconstructs; only these rows say
whether the swap has become the source person, so a loss that still falls is no evidence of gains.

Pure (standard library only): the CLI summary, the studio job log and the studio page share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RECOGNISABLE, NOT_YET, WORSE, NO_EVAL = "recognisable", "not yet", "getting worse", "no evaluation yet"
STATES = (RECOGNISABLE, NOT_YET, WORSE, NO_EVAL)

NOW = 2  # evaluations averaged for "where it is now" (one noisy evaluation decides nothing)
WINDOW = 6  # evaluations the trend is fitted over
MIN_TREND = 3  # a slope from fewer points is a difference of two noisy values, not a trend
MIN_WORSE = 4  # evaluations before an alarm: a 3-point slope has one degree of freedom left for its noise
WORSE_DISTANCE = 0.02  # fitted rise of id_swap_src over the window that counts as moving away
WORSE_RETRIEVAL = 0.15  # fitted fall of id_retrieval over the window that counts as moving away
MAX_ETA_ITERS = 10_000_000  # beyond this "at this rate" is no useful answer


@dataclass(frozen=True)
class IdentityVerdict:
    state: str  # one of STATES
    message: str  # one line for the summary, the studio page and the job log
    iteration: int | None = None  # of the latest evaluation
    id_swap_src: float | None = None  # mean of the latest evaluations
    id_retrieval: float | None = None
    eta_iters: int | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True)
class _Trend:
    slope: float  # per iteration
    stderr: float  # standard error of the slope
    fitted_now: float  # the fitted line at the latest iteration
    span: float  # iterations covered by the window

    @property
    def change(self) -> float:
        """Fitted change over the window (the slope times its span)."""
        return self.slope * self.span

    def significant(self) -> bool:
        """Slope at least twice its standard error: noise around a flat line rarely gets there."""
        return abs(self.slope) > 2 * self.stderr


def _fit(points: Sequence[tuple[float, float]]) -> _Trend | None:
    """Ordinary least squares y = a + b x over the points, or None with fewer than MIN_TREND of them."""
    n = len(points)
    if n < MIN_TREND:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    resid = sum((y - (my + slope * (x - mx))) ** 2 for x, y in points)
    stderr = math.sqrt(resid / (n - 2) / sxx) if n > 2 else 0.0
    last_x = points[-1][0]
    return _Trend(slope, stderr, my + slope * (last_x - mx), points[-1][0] - points[0][0])


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def eval_points(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, float, float | None]]:
    """(iteration, id_swap_src, id_retrieval) of each evaluation row, by iteration; a repeated
    iteration (a run resumed from the same save) keeps its last row."""
    by_iter: dict[int, tuple[int, float, float | None]] = {}
    for rec in records:
        ev = rec.get("eval") if isinstance(rec, Mapping) else None
        it = _number(rec.get("iter")) if isinstance(rec, Mapping) else None
        if not isinstance(ev, Mapping) or it is None:
            continue
        dist = _number(ev.get("id_swap_src"))
        if dist is None:
            continue
        by_iter[int(it)] = (int(it), dist, _number(ev.get("id_retrieval")))
    return [by_iter[k] for k in sorted(by_iter)]


def _fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return "<1 min"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def _eta(trend: _Trend | None, now: float, goal: float, lower_is_better: bool) -> float | None:
    """Iterations from the latest evaluation until the fitted line reaches `goal`: 0 when `now` (the
    window mean) is already there, None when the trend is missing, flat within noise, or heading the
    wrong way."""
    if (now <= goal) if lower_is_better else (now >= goal):
        return 0.0
    if trend is None or not trend.significant():
        return None
    rate = -trend.slope if lower_is_better else trend.slope
    if rate <= 0:
        return None
    start = trend.fitted_now
    gap = (start - goal) if lower_is_better else (goal - start)
    return max(1.0, gap / rate)  # not there yet by the window mean: at least one more iteration


def identity_verdict(records: Sequence[Mapping[str, Any]], ms_per_iter: float | None = None,
                     goal_distance: float = 0.5, goal_retrieval: float = 0.9) -> IdentityVerdict:
    """The verdict from history records (loss rows are ignored, eval rows read).

    Rules, each on window statistics so one noisy evaluation neither raises nor hides an alarm:
    - "no evaluation yet": no eval row with `id_swap_src`.
    - "recognisable": the mean of the last NOW evaluations has `id_retrieval` >= goal_retrieval (the
      swap is nearer the source than its own dst face in that share of held-back faces) and
      `id_swap_src` <= goal_distance (dlib calls 0.6 "same person"; issue 17 set 0.5 as the goal).
    - "getting worse": a least-squares line through the last WINDOW evaluations (at least MIN_WORSE)
      rises in `id_swap_src` by >= WORSE_DISTANCE over the window, or falls in `id_retrieval` by
      >= WORSE_RETRIEVAL, with the slope at least twice its standard error. More training will not
      bring back what it is losing, so the message says to roll back or lower the learning rate.
    - "not yet": otherwise. ETA = iterations until the fitted lines reach the goals (the later of
      the two), only when the improvement is significant; a flat or noisy trend gets no ETA rather
      than a made-up one. Seconds = iterations x ms_per_iter when known (the step time only, so it
      is a lower bound by the evaluation and preview overhead).
    """
    points = eval_points(records)
    if not points:
        return IdentityVerdict(NO_EVAL, "no identity evaluation yet: the trainer scores the swap on held-back "
                                        "dst faces every eval_every iterations")
    it = points[-1][0]
    recent = points[-NOW:]
    dist = sum(p[1] for p in recent) / len(recent)
    rets = [p[2] for p in recent if p[2] is not None]
    ret = sum(rets) / len(rets) if rets else None
    window = points[-WINDOW:]
    d_trend = _fit([(p[0], p[1]) for p in window])
    r_pts = [(p[0], p[2]) for p in window if p[2] is not None]
    r_trend = _fit(r_pts)
    where = f"distance to source {dist:.2f} (goal {goal_distance:.2f})"
    if ret is not None:
        where += f", nearer the source in {100 * ret:.0f}% of held-back dst faces (goal {100 * goal_retrieval:.0f}%)"
    common = dict(iteration=it, id_swap_src=dist, id_retrieval=ret)

    if dist <= goal_distance and (ret is None or ret >= goal_retrieval):
        return IdentityVerdict(RECOGNISABLE, f"recognisable at iteration {it:,}: {where}", **common)

    rising = d_trend is not None and d_trend.significant() and d_trend.change >= WORSE_DISTANCE
    falling = r_trend is not None and r_trend.significant() and -r_trend.change >= WORSE_RETRIEVAL
    if (rising or falling) and len(window) >= MIN_WORSE:
        first = window[0]
        moved = (f"distance to source rose {first[1]:.2f} -> {dist:.2f}" if rising else
                 f"share nearer the source fell {100 * (r_pts[0][1] or 0):.0f}% -> {100 * (ret or 0):.0f}%")
        return IdentityVerdict(
            WORSE, f"getting worse: {moved} between iterations {first[0]:,} and {it:,}, the swap is moving away "
                   "from the source; roll back with `facecast restore-backup` or lower the learning rate (--lr) "
                   "rather than train on", **common)

    etas = [_eta(d_trend, dist, goal_distance, True)]
    if ret is not None:
        etas.append(_eta(r_trend, ret, goal_retrieval, False))
    eta_iters = None if any(e is None for e in etas) else max(etas)
    if eta_iters is not None and eta_iters > MAX_ETA_ITERS:
        eta_iters = None
    if eta_iters is None:
        why = (f"{len(points)} evaluation(s) so far, a trend needs {MIN_TREND}" if d_trend is None
               else "identity is not improving measurably")
        return IdentityVerdict(NOT_YET, f"not yet recognisable: {where}; no ETA yet: {why}", **common)
    eta_i = max(1, round(eta_iters))
    eta_s = eta_i * ms_per_iter / 1000.0 if ms_per_iter else None
    when = f"ETA ~{eta_i:,} iterations" + (f" ({_fmt_duration(eta_s)})" if eta_s is not None else "")
    return IdentityVerdict(NOT_YET, f"not yet recognisable: {where}; {when}", eta_iters=eta_i, eta_seconds=eta_s,
                           **common)
