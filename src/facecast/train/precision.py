"""Which precision a model trains in: decided once, stored with the model, re-decided only when asked.

Why stored: a CPU's bf16-vs-fp32 answer measured under load flips from run to run (0.28x to 1.5x on
one machine), and a resumed model that switches precision changes speed by 2x or more for no reason
the user can see. So the first run of a model (or `--remeasure-precision`) measures one real training
step of this model on a real batch both ways (`compute.compare_precisions`: warm-up, interleaved
repeats, medians, a 1.2x margin for bf16), and `state.json` keeps the answer and its reason. Every
later run uses the stored answer unless the user names a precision or asks to measure again.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Protocol

import torch

from facecast.compute import PrecisionChoice, compare_precisions, normalise_precision
from facecast.train.samples import Faceset, PairDataset, to_float


class _Trainable(Protocol):
    device: str
    choice: Any  # compute.DeviceChoice
    state: dict[str, Any]
    options: Any
    dist: Any

    def nets(self) -> dict[str, torch.nn.Module]: ...
    def set_precision(self, choice: PrecisionChoice) -> None: ...
    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, float]: ...


def stored_choice(state: dict[str, Any]) -> PrecisionChoice | None:
    return PrecisionChoice.from_dict(state.get("precision")) if state.get("precision") else None


def decide(run: _Trainable, requested: str | None, remeasure: bool, src: Faceset, dst: Faceset) -> PrecisionChoice:
    """The precision for this run (see the module docstring for the rules)."""
    kind = run.device.split(":")[0]
    wanted = normalise_precision(requested)
    if wanted is not None:
        return PrecisionChoice(wanted, f"requested (--precision {requested})", kind)
    stored = stored_choice(run.state)
    if stored is not None and stored.device_type == kind and not remeasure:
        return stored
    if kind != "cpu":
        return PrecisionChoice(run.choice.amp_dtype or "fp32", run.choice.amp_reason, kind)
    if run.dist.enabled:
        # each process would measure on its own and could disagree; fp32 keeps the ranks in step
        return PrecisionChoice("fp32", "distributed CPU run: fp32 (not measured per process)", kind)
    use, why, ratio = measure_training_step(run, src, dst)
    return PrecisionChoice("bfloat16" if use else "fp32", f"measured on this model's training step: {why}",
                           kind, round(ratio, 3), time.time())


def measure_training_step(run: _Trainable, src: Faceset, dst: Faceset, repeats: int = 3) -> tuple[bool, str, float]:
    """Time real training steps of `run` both ways, then put weights, optimizer and RNG back as they were
    (the measurement must not change what is trained)."""
    batch = _probe_batch(run, src, dst)
    nets = {n: copy.deepcopy(net.state_dict()) for n, net in run.nets().items()}
    opts = {n: copy.deepcopy(opt.state_dict()) for n, opt in run.opts.items()}  # type: ignore[attr-defined]
    rng = torch.get_rng_state()
    before = getattr(run, "precision_choice", None)

    def step(bf16: bool) -> None:
        run.set_precision(PrecisionChoice("bfloat16" if bf16 else "fp32", "measuring", "cpu"))
        run.step(batch)

    try:
        return compare_precisions(step, repeats=repeats)
    except RuntimeError as err:  # a CPU build without bf16 kernels
        return False, f"bf16 step failed ({str(err)[:80]}): fp32", 0.0
    finally:
        for n, net in run.nets().items():
            net.load_state_dict(nets[n])
        for n, opt in run.opts.items():  # type: ignore[attr-defined]
            opt.load_state_dict(opts[n])
        torch.set_rng_state(rng)
        if before is not None:
            run.set_precision(before)


def _probe_batch(run: _Trainable, src: Faceset, dst: Faceset) -> dict[str, torch.Tensor]:
    """One training batch of this run's size, built in this process (no sample workers started)."""
    ds = PairDataset(src, dst, run.options, seed=run.options.seed + 104729)
    items = [ds[i] for i in range(max(1, run.options.batch_size // max(1, run.dist.world)))]
    raw = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    return to_float(raw, run.device, getattr(run, "channels_last", False))
