"""Studio benchmark: interactive-merger latency and the training page's cost to training.

1. Merger: a settings change -> the re-rendered frame back in the client, through the studio's HTTP API
   (`POST /api/merge/preview`: merge.preview, watermark, JPEG), at 720p and 1080p, with the demo's tiny
   shipped model (2.5 M parameters, 64 px). The model is loaded and the frame predicted once (the first
   request); each following request changes erode/blur/colour settings, which is what a slider or a DFL
   key does. Reported: median and p90 of the client-side round trip, the server's own render time, and a
   new frame (prediction included). Goal: median <= 300 ms at 720p on 2 cores.
2. Training page overhead: the same training run (tiny preset, a studio job) with and without a client
   that does what the Train page does (an SSE connection to /api/jobs/events, /api/train/state at most
   every 1.5 s, the preview image whenever the trainer writes a new one). The client runs in its own
   process, like a browser. Runs alternate (A B A B ...) and the medians of ms/iteration are compared.
   Goal: <= 2 % slower.

The machine is shared: every figure is printed with the load average at the time.
Run from the repo root: `python bench/studio.py [--changes 30] [--train-iters 20] [--pairs 3]`.
Writes bench/results/studio.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
MODEL = "demo"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def _client(app, token):
    from fastapi.testclient import TestClient

    c = TestClient(app, base_url="http://127.0.0.1")
    c.headers["X-Facecast-Token"] = token
    return c


def merger_latency(size_name: str, changes: int, tmp: Path, max_width: int | None = None) -> dict:
    from facecast.demo import weights
    from facecast.merge.testing import build_dst_workspace
    from facecast.studio.app import create_app
    from facecast.workspace import Workspace

    w, h = SIZES[size_name]
    ws = Workspace.open(tmp / f"ws_{size_name}_{max_width}", create=True)
    frames = build_dst_workspace(ws, n_frames=4, size=(w, h), aligned_size=256, face_px=(h * 0.26, h * 0.3))
    weights.install(ws.model(MODEL), weights.shipped_weights())
    token = "b" * 24
    with _client(create_app(ws, token), token) as c:
        cpu: list[float] = []

        def ask(frame: str, settings: dict) -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            r = c.post("/api/merge/preview", json={"model": MODEL, "frame": frame, "settings": settings,
                                                   "max_width": max_width})
            r.raise_for_status()
            assert r.headers["content-type"] == "image/jpeg" and len(r.content) > 1000
            cpu.append((time.process_time() - c0) * 1000)
            return (time.perf_counter() - t0) * 1000, float(r.headers["x-render-ms"])

        first_ms, _ = ask(frames[0], {"erode": 0})  # loads the model, predicts the frame
        round_trip, server = [], []
        cpu.clear()
        transfers = ("rct", "none", "lct", "rct")
        for i in range(changes):
            settings = {"erode": (i * 7) % 60 - 10, "blur": (i * 5) % 40, "color_transfer": transfers[i % 4]}
            rt, sv = ask(frames[0], settings)
            round_trip.append(rt)
            server.append(sv)
        change_cpu = list(cpu)
        new_frame = [ask(f, {"erode": 3})[0] for f in frames[1:]]
    rt_sorted = sorted(round_trip)
    return {
        "size": size_name, "frame": f"{w}x{h}", "sent": f"{min(w, max_width or w)} px wide", "changes": changes,
        "median_ms": round(statistics.median(round_trip), 1),
        "p90_ms": round(rt_sorted[int(0.9 * (len(rt_sorted) - 1))], 1),
        "server_median_ms": round(statistics.median(server), 1),
        # CPU time of this process per change (server and client): a figure the machine's load inflates
        # far less than wall time; the render is mostly one thread, so on free cores wall ~ CPU
        "cpu_median_ms": round(statistics.median(change_cpu), 1),
        "new_frame_median_ms": round(statistics.median(new_frame), 1),
        "first_request_ms": round(first_ms, 1),
        "load": load(),
    }


PAGE_CLIENT = r"""
import json, sys, threading, time, urllib.request
base, token, model, stop_file = sys.argv[1:5]
always = len(sys.argv) > 5  # fetch the preview on every poll (upper bound: a new preview every 1.5 s)
hdr = {"X-Facecast-Token": token}
def sse():
    req = urllib.request.Request(base + "api/jobs/events", headers=hdr)
    with urllib.request.urlopen(req) as r:
        for line in r:
            pass
threading.Thread(target=sse, daemon=True).start()
seen, n = None, 0
import os
while not os.path.exists(stop_file):
    st = json.loads(urllib.request.urlopen(urllib.request.Request(base + "api/train/state?model=" + model, headers=hdr)).read())
    s = st["state"] or {}
    if s.get("preview") and (always or s.get("preview_mtime") != seen):
        seen = s["preview_mtime"]
        urllib.request.urlopen(urllib.request.Request(base + s["preview"].lstrip("/"), headers=hdr)).read()
    n += 1
    time.sleep(1.5)
print(n)
"""


def training_overhead(iters: int, pairs: int, tmp: Path) -> dict:
    import threading

    import uvicorn

    from facecast.studio import stages
    from facecast.studio.app import create_app
    from facecast.studio.server import free_port
    from facecast.demo.run import build_inputs

    from facecast.workspace import Workspace

    ws = Workspace.open(tmp / "ws_train", create=True)
    build_inputs(ws, 6, 8, quiet=True, extract_workers=1)
    token = "c" * 24
    app = create_app(ws, token)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/"
    from facecast.studio.pages.train import faceset_face_type

    opts = {"preview_every": 5, "eval_every": 0, "save_minutes": 0, "batch_size": 4,
            "face_type": faceset_face_type(ws)}
    runs = []
    try:
        for i in range(2 * pairs):
            watched = i % 2 == 1
            name = f"m{i}"
            stop_file = tmp / f"stop{i}"
            client = None
            if watched:
                client = subprocess.Popen([sys.executable, "-c", PAGE_CLIENT, base, token, name, str(stop_file)],
                                          stdout=subprocess.PIPE, text=True)
            c0, t0 = time.process_time(), time.perf_counter()
            job = app.state.jobs.submit("train", stages.train_job(ws, name, "tiny", dict(opts), max_iters=iters),
                                        exclusive_key=f"train:{name}", queue=None)
            app.state.jobs.wait(job.id)
            cpu_per_s = (time.process_time() - c0) / (time.perf_counter() - t0)
            polls = None
            if client is not None:
                stop_file.write_text("x")
                polls = int(client.communicate(timeout=60)[0].strip() or 0)
            if job.state != "done":
                raise RuntimeError(f"training job {job.state}: {job.error}")
            runs.append({"run": i, "page": watched, "ms_per_iter": round(job.result["ms_per_iter"], 1),
                         "process_cpu_s_per_s": round(cpu_per_s, 3),
                         "page_requests": polls, "load": load()})
            print(runs[-1], flush=True)
        cpu = page_cpu_share(base, token, runs, tmp, f"m{2 * pairs - 1}")
    finally:
        server.should_exit = True
        thread.join(30)
    a = [r["ms_per_iter"] for r in runs if not r["page"]]
    b = [r["ms_per_iter"] for r in runs if r["page"]]
    return {"iters_per_run": iters, "pairs": pairs, "runs": runs, "cpu": cpu,
            "median_ms_without_page": statistics.median(a), "median_ms_with_page": statistics.median(b),
            "overhead_pct": round(100 * (statistics.median(b) / statistics.median(a) - 1), 2), "load": load()}


def page_cpu_share(base: str, token: str, runs: list, tmp: Path, model: str, seconds: float = 30.0) -> dict:
    """Load-robust figure: CPU seconds per second the server spends answering the page (state, events,
    a fresh watermarked preview on every poll: an upper bound), measured with no training running, as a
    share of the CPU the training process used per second."""
    def idle_cpu(with_client: bool) -> float:
        stop_file = tmp / f"stop-cpu-{with_client}"
        client = None
        if with_client:
            client = subprocess.Popen([sys.executable, "-c", PAGE_CLIENT, base, token, model, str(stop_file), "always"],
                                      stdout=subprocess.PIPE, text=True)
            time.sleep(3)  # client start-up is not the server's cost
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        rate = (time.process_time() - c0) / (time.perf_counter() - t0)
        if client is not None:
            stop_file.write_text("x")
            client.communicate(timeout=60)
        return rate

    base_rate, page_rate = idle_cpu(False), idle_cpu(True)
    train_rate = statistics.median(r["process_cpu_s_per_s"] for r in runs if not r["page"])
    page_only = max(0.0, page_rate - base_rate)
    return {"server_cpu_s_per_s_idle": round(base_rate, 4), "server_cpu_s_per_s_page": round(page_rate, 4),
            "training_cpu_s_per_s": round(train_rate, 3),
            # what the same page cost is against training that has 2 free cores (2 CPU-s per s)
            "page_share_of_2_free_cores_pct": round(100 * page_only / 2.0, 2),
            "page_share_of_training_cpu_pct": round(100 * page_only / train_rate, 2), "load": load()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument("--train-iters", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-merger", action="store_true", help="keep the merger rows of the last results file")
    args = ap.parse_args()
    os.environ.setdefault("FACECAST_HOME", tempfile.mkdtemp(prefix="facecast-home-"))
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    results: dict = {"load_start": load()}
    from _common import RESULTS

    try:  # a partial rerun keeps the other part's last figures
        previous = json.loads((RESULTS / "studio.json").read_text())["results"]
    except (OSError, KeyError, ValueError):
        previous = {}
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        # full frames, then 1080p as the page asks for it in a 1280-px-wide window (display width)
        if args.skip_merger:
            results["merger"] = previous.get("merger")
        else:
            rows = [merger_latency(s, args.changes, Path(tmp)) for s in SIZES]
            rows.append(merger_latency("1080p", args.changes, Path(tmp), max_width=1280))
            results["merger"] = rows
            print_table(rows, "interactive merger: settings change -> re-rendered frame (client round trip)")
        if args.skip_train:
            if "training_page" in previous:
                results["training_page"] = previous["training_page"]
        else:
            results["training_page"] = training_overhead(args.train_iters, args.pairs, Path(tmp))
            t = results["training_page"]
            print_table([{k: t[k] for k in ("median_ms_without_page", "median_ms_with_page", "overhead_pct", "load")}],
                        "training page overhead (wall clock, alternating runs)")
            print_table([t["cpu"]], "training page overhead (CPU share)")
    results["load_end"] = load()
    print(write_results("studio", results))


if __name__ == "__main__":
    main()
