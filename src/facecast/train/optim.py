"""Optimizers of the option set: RMSprop and AdamW from torch, AdaBelief written here (DFL's default).

AdaBelief (Zhuang et al. 2020) is Adam with the second moment taken of (g - m), the gradient's
deviation from its running mean: steps are large where the gradient is predictable, small where it is
noisy. torch ships no AdaBelief, and the reference package pulls extra dependencies, so it is ~30 lines.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class AdaBelief(torch.optim.Optimizer):
    def __init__(self, params: Iterable, lr: float = 5e-5, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-16, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One update of every parameter with a gradient, as a few multi-tensor (`_foreach_`) passes per
        group rather than ~8 element-wise ops per tensor: the same arithmetic with fewer launches and
        temporaries (on a CPU the optimizer is ~4 % of a 48 M-parameter SAEHD step)."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            by_step: dict[float, tuple[list, list, list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_var"] = torch.zeros_like(p)
                st["step"] += 1
                ps, gs, ms, vs = by_step.setdefault(float(st["step"]), ([], [], [], []))
                ps.append(p)
                gs.append(p.grad)
                ms.append(st["exp_avg"])
                vs.append(st["exp_avg_var"])
            for t, (ps, gs, ms, vs) in by_step.items():  # one entry unless parameters joined late
                if wd:
                    torch._foreach_mul_(ps, 1 - lr * wd)
                torch._foreach_lerp_(ms, gs, 1 - b1)  # m = b1 m + (1 - b1) g
                ds = torch._foreach_sub(gs, ms)  # the gradient's deviation from its running mean
                torch._foreach_mul_(vs, b2)
                torch._foreach_addcmul_(vs, ds, ds, value=1 - b2)
                torch._foreach_add_(vs, eps)
                denom = torch._foreach_div(vs, 1 - b2**t)
                torch._foreach_sqrt_(denom)
                torch._foreach_add_(denom, eps)
                torch._foreach_addcdiv_(ps, ms, denom, value=-lr / (1 - b1**t))
        return loss


def make_optimizer(name: str, params: Iterable, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.5, 0.999), weight_decay=0.0)
    return AdaBelief(params, lr=lr, betas=(0.9, 0.999))
