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
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_var"] = torch.zeros_like(p)
                st["step"] += 1
                t = float(st["step"])
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                m, s = st["exp_avg"], st["exp_avg_var"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                d = g - m
                s.mul_(b2).addcmul_(d, d, value=1 - b2).add_(group["eps"])
                denom = (s / (1 - b2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1**t))
        return loss


def make_optimizer(name: str, params: Iterable, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.5, 0.999), weight_decay=0.0)
    return AdaBelief(params, lr=lr, betas=(0.9, 0.999))
