"""Process-group helpers, low in the house so that losses, heads and the engine can share them."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import FacelearnError


class DistributedError(FacelearnError, RuntimeError):
    """The process group could not be formed."""


def init_from_environment(timeout_seconds: float = 300) -> None:
    """Join the process group that ``torchrun`` describes (RANK, WORLD_SIZE, MASTER_ADDR, …): nccl
    on CUDA, gloo on CPU. Nothing to do for a single process or an existing group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or (dist.is_available() and dist.is_initialized()):
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds))
    except Exception as error:  # the launcher's variables are wrong or a peer never came
        where = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        raise DistributedError(
            f"could not form the {backend} process group {where}: {error}. Launch with "
            f"`torchrun --nproc_per_node=N -m facelearn.cli train ...` (or the facelearn script); nothing was written"
        ) from error


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def sizes_of_all(tensor: torch.Tensor, dim: int) -> list[int]:
    size = torch.tensor([tensor.shape[dim]], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


class _Gather(torch.autograd.Function):
    """all_gather forward (sizes along ``dim`` may differ: an unreadable image makes one process's
    batch smaller); backward sums every process's gradient and keeps this process's slice, so a
    loss computed on every process sends each part the sum of their gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        sizes = sizes_of_all(tensor, dim)
        shape = list(tensor.shape)
        shape[dim] = max(sizes)
        padded = tensor.new_zeros(shape)
        padded.narrow(dim, 0, tensor.shape[dim]).copy_(tensor)
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        ctx.dim, ctx.sizes = dim, sizes
        return torch.cat([part.narrow(dim, 0, size) for part, size in zip(parts, sizes, strict=True)], dim=dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        offset = sum(ctx.sizes[: rank()])
        return grad.narrow(ctx.dim, offset, ctx.sizes[rank()]), None


def gather(tensor: torch.Tensor, *, dim: int) -> torch.Tensor:
    """All processes' ``tensor`` concatenated along ``dim`` in rank order, with gradient flowing
    back to each process's own part. With one process it is the tensor itself."""
    if world_size() == 1:
        return tensor
    return _Gather.apply(tensor, dim)
