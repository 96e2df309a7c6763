"""Gathering across processes: two gloo processes, each with half of every DDL group, compute the
same DDL loss and the same gradients as one process with everything."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import free_port

from facelearn.distributed import gather, world_size
from facelearn.losses import DDLLoss

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser

GROUPS, B, D = 2, 8, 16


def inputs() -> torch.Tensor:
    return torch.randn(3, GROUPS, B, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def ddl_of(kinds: torch.Tensor) -> torch.Tensor:
    """kinds: (3 [singles, first, second], groups, b, d)."""
    return DDLLoss(mining="paper")(*(list(gather(kind, dim=1)) for kind in kinds)).loss


def worker(rank: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        local = inputs()[:, :, rank * B // 2 : (rank + 1) * B // 2].clone().requires_grad_(True)
        loss = ddl_of(local)
        loss.backward()
        results[rank] = (loss.detach(), local.grad, world_size())
        dist.barrier()  # both processes finish their collectives before either leaves
    finally:
        dist.destroy_process_group()


def test_gathered_ddl_equals_one_process():
    full = inputs().requires_grad_(True)
    expected = ddl_of(full)
    expected.backward()
    results = mp.Manager().dict()
    mp.spawn(worker, args=(free_port(), results), nprocs=2, join=True)
    for rank in (0, 1):
        loss, grad, size = results[rank]
        assert size == 2
        torch.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-12)
        # Every process differentiates the same total; each receives its own slice's gradient, summed
        # over the two copies of the loss (all_gather's backward is a reduce-scatter of sums).
        half = full.grad[:, :, rank * B // 2 : (rank + 1) * B // 2]
        torch.testing.assert_close(grad, 2 * half, rtol=1e-9, atol=1e-12)
