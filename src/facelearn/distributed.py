"""Process-group helpers, low in the house so that losses, heads and the engine can share them."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather(tensor: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """All processes' ``tensor`` concatenated along ``dim`` (rank order), with gradient flowing
    back to each process's own part. With one process it is the tensor itself."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=dim)
