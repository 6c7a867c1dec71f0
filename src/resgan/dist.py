"""Data-parallel training through torchrun and torch.distributed (gloo on CPU, nccl on CUDA).

``train.batch_size`` is the global batch: every rank draws the same global noise and the same
global batch of indices (all ranks share one RNG stream and one seed) and keeps its slice, and
gradients are averaged across ranks after each backward. So N processes compute what one process
computes on the combined batch, and a run can resume with another world size. Only rank 0 writes.

The GAN step runs D twice before one backward and takes a double backward for gradient
penalties, which the DistributedDataParallel wrapper does not support; gradients are therefore
averaged with one flat ``all_reduce`` per optimizer step (the same math as DDP, without overlap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, n_global: int) -> slice:
        per = n_global // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


SINGLE = World()


def writes_here() -> bool:
    """Whether this process will be the one that writes (rank 0 of torchrun, or a world of one), known
    before :func:`init_world` joins the group: torchrun's RANK, read as init_world's world is made."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("RANK", "0") == "0"


def init_world(device_name: str) -> World:
    """Join the torchrun process group when WORLD_SIZE > 1; otherwise a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(module: nn.Module, world: World) -> None:
    """Average the gradients of ``module`` across ranks (one flat all_reduce)."""
    if world.size == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_stats(stats: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """Mean of each logged value over ranks, so logs describe the global batch."""
    if world.size == 1:
        return stats
    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world.size for k, v in zip(keys, t.tolist())}


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
