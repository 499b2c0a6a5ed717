"""Does a bf16-trained model end where an fp32-trained one does? (issue 17)

The trainer keeps bf16 autocast only where it measures faster, but speed is worth nothing if the
model learns worse. Same pair, same preset, same seed, the same number of iterations in fp32 and in
bf16; then the final losses (mean of the last 50 logged steps) and the identity of the merged swap
(`facecast score` on every merged dst frame).

    python bench/precision_quality.py --iters 400
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import print_table, write_results  # noqa: E402
from first_swap import PAIRS, merged_score, prepare  # noqa: E402


def last_losses(model_dir: Path, n: int = 50) -> dict[str, float]:
    rows = [json.loads(line) for line in (model_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "src_loss" in r][-n:]
    return {"src_loss": round(sum(r["src_loss"] for r in rows) / len(rows), 4),
            "dst_loss": round(sum(r["dst_loss"] for r in rows) / len(rows), 4)}


def main() -> None:
    import torch

    from facecast.train.trainer import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="A")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base, prep = prepare(Path(tmp) / "base", PAIRS[args.pair])
        for precision in ("fp32", "bfloat16"):
            root = Path(tmp) / precision
            shutil.copytree(base.root, root)
            from facecast.workspace import Workspace

            ws = Workspace.open(root)
            t = time.perf_counter()
            res = train(ws, "m", preset_name=args.preset, max_iters=args.iters, quiet=True, precision=precision)
            seconds = time.perf_counter() - t
            row = {"precision": precision, "iterations": res.iteration, "train_s": round(seconds, 1),
                   "ms_per_iter": round(res.ms_per_iter or 0, 1), **last_losses(ws.model("m")),
                   **{k: v for k, v in merged_score(ws, "m").items() if k != "faces"}}
            rows.append(row)
            print(row, flush=True)
    print_table(rows, f"fp32 vs bf16 after {args.iters} iterations, preset {args.preset}, pair {args.pair}")
    print("->", write_results("precision_quality", {"pair": args.pair, "preset": args.preset, "iters": args.iters,
                                                    "threads": args.threads, "faces": prep["faces"], "rows": rows,
                                                    "wall_s": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
