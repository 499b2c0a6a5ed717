"""What every swap model offers the trainer, predictor and exporter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facecast.train.archs.registry import ArchSpec


@dataclass
class TrainOutputs:
    """Predictions of one training step (images NCHW in [0,1], masks N1HW in [0,1])."""

    src: torch.Tensor
    src_mask: torch.Tensor
    dst: torch.Tensor
    dst_mask: torch.Tensor
    swap: torch.Tensor | None  # None when the model's train_swap is off
    swap_mask: torch.Tensor | None
    src_code: torch.Tensor
    dst_code: torch.Tensor


class SwapModel(nn.Module):
    def __init__(self, spec: ArchSpec, resolution: int) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = resolution
        self.lowest_res = resolution // spec.resolution_multiple
        # The swap decode costs a third of the decoders' forward; training needs it only for style losses.
        self.train_swap = True

    def forward_train(self, src: torch.Tensor, dst: torch.Tensor) -> TrainOutputs:
        raise NotImplementedError

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """dst faces -> (dst->src face, its learned mask, dst's learned mask)."""
        raise NotImplementedError

    def forward(self, src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Tuple form of forward_train, so DistributedDataParallel sees a plain forward()."""
        o = self.forward_train(src, dst)
        return (o.src, o.src_mask, o.dst, o.dst_mask, o.swap, o.swap_mask, o.src_code, o.dst_code)

    def code_channels(self) -> int:
        raise NotImplementedError


class SwapPath(nn.Module):
    """Only the dst->src path, for ONNX export and the predictor."""

    def __init__(self, model: SwapModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.swap(dst)
