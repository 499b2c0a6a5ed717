"""Training guard: notice a diverging run and recover it instead of "start over".

- NaN/inf loss, or a loss spike above `spike_factor` x the recent median -> roll back to the last good
  checkpoint, multiply the learning rate by `lr_factor`, continue (and log it). A run that keeps failing
  (`max_rollbacks` in a row without a good save in between) stops with one clear line.
- CUDA out-of-memory -> halve the batch and continue (batch 1 that still fails stops with one line).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from facecast.errors import FacecastError


@dataclass
class GuardSettings:
    spike_factor: float = 8.0
    warmup: int = 50  # iterations of history before spikes are judged
    window: int = 100
    lr_factor: float = 0.5
    max_rollbacks: int = 5


@dataclass
class Guard:
    settings: GuardSettings = field(default_factory=GuardSettings)
    recent: deque = field(default_factory=lambda: deque(maxlen=100))
    rollbacks_in_a_row: int = 0

    def check(self, loss: float) -> str | None:
        """None when `loss` is fine, else the reason to roll back."""
        if not math.isfinite(loss):
            return f"loss is {loss}"
        if len(self.recent) >= self.settings.warmup:
            med = sorted(self.recent)[len(self.recent) // 2]
            if med > 0 and loss > self.settings.spike_factor * med:
                return f"loss spiked to {loss:.4g} ({loss / med:.1f}x the recent median {med:.4g})"
        self.recent.append(loss)
        return None

    def rolled_back(self) -> None:
        self.rollbacks_in_a_row += 1
        self.recent.clear()
        if self.rollbacks_in_a_row > self.settings.max_rollbacks:
            raise FacecastError(
                f"training diverged {self.rollbacks_in_a_row} times in a row even after lowering the learning "
                "rate; lower --lr, turn off gan/true-face powers, or check the faceset for broken faces"
            )

    def saved(self) -> None:
        """A good checkpoint was written: the streak of rollbacks is over."""
        self.rollbacks_in_a_row = 0


def halve_batch(batch: int) -> int:
    if batch <= 1:
        raise FacecastError("out of GPU memory even at batch size 1: use a smaller resolution/dims or --device cpu")
    return batch // 2


def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()
