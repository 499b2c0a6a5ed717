"""XSeg benchmark: mask quality on held-out synthetically occluded real-photo faces, and speed.

Quality: IoU on the whole face and on the occluded region (occluders grown by ~3 %, within the face) for
  hull mask | no-label pretrain | pretrain + 10 labelled faces | pretrain + 50 labelled faces.
The held-out set uses new random poses, lighting and occluders of the bundled annotated photos (the same
three people as training: there are no other annotated photos to hold out).
Speed: training iterations/s (batch 8) and apply faces/s (segmenter alone, and `xseg apply` end to end
with JPEG decode + mask PNG encode + metadata rewrite) at the preset's resolution.

    python bench/xseg.py                       # default preset, 256 px (~10 min on 2 cores)
    python bench/xseg.py --pretrain-iters 3000 # longer, closer to a real pretrain
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import print_table, write_results  # noqa: E402
from facecast.masks.synthfaces import occlusion_set, region_iou, write_faceset  # noqa: E402
from facecast.masks.xseg.apply import load_segmenter, xseg_apply  # noqa: E402
from facecast.masks.xseg.model import preset_options  # noqa: E402
from facecast.masks.xseg.train import XSegTrainSettings, iou, xseg_pretrain, xseg_train  # noqa: E402
from facecast.workspace import Workspace  # noqa: E402


def evaluate(name: str, pred: np.ndarray, ev: dict) -> dict:
    return {"mask": name, "iou_whole": round(iou(pred, ev["target"]), 4),
            "iou_occluded": round(region_iou(pred, ev["target"], ev["region"]), 4),
            "heldout_before": None, "heldout_after": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--faces", type=int, default=40, help="unlabelled faces per side for pretraining")
    ap.add_argument("--eval", type=int, default=32, help="held-out occluded faces")
    ap.add_argument("--pretrain-iters", type=int, default=300)
    ap.add_argument("--finetune-iters", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    opts = preset_options(args.preset)
    r = opts.resolution
    settings = XSegTrainSettings(batch_size=8, device="cpu", save_every=10**9, preview_every=10**9)
    tmp = Path(tempfile.mkdtemp(prefix="xseg_bench_"))
    try:
        ws = Workspace.open(tmp / "pre", create=True)
        write_faceset(ws.aligned("src"), args.faces, size=r, seed=1)
        write_faceset(ws.aligned("dst"), args.faces, size=r, seed=2)
        ev = occlusion_set(args.eval, size=r, seed=999)
        rows = [evaluate("hull", ev["hull"], ev)]

        res = xseg_pretrain(ws, "xseg", preset=args.preset, target_iter=args.pretrain_iters, settings=settings, quiet=True)
        train_its = res["it_per_s"]
        seg = load_segmenter(ws.model("xseg"), "cpu")
        rows.append({**evaluate(f"pretrain ({args.pretrain_iters} it, no labels)", seg(ev["images"]), ev)})

        for n in (10, 50):
            wsn = Workspace.open(tmp / f"ft{n}", create=True)
            write_faceset(wsn.aligned("dst"), n, size=r, seed=10 + n, labelled=n, prefix="l")
            shutil.copytree(ws.model("xseg"), wsn.model("xseg"))
            res_n = xseg_train(wsn, "xseg", target_iter=args.finetune_iters, settings=settings, quiet=True)
            seg_n = load_segmenter(wsn.model("xseg"), "cpu")
            rows.append({**evaluate(f"pretrain + {n} labelled ({args.finetune_iters} it)", seg_n(ev["images"]), ev),
                         "heldout_before": res_n["heldout_iou_before"], "heldout_after": res_n["heldout_iou_after"]})

        # apply speed: the segmenter alone (batch 16), then the whole command on the pretrain faces
        faces = np.concatenate([ev["images"]] * max(1, 64 // len(ev["images"])))[:64]
        seg(faces[:16])
        t = time.perf_counter()
        seg(faces)
        seg_fps = len(faces) / (time.perf_counter() - t)
        applied = xseg_apply(ws, "dst", "xseg", batch_size=16, device="cpu", quiet=True)
        hull_row = rows[0]
        best = max(rows[1:], key=lambda x: x["iou_occluded"])
        results = {
            "preset": args.preset, "resolution": r, "threads": args.threads,
            "pretrain_faces": 2 * args.faces, "eval_faces": args.eval,
            "pretrain_iters": args.pretrain_iters, "finetune_iters": args.finetune_iters,
            "rows": rows,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "train_it_per_s": train_its, "train_batch": 8,
            "apply_faces_per_s_model": round(seg_fps, 1),
            "apply_faces_per_s_command": applied["faces_per_s"],
            "goals": {
                "occluded_iou_ge_0.9": best["iou_occluded"] >= 0.9,
                "occluded_iou_ge_hull_plus_0.1": best["iou_occluded"] >= hull_row["iou_occluded"] + 0.1,
                "apply_ge_30_faces_per_s": seg_fps >= 30,
            },
        }
        print_table(rows, f"XSeg quality on {args.eval} held-out occluded faces ({r}px, {args.preset})")
        print(f"train {train_its} it/s (batch 8); apply {seg_fps:.1f} faces/s (model), "
              f"{applied['faces_per_s']} faces/s (xseg apply command)")
        print("goals:", results["goals"])
        print("wrote", write_results("xseg", results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
