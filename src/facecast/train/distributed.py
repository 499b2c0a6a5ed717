"""Multi-process training: `torchrun --nproc-per-node N -m facecast train ...`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; we join a process group (NCCL on CUDA, gloo on CPU, so
the same path is tested without GPUs), wrap the networks in DistributedDataParallel and let only rank 0
write files. `batch_size` is the global batch: each rank takes its slice of the same global sample
indices, so N processes train exactly what one process would on the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_from_env(device: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; a no-op single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def device_for(info: DistInfo, device: str) -> str:
    """Each rank drives its own GPU (cuda:LOCAL_RANK)."""
    if info.enabled and device.startswith("cuda"):
        return f"cuda:{info.local_rank}"
    return device


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(info: DistInfo, values: list[float]) -> list[float]:
    """Average scalars over ranks (so every rank takes the same guard decision)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / info.world).tolist()


def any_across(info: DistInfo, flag: bool) -> bool:
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t)
    return bool(t.item() > 0)


def wrap(module: torch.nn.Module, info: DistInfo, device: str) -> torch.nn.Module:
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DDP(module, device_ids=ids)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
