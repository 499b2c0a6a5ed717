"""Colour transfer: facecast (facecast.imaging.color) against DeepFaceLab's numpy code, side by side.

DeepFaceLab's side is tests/dfl_color_oracle.py, a literal numpy transcription of DeepFaceLab's
`core/imagelib/color_transfer.py` and of how its merger calls it: the same code the tests use as the
accuracy oracle, here the speed baseline. Both run in this one process on the same 256 px inputs
(the bundled breakingbad face recoloured toward the astronaut's, and the reverse), with the same seed,
alternating run by run so machine load hits both alike.

Per mode: PSNR of facecast's output against DeepFaceLab's (the lower of the two pairs; goal >= 40 dB),
the median time of each (wall and CPU time of this process), and DeepFaceLab / facecast (goal >= 2x).
The ratio is taken on CPU time, which a busy machine inflates far less than wall time; the wall-time
ratio is kept beside it. Masked modes run with a full mask, where DeepFaceLab's masking (multiply by
the mask) and facecast's (select the pixels) agree; `psnr_face_mask_db` shows, for information, how
far the two conventions are apart with the real face mask (inside the mask).

Run from the repo root: `python bench/color.py [--repeat 5] [--size 256]`. Writes bench/results/color.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _common import print_table, write_results  # noqa: E402

from facecast.imaging import color  # noqa: E402
from tests import dfl_color_oracle as dfl  # noqa: E402

MODES = ("rct", "lct", "mkl", "mkl-m", "idt", "idt-m", "sot", "sot-m", "mix-m", "hist-match")
HIST_THRESHOLD = 238  # the merger's default


def _load() -> float:
    return os.getloadavg()[0]


def run_dfl(mode: str, img, ref, mask):
    if mode == "hist-match":
        return dfl.merger_hist_match(img, ref, None if mask is None else mask[..., None], HIST_THRESHOLD)
    return dfl.transfer(mode, img, ref, None if mask is None else mask[..., None], seed=0)


def run_facecast(mode: str, img, ref, mask):
    if mode == "hist-match":
        return color.hist_match(img, ref, mask, mask, HIST_THRESHOLD)
    return color.color_transfer(mode, img, ref, mask, mask, seed=0)


def _timed(fn, *args) -> tuple[np.ndarray, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def measure(mode: str, pairs, repeat: int) -> dict:
    full = np.ones(pairs[0][1].shape[:2], np.float32)
    masked = mode.endswith("-m") or mode == "hist-match"
    psnrs, face_psnrs = [], []
    for _, img, ref, mask in pairs:
        m = full if masked else None
        psnrs.append(dfl.psnr(run_dfl(mode, img, ref, m), run_facecast(mode, img, ref, m)))
        if masked:
            sel = mask > 0.5
            a, b = run_dfl(mode, img, ref, mask), run_facecast(mode, img, ref, mask)
            face_psnrs.append(dfl.psnr(a[sel], b[sel]))
    times = {"dfl": ([], []), "facecast": ([], [])}
    loads = []
    img, ref = pairs[0][1], pairs[0][2]
    m = full if masked else None
    run_facecast(mode, img, ref, m)  # warm-up (first-call costs of OpenCV and scipy)
    for _ in range(repeat):
        for who, fn in (("dfl", run_dfl), ("facecast", run_facecast)):
            _, wall, cpu = _timed(fn, mode, img, ref, m)
            times[who][0].append(wall)
            times[who][1].append(cpu)
        loads.append(_load())
    med = {who: (float(np.median(w)) * 1000, float(np.median(c)) * 1000) for who, (w, c) in times.items()}
    return {
        "mode": mode,
        "psnr_vs_dfl_db": round(min(psnrs), 1),
        "facecast_ms": round(med["facecast"][1], 1),
        "dfl_ms": round(med["dfl"][1], 1),
        "ratio": round(med["dfl"][1] / med["facecast"][1], 1),
        "wall_facecast_ms": round(med["facecast"][0], 1),
        "wall_dfl_ms": round(med["dfl"][0], 1),
        "wall_ratio": round(med["dfl"][0] / med["facecast"][0], 1),
        "load": round(float(np.mean(loads)), 1),
        "psnr_face_mask_db": round(min(face_psnrs), 1) if face_psnrs else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--modes", nargs="*", default=list(MODES))
    args = ap.parse_args()
    pairs = dfl.face_pairs(args.size)
    rows = []
    for mode in args.modes:
        rows.append(measure(mode, pairs, args.repeat))
        print(f"  {mode}: {rows[-1]['psnr_vs_dfl_db']} dB, {rows[-1]['ratio']}x (load {rows[-1]['load']})", flush=True)
    print_table(rows, f"colour transfer at {args.size} px: facecast vs DeepFaceLab's numpy code (CPU ms, median of {args.repeat})")
    met = all(r["psnr_vs_dfl_db"] >= 40 and r["ratio"] >= 2 for r in rows)
    print(f"goal (>= 40 dB and >= 2x in every mode): {'met' if met else 'MISSED'}; load now {_load():.1f}")
    path = write_results("color", {"size": args.size, "repeat": args.repeat, "goal_met": met, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
