"""Which changes make one SAEHD training step faster on this machine: each lever alone and together,
measured on facecast's own model, losses and optimizer, with the variants INTERLEAVED round by round
(a shared machine's load drifts minute to minute; interleaving puts every variant under the same drift).

    python bench/train_levers.py                        # DF 64 px, DeepFaceLab's default dims, batch 8
    python bench/train_levers.py --dims quick --rounds 5

Levers (issue 17): stacked src+dst through the shared encoder/inter (one GEMM per layer instead of two),
multi-tensor AdaBelief, channels-last memory format, bf16 autocast, torch.compile (optional: its
compile time is reported, since a 15-minute CPU budget pays for it). The step excludes sample loading
(the trainer overlaps it in a worker; `train_speed.py` times the whole loop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from _common import print_table, write_results  # noqa: E402

DIMS = {"full": dict(ae_dims=256, e_dims=64, d_dims=64, d_mask_dims=22)}


class LoopAdaBelief(torch.optim.Optimizer):
    """The per-tensor AdaBelief loop facecast used before the multi-tensor version (the baseline)."""

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, dict(lr=lr, betas=(0.9, 0.999), eps=1e-16))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"], st["m"], st["s"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["step"] += 1
                t, m, s, g = st["step"], st["m"], st["s"], p.grad
                m.mul_(b1).add_(g, alpha=1 - b1)
                d = g - m
                s.mul_(b2).addcmul_(d, d, value=1 - b2).add_(group["eps"])
                denom = (s / (1 - b2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1**t))


def make_step(opts, stacked: bool, foreach: bool, channels_last: bool, bf16: bool, compiled: bool):
    from facecast.train import losses
    from facecast.train.archs.registry import build_model
    from facecast.train.optim import make_optimizer

    torch.manual_seed(0)
    model = build_model(opts)
    model.train_swap = False
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer("adabelief", model.parameters(), opts.lr) if foreach else LoopAdaBelief(model.parameters(), opts.lr)
    r, b = opts.resolution, opts.batch_size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(b, 3, r, r, generator=g).contiguous(memory_format=fmt) for _ in range(4)]
    yy, xx = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    mask = (((yy - r / 2) ** 2 + (xx - r / 2) ** 2) < (0.4 * r) ** 2).float()[None, None].repeat(b, 1, 1, 1)

    def forward(s, d):
        if stacked:
            o = model.forward_train(s, d)
            return o.src, o.src_mask, o.dst, o.dst_mask
        sc, dc = model.code(s), model.code(d)  # DF's former two encoder passes
        return (*model.decoder_src(sc), *model.decoder_dst(dc))

    fwd = torch.compile(forward) if compiled else forward

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ps, psm, pd, pdm = fwd(imgs[0], imgs[2])
        ps, psm, pd, pdm = (t.float() for t in (ps, psm, pd, pdm))
        sl = losses.reconstruction_loss(ps, psm, imgs[1], mask, None, r, True, False)
        dl = losses.reconstruction_loss(pd, pdm, imgs[3], mask, None, r, True, False)
        opt.zero_grad(set_to_none=True)
        (sl.mean() + dl.mean()).backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="df")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dims", default="full", help="full (DFL defaults) or a preset name, e.g. quick")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from facecast.train.options import preset

    if args.dims in DIMS:
        opts = preset("saehd").with_overrides(dict(arch=args.arch, resolution=args.resolution,
                                                   batch_size=args.batch, **DIMS[args.dims]))
    else:
        opts = preset(args.dims).with_overrides(dict(batch_size=args.batch))
    variants = {
        "baseline (two encoder passes, per-tensor AdaBelief, NCHW, fp32)": dict(stacked=False, foreach=False, channels_last=False, bf16=False),
        "+ stacked src/dst": dict(stacked=True, foreach=False, channels_last=False, bf16=False),
        "+ multi-tensor AdaBelief": dict(stacked=False, foreach=True, channels_last=False, bf16=False),
        "+ channels-last": dict(stacked=False, foreach=False, channels_last=True, bf16=False),
        "stacked + multi-tensor (fp32 default)": dict(stacked=True, foreach=True, channels_last=False, bf16=False),
        "stacked + multi-tensor + channels-last": dict(stacked=True, foreach=True, channels_last=True, bf16=False),
        "stacked + multi-tensor, bf16": dict(stacked=True, foreach=True, channels_last=False, bf16=True),
        "stacked + multi-tensor + channels-last, bf16": dict(stacked=True, foreach=True, channels_last=True, bf16=True),
    }
    compile_s = None
    if args.compile:
        variants["stacked + multi-tensor, torch.compile"] = dict(stacked=True, foreach=True, channels_last=False, bf16=False, compiled=True)
    steps, times = {}, {k: [] for k in variants}
    for name, v in variants.items():
        t0 = time.perf_counter()
        steps[name] = make_step(opts, v["stacked"], v["foreach"], v["channels_last"], v["bf16"], v.get("compiled", False))
        steps[name]()  # warm-up (and compilation)
        if v.get("compiled"):
            compile_s = time.perf_counter() - t0
    t_start = time.perf_counter()
    for rnd in range(args.rounds):
        for name, step in steps.items():
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)
    base = statistics.median(times[next(iter(variants))])
    rows = [{"variant": n, "ms_per_step": round(1000 * statistics.median(t), 1),
             "vs_baseline": round(statistics.median(t) / base, 3)} for n, t in times.items()]
    params = sum(p.numel() for p in __import__("facecast.train.archs.registry", fromlist=["build_model"]).build_model(opts).parameters())
    title = f"training-step levers: {opts.arch} {opts.resolution}px batch {opts.batch_size}, {params / 1e6:.1f} M params, {args.threads} threads"
    print_table(rows, title)
    print("->", write_results(f"train_levers_{args.dims}", {
        "arch": opts.arch, "resolution": opts.resolution, "batch": opts.batch_size, "dims": args.dims,
        "params": params, "threads": args.threads, "rounds": args.rounds, "steps_per_round": args.steps,
        "compile_seconds": None if compile_s is None else round(compile_s, 1), "rows": rows,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "note": "median of rounds x steps per variant, interleaved; step = forward, SAEHD losses, backward, "
                "AdaBelief; sample loading excluded"}))


if __name__ == "__main__":
    main()
