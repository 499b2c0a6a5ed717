"""Training speed: samples/s and ms/iteration per architecture, resolution and batch size, through the
real `train()` loop (sample workers, losses, optimizer), against the machine's measured conv throughput.

    python bench/train_speed.py                 # CPU: df/liae x 64/96/128 x batch 4/8, HALVED SAEHD dims
    python bench/train_speed.py --dims full     # DeepFaceLab's default dims (slow on a CPU)
    python bench/train_speed.py --vs-port       # side by side with the plain PyTorch port of SAEHD

`--vs-port` (issue 17): DF 64 px, DeepFaceLab's default dims, batch 8, 2 threads; the plain eager port
(`shared/bench/saehd_plain_port.py`, fp32, RMSprop) and facecast's whole training loop (fp32 with DFL's
AdaBelief, fp32 with the port's RMSprop, bf16) run alternately, round after round, so load drift hits
all of them; medians. Goal: facecast fp32 <= 0.62x the port's time (= 1.5x DeepFaceLab, whose own
graph took 0.86-0.93x the port's time on a quiet Sapphire Rapids machine: 3.60-3.64 s/iteration).

Reported per configuration: ms/iteration, samples/s, model GFLOP per step (counted with torch's
FlopCounterMode), achieved GFLOP/s, fraction of the measured conv-stack throughput in the same
precision, and the share of step time spent waiting for the next batch. Goals: data wait < 5 %,
>= 60 % of measured conv throughput on CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from _common import print_table, write_results  # noqa: E402

DIMS = {"full": dict(ae_dims=256, e_dims=64, d_dims=64, d_mask_dims=22),
        "half": dict(ae_dims=128, e_dims=32, d_dims=32, d_mask_dims=11),
        "quarter": dict(ae_dims=64, e_dims=16, d_dims=16, d_mask_dims=6)}


def conv_throughput(device: str, dtype: torch.dtype | None, seconds: float = 3.0) -> float:
    """GFLOP/s of a plain 3x3 conv stack (forward + backward), the reference "peak" of this machine."""
    ch, res, batch, depth = 64, 64, 8, 4
    net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Conv2d(ch, ch, 3, padding=1), torch.nn.LeakyReLU(0.1))
                                for _ in range(depth)]).to(device)
    x = torch.randn(batch, ch, res, res, device=device, requires_grad=True)
    flops = 3 * depth * 2 * batch * ch * ch * 9 * res * res  # fwd + 2x for the backward (input + weight grads)
    ctx = (lambda: torch.autocast(device.split(":")[0], dtype=dtype)) if dtype else None

    def step() -> None:
        if ctx:
            with ctx():
                y = net(x)
        else:
            y = net(x)
        y.float().mean().backward()

    step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        step()
        n += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return flops * n / (time.perf_counter() - t0) / 1e9


def step_gflop(options) -> float:
    """FLOPs of one training step of the swap model per sample (forward + backward), in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    from facecast.train import losses
    from facecast.train.archs.registry import build_model

    model = build_model(options)
    model.train_swap = False
    r = options.resolution
    x = torch.rand(1, 3, r, r)
    m = torch.ones(1, 1, r, r)
    with FlopCounterMode(display=False) as fc:
        o = model.forward_train(x, x)
        loss = losses.reconstruction_loss(o.src, o.src_mask, x, m, m, r, True, False).mean() + \
            losses.reconstruction_loss(o.dst, o.dst_mask, x, m, m, r, True, False).mean()
        loss.backward()
    return fc.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", choices=sorted(DIMS), default="half")
    ap.add_argument("--archs", default="df,liae")
    ap.add_argument("--resolutions", default="64,96,128")
    ap.add_argument("--batches", default="4,8")
    ap.add_argument("--iters", type=int, default=4, help="timed iterations per config (plus one warm-up)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="auto (as measured at start-up), fp32, bfloat16")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--vs-port", action="store_true", help="side by side with the plain PyTorch port (see above)")
    ap.add_argument("--port", default=str(PORT), help="path of saehd_plain_port.py")
    ap.add_argument("--rounds", type=int, default=2, help="--vs-port: alternating rounds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.vs_port:
        vs_port(args)
        return

    from facecast.compute import choose_device
    from facecast.train.archs.registry import build_model
    from facecast.train.options import preset
    from facecast.train.testdata import make_faceset
    from facecast.train.trainer import train
    from facecast.workspace import Workspace

    choice = choose_device(args.device)
    amp = choice.amp_dtype if args.precision == "auto" else (None if args.precision == "fp32" else args.precision)
    dtype = getattr(torch, amp) if amp else None
    t0 = time.perf_counter()
    peak_fp32 = conv_throughput(choice.device, None)
    peak = conv_throughput(choice.device, dtype) if dtype else peak_fp32
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws", create=True)
        from facecast.provenance.consent import add_consent

        add_consent(ws, "sample", "bundled public-domain/test photos, benchmark only", "facecast bench", src=True)
        make_faceset(ws.aligned("src"), "einstein", 24, size=128)
        make_faceset(ws.aligned("dst"), "takeo", 24, size=128, seed=1)
        for arch in args.archs.split(","):
            for res in map(int, args.resolutions.split(",")):
                opts = preset("saehd").with_overrides(dict(arch=arch, resolution=res, **DIMS[args.dims]))
                gflop = step_gflop(opts)
                params = sum(p.numel() for p in build_model(opts).parameters())
                for batch in map(int, args.batches.split(",")):
                    name = f"{arch}-{res}-b{batch}"
                    r = train(ws, name, "saehd", overrides=dict(arch=arch, resolution=res, batch_size=batch,
                                                               num_workers=args.workers, preview_every=0,
                                                               eval_every=0, **DIMS[args.dims]),
                              device=args.device, max_iters=args.iters + 1, quiet=True,
                              precision=amp or "fp32")
                    # the conv reference again right after the run: on a shared machine the load changes
                    # minute to minute, so the fraction is taken against the neighbouring measurement
                    peak_now = conv_throughput(choice.device, dtype, seconds=1.5)
                    achieved = gflop * batch / (r.ms_per_iter / 1000)
                    row = {"arch": arch, "res": res, "batch": batch, "params_M": round(params / 1e6, 2),
                           "ms_per_iter": round(r.ms_per_iter, 1), "samples_per_s": round(r.samples_per_s, 2),
                           "gflop_per_sample": round(gflop, 2), "gflop_s": round(achieved, 1),
                           "conv_now_gflop_s": round(peak_now, 1), "frac_conv_peak": round(achieved / peak, 3),
                           "frac_conv_now": round(achieved / peak_now, 3), "data_wait": round(r.data_wait_share, 4)}
                    rows.append(row)
                    print(row, flush=True)
                    write_results("train_speed", _results(choice, amp, args, peak, peak_fp32, rows, t0, partial=True))
    results = _results(choice, amp, args, peak, peak_fp32, rows, t0, partial=False)
    print_table(rows, f"train speed ({choice.device}, {amp or 'fp32'}, {args.dims} dims, conv peak {peak:.0f} GFLOP/s)")
    print("->", write_results("train_speed", results))


PORT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "saehd_plain_port.py"
DFL_ANCHOR = {"dfl_s_per_iter": [3.60, 3.64], "port_s_per_iter": 3.88, "machine": "quiet 2-core Sapphire Rapids (AMX)",
              "source": "issue 17: DeepFaceLab's own graph, TensorFlow 2.21, fp32, AdaBelief, 2 threads"}


def vs_port(args) -> None:
    """Alternate the port and facecast's loop; print one side-by-side row per facecast variant."""
    import json
    import statistics
    import subprocess

    from facecast.provenance.consent import add_consent
    from facecast.train.testdata import make_faceset
    from facecast.train.trainer import train
    from facecast.workspace import Workspace

    port = Path(args.port)
    if not port.is_file():
        raise SystemExit(f"error: {port} not found; pass --port PATH")
    threads = args.threads or 2
    torch.set_num_threads(threads)
    steps = max(3, args.iters)
    variants = {"facecast fp32, AdaBelief (DFL's default)": dict(optimizer="adabelief", precision="fp32"),
                "facecast fp32, RMSprop (the port's)": dict(optimizer="rmsprop", precision="fp32"),
                "facecast bf16, AdaBelief": dict(optimizer="adabelief", precision="bfloat16")}
    times: dict[str, list[float]] = {"plain port (eager PyTorch, fp32, RMSprop)": []}
    times.update({k: [] for k in variants})
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws", create=True)
        add_consent(ws, "sample", "bundled public-domain/test photos, benchmark only", "facecast bench", src=True)
        make_faceset(ws.aligned("src"), "einstein", 24, size=128)
        make_faceset(ws.aligned("dst"), "takeo", 24, size=128, seed=1)
        for rnd in range(args.rounds):
            out = Path(tmp) / f"port{rnd}.json"
            subprocess.run([sys.executable, str(port), "--archi", "df", "--res", "64", "--bs", "8", "--threads",
                            str(threads), "--warmup", "2", "--steps", str(steps), "--json_out", str(out)],
                           check=True, capture_output=True)
            times["plain port (eager PyTorch, fp32, RMSprop)"].append(json.loads(out.read_text())["median_s"])
            for name, v in variants.items():
                r = train(ws, f"m{rnd}-{v['optimizer']}-{v['precision']}", "saehd",
                          overrides=dict(arch="df", resolution=64, batch_size=8, optimizer=v["optimizer"],
                                         num_workers=1, preview_every=0, eval_every=0, **DIMS["full"]),
                          max_iters=steps + 1, quiet=True, precision=v["precision"])
                times[name].append(r.ms_per_iter / 1000)
            print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{k.split(' (')[0]} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    port_s = statistics.median(times["plain port (eager PyTorch, fp32, RMSprop)"])
    rows = [{"implementation": k, "s_per_iter": round(statistics.median(v), 3), "vs_port": round(statistics.median(v) / port_s, 3),
             "runs": [round(x, 3) for x in v]} for k, v in times.items()]
    rows.append({"implementation": "DeepFaceLab's graph (anchor, issue 17, other machine)", "s_per_iter": None,
                 "vs_port": "0.86-0.93", "runs": DFL_ANCHOR["dfl_s_per_iter"]})
    print_table(rows, f"SAEHD DF 64 px, DFL default dims, batch 8, {threads} threads; goal: facecast fp32 <= 0.62x the port")
    print("->", write_results("train_speed_vs_port", {
        "rows": rows, "goal_fp32_vs_port": 0.62, "dfl_anchor": DFL_ANCHOR, "threads": threads, "steps": steps,
        "rounds": args.rounds, "wall_s": round(time.perf_counter() - t0, 1),
        "note": "port: median of its timed steps on a fixed batch (no sample loading); facecast: ms/iteration of "
                "the real train() loop after its warm-up step, sample worker included"}))


def _results(choice, amp, args, peak: float, peak_fp32: float, rows: list[dict], t0: float, partial: bool) -> dict:
    """The JSON document; written after every configuration so an interrupted run keeps its rows."""
    return {
        "device": choice.device, "precision": amp or "fp32", "dims": args.dims, "dims_values": DIMS[args.dims],
        "iters_timed": args.iters, "workers": args.workers, "torch_threads": torch.get_num_threads(),
        "conv_peak_gflop_s": round(peak, 1), "conv_peak_fp32_gflop_s": round(peak_fp32, 1),
        "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
        "note": "ms/iteration excludes the first (warm-up) step; conv peak = 4-layer 3x3 conv stack 64ch 64px batch 8, "
                "fwd+bwd, in the same precision; conv_now = the same reference re-measured right after each "
                "configuration; the machine may be shared, so compare ratios within one run",
        "partial": partial,
    }


if __name__ == "__main__":
    main()
