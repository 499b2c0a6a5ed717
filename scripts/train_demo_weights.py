"""Train the weights `facecast demo` starts from, with facecast's own trainer, on the demo's own material.

    python scripts/train_demo_weights.py --minutes 60            # train (resumable), then stop
    python scripts/train_demo_weights.py --export                # write src/facecast/assets/demo_model/

The workspace (default ./demo-weights-work) is built exactly as `facecast demo` builds it in normal
mode: the same bundled photos, clip rendering, seeds, frame counts, face type and extraction, then the
same model options (`facecast.demo.run.MODEL_OPTIONS`). Training resumes where the last run stopped;
the trainer's identity evaluator runs every `--eval-every` iterations so history.jsonl shows when the
swap starts to look like the source (`id_swap_src` below `id_swap_dst`). `--export` copies the weights
(float16, <= 20 MB), options, iteration count and these settings into the package's asset folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def build(work: Path, quiet: bool) -> None:
    from facecast.demo.run import DemoSettings, build_inputs, prepare_workspace

    s = DemoSettings()
    if (work / "data_dst" / "aligned").is_dir() and any((work / "data_dst" / "aligned").iterdir()):
        return  # already built: keep it (training resumes on it)
    if work.exists() and not (work / "demo.json").exists() and any(work.iterdir()):
        sys.exit(f"{work} is not empty and not a demo workspace; choose another --work")
    ws = prepare_workspace(work)
    build_inputs(ws, s.src_frames, s.dst_frames, quiet, s.extract_workers)


def history(model_dir: Path) -> list[dict]:
    path = model_dir / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_eval(model_dir: Path) -> dict:
    evals = [h for h in history(model_dir) if isinstance(h.get("eval"), dict)]
    return {"iter": evals[-1].get("iter"), **evals[-1]["eval"]} if evals else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("demo-weights-work"), help="training workspace")
    ap.add_argument("--minutes", type=float, default=0.0, help="train for this long (0: skip training)")
    ap.add_argument("--iters", type=int, default=1500, help="stop at this total iteration")
    ap.add_argument("--chunk", type=int, default=50, help="iterations per trainer call (each ends in a save)")
    ap.add_argument("--eval-every", type=int, default=100, help="identity/PSNR evaluation interval")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a training option from here on (e.g. random_warp=false once the loss plateaus)")
    ap.add_argument("--export", action="store_true", help="write the weights to src/facecast/assets/demo_model/")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from facecast.demo import weights
    from facecast.demo.material import clip_specs, specs_dict
    from facecast.demo.run import MODEL_NAME, MODEL_OPTIONS, DemoSettings
    from facecast.quality.training import default_evaluators
    from facecast.train.trainer import train
    from facecast.workspace import Workspace

    work = args.work.resolve()
    build(work, args.quiet)
    ws = Workspace.open(work)
    model_dir = ws.model(MODEL_NAME)
    log_path = work / "weights_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {"runs": []}
    evaluators = default_evaluators(MODEL_OPTIONS["face_type"])
    if args.minutes > 0:
        t0 = time.perf_counter()
        start_iter = json.loads((model_dir / "state.json").read_text())["iteration"] if (model_dir / "state.json").exists() else 0
        it = start_iter
        changes = dict(kv.split("=", 1) for kv in args.set)
        overrides = {**MODEL_OPTIONS, "eval_every": args.eval_every, **changes}
        try:
            while time.perf_counter() - t0 < args.minutes * 60 and it < args.iters:
                res = train(ws, MODEL_NAME, preset_name="tiny", overrides=overrides,
                            max_iters=min(args.chunk, args.iters - it), evaluators=evaluators, quiet=args.quiet)
                it = res.iteration
                print(f"iteration {it}  {time.perf_counter() - t0:.0f} s  src {res.src_loss:.4f} dst {res.dst_loss:.4f}  "
                      f"{res.ms_per_iter or 0:.0f} ms/it  eval {last_eval(model_dir)}", flush=True)
        except KeyboardInterrupt:  # the trainer saved before re-raising: record the run and stop
            it = json.loads((model_dir / "state.json").read_text())["iteration"]
        log["runs"].append({"from_iter": start_iter, "to_iter": it, "seconds": round(time.perf_counter() - t0, 1),
                            "threads": args.threads, "changes": changes,
                            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        log_path.write_text(json.dumps(log, indent=2))
    if args.export:
        s = DemoSettings()
        state = json.loads((model_dir / "state.json").read_text())
        training = {
            "schema": "facecast.demo-weights/1",
            "made_by": "scripts/train_demo_weights.py (facecast's own trainer)",
            "iteration": state["iteration"],
            "model_options": MODEL_OPTIONS,
            "material": specs_dict(clip_specs(s.src_frames, s.dst_frames)),
            "runs": log["runs"],
            "train_seconds_total": round(sum(r["seconds"] for r in log["runs"]), 1),
            "last_eval": last_eval(model_dir),
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "cpu": platform.processor() or platform.machine()},
            "weights_dtype": "float16 (installed as float32)",
        }
        size = weights.export(model_dir, weights.asset_dir(), training)
        print(f"exported iteration {state['iteration']} to {weights.asset_dir()} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
