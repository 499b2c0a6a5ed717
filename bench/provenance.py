"""Provenance costs and robustness at 720p: watermark embed/detect ms, bit accuracy and verdict under
attack (re-encodes, scales 0.3-2x, crops, mirror, rotations +-2/+-5 deg, small 176x144/320x240 outputs),
NSFW check ms and false-positive rate on benign portraits, C2PA signing ms per file type.

Run from the repo root: `python bench/provenance.py` (writes bench/results/provenance.json).
Goal: labelling adds < 10 % to merge time (merge target ~100 ms per 720p frame -> embed < 10 ms)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from _common import print_table, write_results  # noqa: E402

N_FRAMES = 25
PAYLOAD = bytes.fromhex("f00dfacec0ffee42")


def ms(fn, n: int = 10) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def h264(frames, crf=28):
    from facecast.media.synth import h264_round_trip

    return h264_round_trip(frames, crf)


def half(f):
    return cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)


def crop10(f):
    h, w = f.shape[:2]
    return f[h // 20 : h - h // 20, w // 20 : w - w // 20]


def crop(f, frac):
    h, w = f.shape[:2]
    dy, dx = int(h * frac / 2), int(w * frac / 2)
    return np.ascontiguousarray(f[dy : h - dy, dx : w - dx])


def scale(f, s):
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(f, (int(f.shape[1] * s) // 2 * 2, int(f.shape[0] * s) // 2 * 2), interpolation=interp)


def rotate(f, deg):
    """Rotate about the centre, same size, black corners (a re-upload tool's straighten)."""
    h, w = f.shape[:2]
    return cv2.warpAffine(f, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h), flags=cv2.INTER_LINEAR)


def jpeg(f, q):
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(f[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def geometry(d) -> str:
    return f"{'mirrored ' if d.mirrored else ''}rot {d.rotation:+.1f} P {d.period:.1f}{' (searched)' if d.searched else ''}"


def attack_row(wm, name, fr) -> dict:
    t = time.perf_counter()
    d = wm.detect(fr, truth=PAYLOAD)
    return {"attack": name, "verdict": d.verdict, "bit_accuracy": d.bit_accuracy, "snr": round(d.confidence, 1),
            "geometry": geometry(d), "detect_s": round(time.perf_counter() - t, 2)}


def recomposite(frame, info, folder, which="face"):
    """The attacker's compositor from a patch JSON's recipe (the same as tests/test_watermark_patches.py)."""
    import json

    from facecast.media.images import read_image

    info = json.loads(info.read_text())
    img = read_image(folder / info["files"][which], cv2.IMREAD_UNCHANGED)
    face = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    mask = read_image(folder / info["files"]["mask"], cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535.0
    x0, y0, x1, y1 = info["roi"]
    m, wh, fl = np.asarray(info["roi_to_face"]), (x1 - x0, y1 - y0), cv2.WARP_INVERSE_MAP
    fw = np.clip(cv2.warpAffine(face, m, wh, flags=fl | cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), 0, 1)
    mw = np.clip(cv2.warpAffine(mask, m, wh, flags=fl | cv2.INTER_LINEAR), 0, 1)
    mw[mw < 1 / 255] = 0
    out = frame.astype(np.float32) / 255.0
    out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1 - mw[..., None]) + fw * mw[..., None]
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def patch_rows(wm) -> list[dict]:
    """Frames rebuilt from `merge --export-patches` by the JSON recipe (issue 13, bypass 1)."""
    from facecast.media.images import read_image
    from facecast.merge.merger import merge
    from facecast.merge.settings import MergeSettings
    from facecast.merge.testing import FakePredictor, build_dst_workspace
    from facecast.provenance import workspace_payload
    from facecast.provenance.consent import add_consent
    from facecast.workspace import Workspace

    rows = []
    for face_px in (90.0, 120.0):
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace.open(Path(tmp) / "ws", create=True)
            add_consent(ws, "sample", "bundled test photos", "bench", src=True)
            names = build_dst_workspace(ws, n_frames=50, size=(256, 192), face_px=(face_px, face_px * 1.08))
            merge(ws, "m", MergeSettings(mode="overlay", blur=8, erode=2), FakePredictor(64), export_patches=True, quiet=True)
            pdir = ws.data("dst") / "merged_patches"
            comp = [recomposite(read_image(ws.data("dst") / n), pdir / f"{n[:-4]}_0.json", pdir) for n in names]
            share = float(np.mean([(read_image(ws.merged_mask / n, cv2.IMREAD_GRAYSCALE) > 0).mean() for n in names]))
            truth = workspace_payload(ws)
            for crf in (18, 28):
                for n in (25, 50):
                    d = wm.detect(h264(comp, crf)[:n], truth=truth)
                    rows.append({"attack": f"patch composite, mask {share:.0%} of 256x192, CRF {crf} (pooled {n})",
                                 "verdict": d.verdict, "bit_accuracy": d.bit_accuracy, "snr": round(d.confidence, 1),
                                 "geometry": geometry(d), "detect_s": None})
    return rows


def main() -> None:
    import torch

    torch.set_num_threads(2)
    from facecast.media.synth import Actor, render_clip, sample_photo
    from facecast.provenance import watermark as wm

    img, lm = sample_photo("einstein")
    t_img, t_lm = sample_photo("takeo")
    clip = render_clip(
        [Actor(img, lm, (0.3, 0.5), (0.6, 0.5), face_px=(240, 280)), Actor(t_img, t_lm, (0.75, 0.45), (0.7, 0.5), face_px=(200, 190))],
        size=(1280, 720), n_frames=N_FRAMES, fps=25.0,
    )
    frames = clip.frames
    marked = [wm.embed(f, PAYLOAD) for f in frames]
    rng = np.random.default_rng(0)
    embed_ms = ms(lambda: wm.embed(frames[0], PAYLOAD), 20)
    y0, y1 = wm._luma(frames[0]), wm._luma(marked[0])
    psnr = float(10 * np.log10(255**2 / np.mean((y0 - y1) ** 2)))
    rgb_psnr = float(10 * np.log10(255**2 / np.mean((frames[0].astype(float) - marked[0]) ** 2)))

    t = time.perf_counter()
    wm.detect(marked[:1])
    detect1_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    wm.detect(marked)
    detect_pool_ms = (time.perf_counter() - t) * 1000 / len(marked)

    enc = h264(marked)
    attacks = {
        "clean (1 frame)": marked[:1],
        "0.5x (1 frame)": [half(marked[0])],
        "10% crop (1 frame)": [crop10(marked[0])],
        "10% crop + resize back (1 frame)": [cv2.resize(crop10(marked[0]), (1280, 720))],
        "20% crop (1 frame)": [crop(marked[0], 0.2)],
        "mirror (1 frame)": [marked[0][:, ::-1]],
        "rotate +2 deg (1 frame)": [rotate(marked[0], 2)],
        "rotate -2 deg (1 frame)": [rotate(marked[0], -2)],
        "rotate +5 deg (1 frame)": [rotate(marked[0], 5)],
        "rotate -5 deg (1 frame)": [rotate(marked[0], -5)],
        "0.3x (1 frame)": [scale(marked[0], 0.3)],
        "2x (1 frame)": [scale(marked[0], 2.0)],
        "grayscale (1 frame)": [np.repeat(cv2.cvtColor(marked[0], cv2.COLOR_RGB2GRAY)[..., None], 3, 2)],
        "noise sigma 8 (1 frame)": [np.clip(marked[0] + rng.normal(0, 8, marked[0].shape), 0, 255).astype(np.uint8)],
        "JPEG q70 still": [jpeg(marked[0], 70)],
        "CRF 28 (1 frame)": enc[5:6],
        f"CRF 28 (pooled {N_FRAMES})": enc,
        f"CRF 35 (pooled {N_FRAMES})": h264(marked, 35),
        f"0.5x then CRF 28 (pooled {N_FRAMES})": h264([half(f) for f in marked]),
        f"0.4x then CRF 28 (pooled {N_FRAMES})": h264([scale(f, 0.4) for f in marked]),
        f"10% crop + 0.5x + CRF 28 (pooled {N_FRAMES})": h264([half(crop10(f)) for f in marked]),
        f"20% crop + CRF 28 (pooled {N_FRAMES})": h264([crop(f, 0.2) for f in marked]),
        f"mirror + CRF 28 (pooled {N_FRAMES})": h264([np.ascontiguousarray(f[:, ::-1]) for f in marked]),
        f"rotate +2 deg + CRF 28 (pooled {N_FRAMES})": h264([rotate(f, 2) for f in marked]),
        f"rotate -5 deg + CRF 28 (pooled {N_FRAMES})": h264([rotate(f, -5) for f in marked]),
        f"fps 25->12.5 + trim + CRF 28 (pooled {N_FRAMES // 2 - 1})": h264(marked[3::2]),
    }
    rows = []
    for name, fr in attacks.items():
        rows.append(attack_row(wm, name, fr))
    # facecast's own small outputs (CRF 18, as `facecast video` writes) and a CRF 28 re-upload of them
    for size in ((160, 120), (176, 144), (320, 240)):
        small = render_clip([Actor(img, lm, (0.35, 0.5), (0.65, 0.5), face_px=(size[0] * 0.3, size[0] * 0.33))], size=size, n_frames=50, fps=25.0)
        sm = [wm.embed(f, PAYLOAD) for f in small.frames]
        sp = float(10 * np.log10(255**2 / np.mean((wm._luma(small.frames[0]) - wm._luma(sm[0])) ** 2)))
        for crf in (18, 28):
            for n in (25, 50):
                rows.append({**attack_row(wm, f"{size[0]}x{size[1]} output CRF {crf} (pooled {n})", h264(sm, crf)[:n]), "y_psnr": round(sp, 1)})
    rows += patch_rows(wm)
    for name, fr in {"unmarked (1 frame)": frames[:1], f"unmarked CRF 28 (pooled {N_FRAMES})": h264(frames)}.items():
        d = wm.detect(fr)
        rows.append({"attack": name, "verdict": d.verdict, "bit_accuracy": None, "snr": round(d.confidence, 1), "geometry": geometry(d)})
    import os

    print_table(rows, f"watermark at 1280x720 (64-bit payload; threshold {wm.THRESHOLD}; load {os.getloadavg()[0]:.1f})")

    # NSFW gate: speed and false positives on benign portraits at several crops/sizes/flips
    from facecast.provenance.content_gate import REFUSE_AT, ContentGate

    gate = ContentGate()
    nsfw_ms = ms(lambda: gate.score(frames[0]), 10)
    scores = []
    for name in ("einstein", "takeo", "breakingbad", "astronaut"):
        im = sample_photo(name)[0]
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2RGB) if im.ndim == 2 else im
        h, w = im.shape[:2]
        for flip in (False, True):
            base = im[:, ::-1] if flip else im
            for c in (0.0, 0.1, 0.2, 0.3):
                cr = base[int(h * c / 2) : h - int(h * c / 2), int(w * c / 2) : w - int(w * c / 2)]
                for s in (0.25, 0.5, 1.0, 2.0):
                    scores.append(gate.score(cv2.resize(cr, (max(16, int(cr.shape[1] * s)), max(16, int(cr.shape[0] * s))))))
    scores += [gate.score(f) for f in frames[::5]]
    fp = float(np.mean(np.array(scores) >= REFUSE_AT))

    # C2PA signing per file type
    from facecast.media.images import write_image
    from facecast.media.synth import write_clip
    from facecast.provenance import sign_output
    from facecast.workspace import Workspace

    sign = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws", create=True)
        for suffix in (".jpg", ".png", ".mp4"):
            times = []
            for i in range(5):
                p = Path(tmp) / f"f{i}{suffix}"
                if suffix == ".mp4":
                    write_clip(p, marked, 25.0)
                else:
                    write_image(p, marked[0])
                t = time.perf_counter()
                sign_output(ws, p, model_name="bench")
                times.append((time.perf_counter() - t) * 1000)
            sign[suffix] = {"ms": float(np.median(times[1:])), "bytes": p.stat().st_size}

    summary = [
        {"metric": "watermark embed ms / 720p frame", "value": embed_ms},
        {"metric": "  share of a 100 ms merge frame (%)", "value": embed_ms},
        {"metric": "watermark Y-PSNR dB", "value": psnr},
        {"metric": "watermark RGB-PSNR dB", "value": rgb_psnr},
        {"metric": "detect ms (1 frame)", "value": detect1_ms},
        {"metric": f"detect ms / frame (pooled {N_FRAMES})", "value": detect_pool_ms},
        {"metric": "NSFW check ms / 720p frame", "value": nsfw_ms},
        {"metric": f"NSFW false-positive rate ({len(scores)} benign)", "value": fp},
        {"metric": "NSFW max benign score", "value": float(max(scores))},
        *({"metric": f"C2PA sign ms {k} ({v['bytes'] // 1024} KiB)", "value": v["ms"]} for k, v in sign.items()),
    ]
    print_table(summary, "provenance costs")
    write_results(
        "provenance",
        {
            "embed_ms_720p": embed_ms,
            "embed_share_of_100ms_merge": embed_ms / 100,
            "y_psnr_db": psnr,
            "rgb_psnr_db": rgb_psnr,
            "detect_ms_single": detect1_ms,
            "detect_ms_per_frame_pooled": detect_pool_ms,
            "attacks": rows,
            "threshold": wm.THRESHOLD,
            "nsfw_ms_720p": nsfw_ms,
            "nsfw_false_positive_rate": fp,
            "nsfw_benign_images": len(scores),
            "nsfw_max_benign_score": float(max(scores)),
            "c2pa_sign": sign,
        },
    )


if __name__ == "__main__":
    main()
