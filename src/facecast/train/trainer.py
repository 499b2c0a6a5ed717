"""`train()`: create or resume a model and train it, with previews, history, saves, backups and a guard.

The loop is deliberately plain: one forward of the swap model over a src and a dst batch, the SAEHD
losses, one optimizer step, then the optional discriminators. Everything around it (saving, previews,
evaluation, the guard) runs every N iterations or minutes and only on rank 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from facecast.compute import PrecisionChoice, choose_device, normalise_precision
from facecast.console import info
from facecast.errors import FacecastError
from facecast.trainloop import MIN_ITERS_IN_BUDGET, Budget, Display, Loop, LoopStats, StepOut  # noqa: F401
from facecast.train import checkpoint, distributed, losses
from facecast.train import precision as precision_rules
from facecast.train.archs.registry import build_model
from facecast.train.guard import Guard, halve_batch, is_oom
from facecast.train.optim import make_optimizer
from facecast.train.options import ModelOptions, changed_fixed_options, preset
from facecast.train.previews import EvalBatch, to_u8, write_preview
from facecast.train.samples import Faceset, PairDataset, StepBatches, held_out, load_faceset, to_float
from facecast.workspace import Workspace

PREFIXES = {"model": "model.", "code_d": "code_d.", "patch_d": "patch_d."}


Evaluator = Callable[[EvalBatch], dict[str, float]]



@dataclass
class TrainResult:
    model_dir: str
    created: bool
    iteration: int
    stopped: str
    src_loss: float | None = None
    dst_loss: float | None = None
    first_src_loss: float | None = None
    first_dst_loss: float | None = None
    trained_now: int = 0  # iterations run by this call
    seconds: float = 0.0  # wall time of this call, set-up included
    ms_per_iter: float | None = None
    samples_per_s: float | None = None
    data_wait_share: float | None = None
    rollbacks: int = 0
    batch_size: int = 0
    device: str = ""
    precision: str = "fp32"
    precision_reason: str = ""
    memory_estimate_mb: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)


def warmup_factor(options: ModelOptions, iteration: int) -> float:
    """Factor on the learning rate during the warm-up: (iteration + 1) / lr_warmup_iters, then 1.

    Why: at the cpu preset's high rate a decoder's sigmoid output could saturate in the first few dozen
    steps (a bright face: all white) and never recover; a short ramp lets the output layer settle first."""
    n = options.lr_warmup_iters
    return 1.0 if n <= 0 else min(1.0, (max(iteration, 0) + 1) / n)


def _responsible_checks(ws: Workspace) -> None:
    """Before any work: a valid consent record for the workspace's source person (raises ConsentError).

    Training is what makes a person renderable, so it is the first place consent is enforced."""
    from facecast.provenance import require_consent

    require_consent(ws)


def resolve_options(model_dir: Path, preset_name: str | None, overrides: dict[str, Any],
                    repair: bool = True) -> tuple[ModelOptions, bool]:
    """(options, created): a new model from a preset + overrides, or the saved one + changeable overrides."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if checkpoint.has_checkpoint(model_dir, repair):
        saved = ModelOptions.load(model_dir / "options.json")
        bad = changed_fixed_options(saved, overrides)
        if bad:
            raise FacecastError(
                f"model {model_dir.name}: {', '.join(bad)} cannot change after creation; "
                "drop the option(s) or train under a new --model name"
            )
        return saved.with_overrides(overrides), False
    base = preset(preset_name or "saehd")
    return base.with_overrides(overrides), True


def memory_estimate(model: torch.nn.Module, options: ModelOptions, batch: int) -> dict[str, float]:
    """Rough bytes for weights + grads + optimizer state, and activations measured on a batch-1 forward."""
    params = sum(p.numel() for p in model.parameters())
    per_param = 4 * (2 + (1 if options.optimizer == "rmsprop" else 2))
    acts = [0]

    def hook(_m, _i, out):
        if torch.is_tensor(out):
            acts[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        r = options.resolution
        with torch.no_grad():
            x = torch.zeros(1, 3, r, r, device=next(model.parameters()).device)
            model.forward_train(x, x)
    finally:
        for h in handles:
            h.remove()
    state_mb = params * per_param / 2**20
    act_mb = acts[0] * 4 * 2 * batch / 2**20  # output + its saved input/grad, per sample
    return {"parameters": float(params), "state_mb": state_mb, "activations_mb": act_mb, "total_mb": state_mb + act_mb}


class _Run:
    """State of one training run (one process)."""

    def __init__(self, ws: Workspace, model_dir: Path, options: ModelOptions, created: bool, device: str,
                 dist: distributed.DistInfo, quiet: bool) -> None:
        self.ws, self.model_dir, self.options, self.created = ws, model_dir, options, created
        self.dist, self.quiet = dist, quiet or not dist.is_main
        self.choice = choose_device(device)
        self.device = distributed.device_for(dist, self.choice.device)
        self.device_reason = self.choice.reason
        self.channels_last = self.device.startswith("cuda")
        self.set_precision(PrecisionChoice("fp32", "not decided yet", self.device.split(":")[0]))
        self.events: list[dict[str, Any]] = []
        self.history_buffer: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {"iteration": 0, "lr_scale": 1.0, "rollbacks": 0, "pretrain": options.pretrain}
        self.build()

    # -- networks and optimizers --------------------------------------------------------------------
    def build(self) -> None:
        o = self.options
        torch.manual_seed(o.seed)
        self.model = build_model(o).to(self.device)
        self.model.train_swap = o.face_style_power > 0 or o.bg_style_power > 0
        self.code_d = losses.CodeDiscriminator(self.model.code_channels(), self.model.lowest_res).to(self.device) if o.true_face_power > 0 else None
        self.patch_d = losses.PatchDiscriminator(o.gan_patch_size, o.gan_dims).to(self.device) if o.gan_power > 0 else None
        if self.channels_last:
            for net in self.nets().values():
                net.to(memory_format=torch.channels_last)
        self.opts = {name: make_optimizer(o.optimizer, net.parameters(), o.lr) for name, net in self.nets().items()}
        self.ddp_model = distributed.wrap(self.model, self.dist, self.device)
        self.ddp_code_d = distributed.wrap(self.code_d, self.dist, self.device) if self.code_d else None
        self.ddp_patch_d = distributed.wrap(self.patch_d, self.dist, self.device) if self.patch_d else None

    def set_precision(self, choice: PrecisionChoice) -> None:
        """Run in `choice.precision` from now on (autocast dtype, and a grad scaler for fp16)."""
        self.precision_choice = choice
        self.precision = choice.precision
        self.amp_dtype = None if choice.precision == "fp32" else getattr(torch, choice.precision)
        self.scaler = torch.amp.GradScaler("cuda") if choice.precision == "float16" else None

    def nets(self) -> dict[str, torch.nn.Module]:
        out: dict[str, torch.nn.Module] = {"model": self.model}
        if self.code_d is not None:
            out["code_d"] = self.code_d
        if self.patch_d is not None:
            out["patch_d"] = self.patch_d
        return out

    def set_lr(self) -> None:
        """lr x the guard's rollback scale x the warm-up ramp at the current iteration."""
        lr = self.options.lr * float(self.state.get("lr_scale", 1.0)) * warmup_factor(self.options, self.state["iteration"])
        for opt in self.opts.values():
            for g in opt.param_groups:
                g["lr"] = lr

    # -- checkpoints --------------------------------------------------------------------------------
    def save(self, reason: str) -> None:
        if not self.dist.is_main:
            return
        weights: dict[str, torch.Tensor] = {}
        for name, net in self.nets().items():
            weights.update({PREFIXES[name] + k: v for k, v in net.state_dict().items()})
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, str] = {}
        for name, opt in self.opts.items():
            t, m = checkpoint.flatten_optimizer(opt, f"opt.{name}")
            tensors.update(t)
            meta.update(m)
        tensors["rng.torch"] = torch.get_rng_state()
        self.state["saved_at"] = time.time()
        self.state["save_reason"] = reason
        self.flush_history()
        checkpoint.save_checkpoint(self.model_dir, weights, tensors, meta, dict(self.state), self.options.to_json())

    def load(self) -> None:
        """Load the committed checkpoint into the networks and optimizers (all ranks)."""
        checkpoint.recover(self.model_dir) if self.dist.is_main else None
        tensors = checkpoint.load_tensors(self.model_dir / "model.safetensors")
        src = str(self.model_dir / "model.safetensors")
        for name, net in self.nets().items():
            part = {k[len(PREFIXES[name]):]: v for k, v in tensors.items() if k.startswith(PREFIXES[name])}
            if name != "model" and not part:
                continue  # a discriminator switched on only now: it starts fresh
            checkpoint.load_weights_into(net, part, src)
        otensors, ometa = checkpoint.read_optimizer_file(self.model_dir)
        for name, opt in self.opts.items():
            if not checkpoint.unflatten_optimizer(opt, f"opt.{name}", otensors, ometa):
                self.log_event("optimizer-reset", f"optimizer state for {name} not restored (new optimizer settings)")
        if "rng.torch" in otensors:
            torch.set_rng_state(otensors["rng.torch"])
        saved = checkpoint.read_state(self.model_dir)
        self.state.update({k: v for k, v in saved.items() if k in ("iteration", "lr_scale", "rollbacks", "pretrain", "precision")})
        self.set_lr()

    # -- history ------------------------------------------------------------------------------------
    def log_event(self, kind: str, message: str, **extra: Any) -> None:
        event = {"iter": self.state["iteration"], "event": kind, "message": message, "time": time.time(), **extra}
        self.events.append(event)
        self.history_buffer.append(event)
        info(f"{kind} at iteration {self.state['iteration']}: {message}", self.quiet)

    def flush_history(self) -> None:
        if not self.dist.is_main or not self.history_buffer:
            self.history_buffer.clear()
            return
        with open(self.model_dir / "history.jsonl", "a", encoding="utf-8") as fh:
            for row in self.history_buffer:
                fh.write(json.dumps(row) + "\n")
        self.history_buffer.clear()

    def trim_history(self) -> None:
        """Drop history lines past the checkpoint's iteration (written by a run killed after its last save)."""
        path = self.model_dir / "history.jsonl"
        if not self.dist.is_main or not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            it = row.get("iter", 0) if isinstance(row, dict) else None  # malformed lines are dropped
            if isinstance(it, (int, float)) and it <= self.state["iteration"]:
                keep.append(line)
        from facecast.media.images import atomic_write_bytes

        atomic_write_bytes(path, ("\n".join(keep) + ("\n" if keep else "")).encode("utf-8"))

    # -- one step -----------------------------------------------------------------------------------
    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=self.amp_dtype)

    def step(self, b: dict[str, torch.Tensor]) -> tuple[float, float]:
        o = self.options
        r = o.resolution
        with self.autocast():
            ps, psm, pd, pdm, sw, swm, sc, dc = self.ddp_model(b["src_in"], b["dst_in"])
        ps, psm, pd, pdm = (t.float() for t in (ps, psm, pd, pdm))
        src_l = losses.reconstruction_loss(ps, psm, b["src_target"], b["src_mask"], b["src_em"], r,
                                           o.masked_training, o.eyes_mouth_priority)
        dst_l = losses.reconstruction_loss(pd, pdm, b["dst_target"], b["dst_mask"], b["dst_em"], r,
                                           o.masked_training, o.eyes_mouth_priority)
        total = src_l.mean() + dst_l.mean()
        if o.face_style_power > 0 or o.bg_style_power > 0:
            total = total + losses.style_losses(sw.float(), swm.float(), b["dst_target"], b["dst_mask"], r,
                                                o.face_style_power, o.bg_style_power).mean()
        if self.ddp_code_d is not None:
            with self.autocast():
                total = total + o.true_face_power * losses.g_loss(self.ddp_code_d(dc).float())
        if self.ddp_patch_d is not None:
            with self.autocast():
                total = total + o.gan_power * losses.g_loss(self.ddp_patch_d(ps).float())
        self._backward_step("model", total)
        if self.ddp_code_d is not None:
            with self.autocast():
                dl = losses.d_loss(self.ddp_code_d(sc.detach()).float(), self.ddp_code_d(dc.detach()).float())
            self._backward_step("code_d", dl)
        if self.ddp_patch_d is not None:
            with self.autocast():
                dl = losses.d_loss(self.ddp_patch_d(b["src_target"]).float(), self.ddp_patch_d(ps.detach()).float())
            self._backward_step("patch_d", dl)
        return float(src_l.mean().detach()), float(dst_l.mean().detach())

    def _backward_step(self, name: str, loss: torch.Tensor) -> None:
        opt, net = self.opts[name], self.nets()[name]
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        if self.options.clip_grad:
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        if self.options.lr_dropout > 0 and name == "model":
            # DFL's lr_dropout: each weight's update is dropped with this probability on each step.
            keep = 1.0 - self.options.lr_dropout
            for p in net.parameters():
                if p.grad is not None:
                    p.grad.mul_(torch.bernoulli(torch.full_like(p.grad, keep)))
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()


PREVIEW_FACES = 4  # rows of the preview grid
EVAL_FACES = 12  # held-back faces the evaluators score: id_retrieval moves in steps of 1/12, not 1/4


def eval_count(n_faces: int) -> int:
    """Faces to hold back from a faceset of `n_faces`: up to EVAL_FACES, but never more than a tenth of
    it (at least PREVIEW_FACES), so a small faceset keeps its training faces."""
    return max(PREVIEW_FACES, min(EVAL_FACES, n_faces // 10))


def _eval_batch(run: _Run, src: Faceset, dst: Faceset, count: int = PREVIEW_FACES) -> EvalBatch:
    """The model's outputs on the first `count` held-back faces (PREVIEW_FACES for previews, up to
    EVAL_FACES for the evaluators)."""
    n = min(len(src), len(dst), count)
    s = torch.from_numpy(src.images[:n]).permute(0, 3, 1, 2).float().div(255).to(run.device)
    d = torch.from_numpy(dst.images[:n]).permute(0, 3, 1, 2).float().div(255).to(run.device)
    run.model.eval()
    run.model.train_swap, keep = True, run.model.train_swap
    with torch.no_grad(), run.autocast():
        o = run.model.forward_train(s, d)
    run.model.train_swap = keep
    run.model.train()
    return EvalBatch(to_u8(s), to_u8(d), to_u8(o.src), to_u8(o.dst), to_u8(o.swap), run.state["iteration"])


def _make_loader(run: _Run, src: Faceset, dst: Faceset, batch: int) -> Any:
    ds = PairDataset(src, dst, run.options, seed=run.options.seed + 7919 * int(run.state.get("rollbacks", 0)))
    sampler = StepBatches(run.state["iteration"], batch, run.dist.rank, run.dist.world)
    workers = max(0, int(run.options.num_workers))
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, persistent_workers=False,
                        prefetch_factor=4 if workers else None, pin_memory=run.device.startswith("cuda"))
    return iter(loader)


def _close_loader(loader: Any) -> None:
    """Stop sample worker processes now rather than whenever the iterator is garbage-collected."""
    shutdown = getattr(loader, "_shutdown_workers", None)  # torch's multi-process iterator
    if shutdown is not None:
        shutdown()


@dataclass
class _Data:
    """The facesets of one run, each split into training faces and the few evaluation faces."""

    src_train: Faceset
    src_eval: Faceset
    dst_train: Faceset
    dst_eval: Faceset


def _load_data(ws: Workspace, options: ModelOptions, src_faceset: Path | None, dst_faceset: Path | None,
               pretrain_faceset: Path | None, quiet: bool) -> _Data:
    if options.pretrain:
        folder = Path(pretrain_faceset) if pretrain_faceset else ws.aligned("src")
        src_all = dst_all = load_faceset(folder, options, "pretrain faceset", quiet)
    else:
        src_all = load_faceset(Path(src_faceset) if src_faceset else ws.aligned("src"), options, "src faceset", quiet)
        dst_all = load_faceset(Path(dst_faceset) if dst_faceset else ws.aligned("dst"), options, "dst faceset", quiet)
    src_train, src_eval = held_out(src_all, count=eval_count(len(src_all)))
    dst_train, dst_eval = held_out(dst_all, count=eval_count(len(dst_all)))
    return _Data(src_train, src_eval, dst_train, dst_eval)


def _open_run(run: _Run, dist: distributed.DistInfo) -> None:
    """Write a new model's first save, or load the saved one; apply DFL's end-of-pretraining rule."""
    if run.created:
        if dist.is_main:
            run.model_dir.mkdir(parents=True, exist_ok=True)
            run.save("created")
        distributed.barrier(dist)
    if not run.created or dist.enabled:
        run.load()
    if run.state.get("pretrain") and not run.options.pretrain:
        run.state["iteration"] = 0
        run.state["pretrain"] = False
        run.log_event("pretrain-finished", "pretraining switched off: iteration counter reset to 0 (DFL's rule)")
    run.state["pretrain"] = run.options.pretrain
    run.set_lr()
    run.trim_history()


class _Steps:
    """SAEHD's step and guard for the loop skeleton: batches from the sample loader, a halved batch on
    GPU out-of-memory, and a rollback to the last save when the guard sees the loss diverge."""

    def __init__(self, run: _Run, data: _Data, batch: int) -> None:
        self.run, self.data, self.batch = run, data, batch
        self.guard_state = Guard()
        self.loader = _make_loader(run, data.src_train, data.dst_train, batch)

    def reload(self) -> None:
        _close_loader(self.loader)
        self.loader = _make_loader(self.run, self.data.src_train, self.data.dst_train, self.batch)

    def close(self) -> None:
        _close_loader(self.loader)

    def step(self) -> StepOut | None:
        run = self.run
        t0 = time.perf_counter()
        raw = next(self.loader)
        t1 = time.perf_counter()
        try:
            sl, dl = run.step(to_float(raw, run.device, run.channels_last))
        except RuntimeError as err:
            if not (run.device.startswith("cuda") and is_oom(err)):
                raise
            torch.cuda.empty_cache()
            self.batch = halve_batch(self.batch)
            run.log_event("oom", f"out of GPU memory: batch size halved to {self.batch}")
            self.reload()
            return None
        t2 = time.perf_counter()
        sl, dl = distributed.mean_across(run.dist, [sl, dl])
        return StepOut({"src": sl, "dst": dl}, self.batch, t2 - t0, t1 - t0)

    def guard(self, out: StepOut) -> int | None:
        """None when the loss is healthy; else roll back to the last save and return its iteration."""
        run = self.run
        why = self.guard_state.check(out.losses["src"] + out.losses["dst"])
        if why is None:
            return None
        distributed.barrier(run.dist)
        run.state["rollbacks"] = int(run.state.get("rollbacks", 0)) + 1
        lr_scale = float(run.state.get("lr_scale", 1.0)) * self.guard_state.settings.lr_factor
        rollbacks = run.state["rollbacks"]
        run.load()
        # forget the diverged stretch: buffered and flushed history past the checkpoint
        run.history_buffer = [r for r in run.history_buffer if r.get("iter", 0) <= run.state["iteration"]]
        run.trim_history()
        run.state["lr_scale"], run.state["rollbacks"] = lr_scale, rollbacks
        run.set_lr()
        run.log_event("rollback", f"{why}: rolled back to iteration {run.state['iteration']}, "
                      f"learning rate x{lr_scale:g}", lr=run.options.lr * lr_scale)
        self.guard_state.rolled_back()
        self.reload()
        return run.state["iteration"]


def _add_hooks(loop: Loop, run: _Run, steps: _Steps, evaluators: Sequence[Evaluator], log_every: int,
               on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
    """Previews, evaluation, periodic saves and backups, the history line of each logged step, and the
    caller's `on_step` (the studio's live progress; a KeyboardInterrupt from it is the Ctrl-C stop)."""
    o, data, main = run.options, steps.data, run.dist.is_main

    def on_iteration(it: int, out: StepOut) -> None:
        run.state["iteration"] = it
        if it <= o.lr_warmup_iters:
            run.set_lr()  # the ramp's next step (a no-op once it is over)
        if it % max(1, log_every) == 0:
            run.history_buffer.append({"iter": it, "src_loss": round(out.losses["src"], 6),
                                       "dst_loss": round(out.losses["dst"], 6), "ms": round(out.seconds * 1000, 2),
                                       "batch": out.samples})
        if on_step is not None:
            on_step(it, {"ms": out.seconds * 1000, "src_loss": out.losses["src"], "dst_loss": out.losses["dst"],
                         "batch": out.samples})

    def preview(_it: int) -> None:
        run.flush_history()
        write_preview(run.model_dir, o.write_preview_history, _eval_batch(run, data.src_eval, data.dst_eval))

    def save(_it: int) -> None:
        run.save("periodic")
        steps.guard_state.saved()

    def backup(it: int) -> None:
        run.save("autobackup")
        if main:
            checkpoint.backup(run.model_dir, it, o.backup_keep)
        loop.reset_timer("save")

    loop.on_iteration = on_iteration
    if main:
        loop.every("preview", preview, iters=o.preview_every)
    if evaluators:
        loop.every("evaluation", lambda _it: _run_evaluators(run, evaluators, data.src_eval, data.dst_eval),
                   iters=o.eval_every)
    loop.every("save", save, minutes=o.save_minutes)
    loop.every("backup", backup, minutes=o.autobackup_minutes)


def _announce(run: _Run, model_name: str, batch: int) -> float:
    """The set-up block, printed once per run; returns the memory estimate (MB)."""
    o = run.options
    est = memory_estimate(run.model, o, batch // run.dist.world)
    info(f"model {model_name}: {o.arch} {o.resolution}px {o.face_type}, "
         f"{int(est['parameters']):,} parameters, memory estimate ~{est['total_mb']:.0f} MB "
         f"(weights+optimizer {est['state_mb']:.0f} MB, activations {est['activations_mb']:.0f} MB at batch {batch})",
         run.quiet)
    info(f"device {run.device} ({run.device_reason}), precision {run.precision} ({run.precision_choice.reason}); "
         f"{'created' if run.created else 'resumed at iteration ' + str(run.state['iteration'])}", run.quiet)
    return est["total_mb"]


def train(
    ws: Workspace | str | Path,
    model_name: str,
    preset_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    target_iter: int | None = None,
    max_iters: int | None = None,
    max_seconds: float | None = None,
    src_faceset: Path | None = None,
    dst_faceset: Path | None = None,
    pretrain_faceset: Path | None = None,
    evaluators: Sequence[Evaluator] = (),
    precision: str | None = None,
    remeasure_precision: bool = False,
    quiet: bool = False,
    log_every: int = 1,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Create or resume `model/<model_name>` and train until target_iter, max_iters, max_seconds or Ctrl-C.

    `preset_name` is used only when the model is created; `overrides` are option values (architecture
    ones only at creation). `max_iters` bounds this call (tests, benchmarks); `target_iter` is the
    model's total; `max_seconds` is a wall-time budget for this call, counted from its start (set-up
    included), checked between iterations: one session trains for the whole budget, so the model,
    faceset and sample workers are set up once (the demo's live budget, `--max-minutes`). `precision`:
    None/"auto" (the model's stored choice; measured on its first run or when `remeasure_precision`),
    or "fp32", "bf16"/"bfloat16", "fp16"/"float16" (stored too).
    `on_step(iteration, {"ms", "src_loss", "dst_loss", "batch"})` runs after every step (the studio's live
    progress); raising KeyboardInterrupt from it stops training exactly as Ctrl-C does (saved)."""
    budget = Budget(max_iters=max_iters, max_seconds=max_seconds)
    normalise_precision(precision)  # a misspelt precision is refused before any work
    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    _responsible_checks(ws)
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise FacecastError(f"model name {model_name!r} must be a plain folder name")
    model_dir = ws.model(model_name)
    overrides = dict(overrides or {}, **({"target_iter": target_iter} if target_iter is not None else {}))
    dist = distributed.init_from_env(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    # Every rank decides "create or resume" before rank 0 writes anything, and only rank 0 repairs an
    # interrupted save (another rank's recover() could otherwise delete rank 0's save in progress).
    distributed.barrier(dist)
    options, created = resolve_options(model_dir, preset_name, overrides, repair=dist.is_main)
    distributed.barrier(dist)
    budget.target_iter = options.target_iter
    data = _load_data(ws, options, src_faceset, dst_faceset, pretrain_faceset, quiet or not dist.is_main)
    run = _Run(ws, model_dir, options, created, device, dist, quiet)
    _open_run(run, dist)
    run.set_precision(precision_rules.decide(run, precision, remeasure_precision, data.src_train, data.dst_train))
    run.state["precision"] = run.precision_choice.to_dict()
    memory_mb = _announce(run, model_name, options.batch_size)
    steps = _Steps(run, data, options.batch_size)
    loop = Loop(steps.step, run.state["iteration"], budget, Display("iter", options.target_iter, run.quiet),
                steps.guard)
    _add_hooks(loop, run, steps, evaluators, log_every, on_step)
    try:
        stats = loop.run()
    finally:
        steps.close()
    return _finish(run, stats, steps, memory_mb, budget)


def _finish(run: _Run, stats: LoopStats, steps: _Steps, memory_mb: float, budget: Budget) -> TrainResult:
    """Final save and preview, the result, and Ctrl-C passed on after the save."""
    run.save(stats.stopped or "end")
    batch = steps.batch
    if run.dist.is_main:
        write_preview(run.model_dir, run.options.write_preview_history,
                      _eval_batch(run, steps.data.src_eval, steps.data.dst_eval))
    distributed.barrier(run.dist)
    first, last = stats.first, stats.last
    result = TrainResult(
        str(run.model_dir), run.created, run.state["iteration"], stats.stopped,
        src_loss=last.losses["src"] if last else None, dst_loss=last.losses["dst"] if last else None,
        first_src_loss=first.losses["src"] if first else None, first_dst_loss=first.losses["dst"] if first else None,
        trained_now=stats.done, seconds=round(budget.elapsed(), 2), ms_per_iter=stats.ms_per_iter,
        samples_per_s=stats.samples_per_s(batch), data_wait_share=stats.data_wait_share,
        rollbacks=int(run.state.get("rollbacks", 0)), batch_size=batch, device=run.device,
        precision=run.precision, precision_reason=run.precision_choice.reason, memory_estimate_mb=memory_mb,
        events=run.events,
    )
    distributed.shutdown(run.dist)
    if stats.stopped == "interrupted":
        raise KeyboardInterrupt
    return result


def _run_evaluators(run: _Run, evaluators: Sequence[Evaluator], src: Faceset, dst: Faceset) -> None:
    batch = _eval_batch(run, src, dst, EVAL_FACES)
    scores: dict[str, float] = {}
    for fn in evaluators:
        for k, v in fn(batch).items():
            scores[k] = float(v)
    run.history_buffer.append({"iter": run.state["iteration"], "eval": scores})
