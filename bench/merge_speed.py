"""Merge speed: frames/s of `facecast.merge.merge` at 720p and 1080p, per mode, with 1 and 2 workers.

Workload: a dst clip rendered from a bundled real photo (facecast.merge.testing.build_dst_workspace,
the face ~1/3 of the frame height as in ordinary footage), PNG frames, aligned faces from ground-truth
landmarks. The whole runner is timed: frame read, re-alignment, prediction, compositing, PNG encode of
merged frame + mask, atomic writes, session file.

Predictor (`--predictor`):
- `real` (default): facecast's own DF architecture at the demo's size (64 px full face, e 32, ae 128,
  d 16; random weights: speed does not depend on what the weights learned), through
  `facecast.train.predict.Predictor` on the chosen device;
- `fake`: FakePredictor (a colour shift, no network): the compositing cost alone.
Configurations: overlay+rct, hist-match, seamless (rct) x workers: inline, 2 threads, 2 spawned
processes (the runner's two kinds of compositing workers; which pays is what this measures). The best of `--repeat` runs
counts (the machine is shared; the minimum time is the least disturbed). `cpu_ms_per_frame` (CPU time
of this process, its threads and its worker processes, per frame) shows the work itself, which a busy
machine inflates far less than wall time: 2000 / cpu_ms_per_frame estimates frames/s on 2 free cores.
Goal: >= 10 frames/s at 720p overlay+rct on 2 cores.

Run from the repo root: `python bench/merge_speed.py [--frames 24] [--repeat 2] [--predictor real|fake]`.
Writes bench/results/merge_speed.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
CONFIGS = {
    "overlay+rct": dict(mode="overlay", color_transfer="rct"),
    "hist-match": dict(mode="hist-match", color_transfer="none"),
    "seamless": dict(mode="seamless", color_transfer="rct"),
}


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (spawned workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_predictor(kind: str, device: str):
    if kind == "fake":
        from facecast.merge.testing import FakePredictor

        return FakePredictor(64, "full")
    from facecast.train.archs.registry import build_model
    from facecast.train.options import ModelOptions
    from facecast.train.predict import Predictor

    opts = ModelOptions(arch="df", resolution=64, face_type="full", e_dims=32, ae_dims=128, d_dims=16, d_mask_dims=16).validate()
    model = build_model(opts).eval()
    return Predictor(model, opts, "bench-df64", device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--predictor", choices=("real", "fake"), default="real")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sizes", default="720p,1080p")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--torch-threads", type=int, default=1, help="prediction threads (1: workers use the other core)")
    ap.add_argument("--workers", default="1,2t,2p", help="1 = inline; Nt = N threads; Np = N spawned processes")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.torch_threads)
    from facecast.merge.merger import merge
    from facecast.merge.settings import MergeSettings
    from facecast.merge.testing import build_dst_workspace
    from facecast.workspace import Workspace

    predictor = make_predictor(args.predictor, args.device)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="merge_bench_"))
    try:
        for size_name in args.sizes.split(","):
            w, h = SIZES[size_name]
            ws = Workspace.open(tmp / size_name, create=True)
            t = time.perf_counter()
            build_dst_workspace(ws, n_frames=args.frames, size=(w, h), aligned_size=256, face_px=(h * 0.26, h * 0.3))
            print(f"built {size_name} workspace in {time.perf_counter() - t:.1f}s", file=sys.stderr)
            for cfg_name in args.configs.split(","):
                cfg = CONFIGS[cfg_name]
                for spec in args.workers.split(","):
                    workers = int(spec.rstrip("tp"))
                    parallel = "process" if spec.endswith("p") else "thread"
                    best = cpu = None
                    for r in range(args.repeat):
                        c0 = _cpu_seconds()
                        model = f"{cfg_name}-{spec}-{r}"  # a fresh session each time: nothing skipped
                        rep = merge(ws, model, MergeSettings(**cfg), predictor, workers=workers, parallel=parallel, quiet=True)
                        assert rep.merged == args.frames
                        used = _cpu_seconds() - c0
                        cpu = used if cpu is None else min(cpu, used)
                        best = rep.seconds if best is None else min(best, rep.seconds)
                    rows.append({
                        "size": size_name, "config": cfg_name, "workers": workers,
                        "parallel": parallel if workers > 1 else "inline",
                        "fps": round(args.frames / best, 2), "ms_per_frame": round(1000 * best / args.frames, 1),
                        "cpu_ms_per_frame": round(1000 * cpu / args.frames, 1),
                        "load_avg_1m": round(os.getloadavg()[0], 1),
                    })
                    print_table(rows[-1:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print_table(rows, title=f"merge frames/s ({args.predictor} predictor, {args.frames} frames, best of {args.repeat})")
    goal = max((r["fps"] for r in rows if r["size"] == "720p" and r["config"] == "overlay+rct" and r["workers"] == 2), default=None)
    device = getattr(predictor, "device", "cpu")
    path = write_results("merge_speed", {
        "predictor": args.predictor if args.predictor == "fake" else "DF 64px full e32 ae128 d16 (random weights)",
        "device": str(device), "torch_threads": args.torch_threads, "frames": args.frames, "repeat": args.repeat, "rows": rows,
        "goal": ">= 10 frames/s at 720p overlay+rct with 2 workers (best of thread/process)", "goal_value": goal,
        "note": "2-core machine shared with other jobs: see load_avg_1m per row; numbers are lower bounds",
        "goal_met": goal is not None and goal >= 10,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
