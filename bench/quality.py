"""Swap-quality benchmark: floor and ceiling baselines, and trained models when the stages exist.

Reproducible from bundled real photos: src and dst are two different people (einstein, takeo), each
rendered into a clip that moves, scales, rolls and relights the photo (facecast.media.synth). For each
(src, dst) pair, `facecast score` numbers for:
- no swap   (merged = dst itself): identity floor; pose/expression/flicker/sharpness perfect by definition,
- paste src (src photo warped on dst's landmarks, colour-matched, hull-blended): identity ceiling;
  pose/expression of a still photo,
- tiny      (a `tiny` model trained for a fixed budget, merged): only when facecast.train.trainer and
  facecast.merge.merger are importable; otherwise the row says why it was skipped.

Run from the repo root: `python bench/quality.py [--frames 24] [--iters 300]`. Writes
bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

PAIRS = (("einstein", "takeo"), ("takeo", "einstein"))
KEYS = ("id_to_src", "id_to_dst", "retrieval", "pose_error", "expression_error", "sharpness_ratio",
        "colour_flicker", "mask_flicker")


def _row(pair: tuple[str, str], method: str, summary: dict | None, seconds: float, note: str = "") -> dict:
    row = {"src->dst": f"{pair[0]}->{pair[1]}", "method": method}
    for k in KEYS:
        row[k] = None if summary is None else summary.get(k)
    row["seconds"] = round(seconds, 1)
    row["note"] = note
    if summary and "last_eval" in summary:
        row["train"] = {k: summary[k] for k in ("train_s", "train_iterations", "last_eval", "plateau")}
    return row


def _trained(ws, iters: int) -> tuple[dict | None, str]:
    """Train `tiny` for `iters` iterations (with the quality evaluators), merge, score; (summary, note)."""
    from facecast.quality.score import score
    from facecast.quality.training import default_evaluators, plateau

    missing = [m for m in ("facecast.train.trainer", "facecast.merge.merger") if importlib.util.find_spec(m) is None]
    if missing:
        return None, f"skipped: {', '.join(missing)} not importable yet"
    from facecast.merge.merger import merge
    from facecast.train.options import preset
    from facecast.train.predict import load_predictor
    from facecast.train.trainer import train

    t = time.perf_counter()
    result = train(ws, "tiny", preset_name="tiny", max_iters=iters, quiet=True,
                   overrides={"eval_every": max(iters // 4, 1)},
                   evaluators=default_evaluators(preset("tiny").face_type))
    train_s = time.perf_counter() - t
    merge(ws, "tiny", None, load_predictor(ws.model("tiny"), device="cpu"), quiet=True)
    summary = score(ws)["summary"]
    history = [json.loads(l) for l in (ws.model("tiny") / "history.jsonl").read_text().splitlines() if l.strip()]
    evals = [h["eval"] for h in history if isinstance(h.get("eval"), dict)]
    summary["train_s"] = round(train_s, 1)
    summary["train_iterations"] = result.iteration
    summary["last_eval"] = {k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith(("id_", "psnr", "ssim"))}
    summary["plateau"] = plateau(history, "dst_loss", max(iters // 4, 1), 0.01)
    return summary, f"tiny, {result.iteration} iterations in {train_s:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=24, help="dst frames per clip")
    ap.add_argument("--src-frames", type=int, default=12, help="src frames per clip")
    ap.add_argument("--size", type=int, default=128, help="aligned face size")
    ap.add_argument("--iters", type=int, default=100, help="training budget for the tiny model")
    ap.add_argument("--train-pairs", type=int, default=1, help="how many pairs get a trained model (CPU time)")
    ap.add_argument("--no-train", action="store_true", help="baselines only")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from facecast.quality.score import score
    from facecast.quality.synthetic import build_workspace

    rows = []
    with tempfile.TemporaryDirectory(prefix="facecast-bench-quality-") as tmp:
        for n, pair in enumerate(PAIRS):
            for method, merged in (("no swap", "none"), ("paste src", "paste")):
                ws = build_workspace(Path(tmp) / f"{pair[0]}-{pair[1]}-{merged}", src=pair[0], dst=pair[1],
                                     n_src=args.src_frames, n_dst=args.frames, merged=merged, size=args.size)
                t = time.perf_counter()
                summary = score(ws)["summary"]
                rows.append(_row(pair, method, summary, time.perf_counter() - t))
            if not args.no_train and n < args.train_pairs:
                ws = build_workspace(Path(tmp) / f"{pair[0]}-{pair[1]}-tiny", src=pair[0], dst=pair[1],
                                     n_src=args.src_frames, n_dst=args.frames, merged=None, size=args.size)
                t = time.perf_counter()
                summary, note = _trained(ws, args.iters)
                rows.append(_row(pair, "tiny", summary, time.perf_counter() - t, note))
    print_table(rows, "swap quality (identity: dlib distance, < 0.6 same person; flicker/sharpness: swap / dst)")
    path = write_results("quality", {
        "settings": vars(args),
        "pairs": [list(p) for p in PAIRS],
        "rows": rows,
        "notes": "no swap = floor (identity), paste src = ceiling (identity); see bench/quality.py docstring",
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
