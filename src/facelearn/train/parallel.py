"""What training on several processes adds to a step (under ``torchrun``).

* Replicated parameters (backbone, an unsharded head, adapters) are trained under torch's
  ``DistributedDataParallel``: gradients are averaged in buckets while the backward pass runs, and
  batch-norm statistics follow rank 0 (broadcast before each forward).
* Sharded parameters (Partial FC's class centres) are kept out of DDP, as insightface does: each
  process owns its block and gets its exact gradient from the distributed softmax. Gradient
  clipping sums their norm across processes, so every process scales by the same factor one
  process would.
* Checkpoints hold the sharded centres' optimizer state (momentum, Adam moments) in full: it is
  gathered on save and split again on load, so a run resumes on another number of processes.

With one process the task runs as it is and every method is the plain single-process operation.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..distributed import world_size


class ProcessGroupTraining:
    """The task on one or several processes: DDP for replicated parameters, exact shards for Partial FC
    (torch's own ``nn.DataParallel`` is a different, single-process thing)."""

    def __init__(self, task: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device):
        self.task, self.optimizer, self.world_size, self.device = task, optimizer, world_size(), device
        head = getattr(task, "head", None)
        # id(parameter) → the Partial FC head whose class centres it holds (one shard per process)
        self.shards = {id(p): head for p in getattr(head, "sharded_parameters", list)()}
        self.model: torch.nn.Module = task
        if self.world_size > 1:
            ignored = [name for name, p in task.named_parameters() if id(p) in self.shards]
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(task, ignored)
            device_ids = [device] if device.type == "cuda" else None
            # gradients live in the communication buckets (no copy); buffers follow rank 0
            self.model = DistributedDataParallel(task, device_ids=device_ids, gradient_as_bucket_view=True)

    def accumulating(self, last_micro_batch: bool):
        """No gradient all-reduce for the micro-batches before the last one of an accumulated step."""
        if self.world_size > 1 and not last_micro_batch:
            return self.model.no_sync()
        return contextlib.nullcontext()

    def clip_gradients(self, max_norm: float) -> None:
        if not self.shards:
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), max_norm)
            return
        with_grad = [p for p in self.task.parameters() if p.grad is not None]
        local = [p.grad for p in with_grad if id(p) in self.shards]
        shared = [p.grad for p in with_grad if id(p) not in self.shards]
        squared = torch.stack([g.float().pow(2).sum() for g in local]).sum()
        if self.world_size > 1:
            dist.all_reduce(squared)
        squared = squared + sum(g.float().pow(2).sum() for g in shared)
        factor = (max_norm / (squared.sqrt() + 1e-6)).clamp(max=1.0)
        for grad in shared + local:
            grad.mul_(factor.to(grad.dtype))

    def all_agree(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (a signal, a non-finite tensor)."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)  # nccl reduces CUDA tensors only
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def optimizer_state(self) -> dict:
        """The optimizer's state dict with sharded centres' state gathered (every process must call it)."""
        return self.map_sharded_state(self.optimizer.state_dict(), "gather_shards")

    def load_optimizer_state(self, saved: dict) -> None:
        self.optimizer.load_state_dict(self.map_sharded_state(saved, "local_block"))

    def map_sharded_state(self, state: dict, convert: str) -> dict:
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        for index, parameter in enumerate(parameters):
            head, slot = self.shards.get(id(parameter)), state["state"].get(index)
            if head is None or not slot:
                continue
            per_centre = {k for k, v in slot.items() if torch.is_tensor(v) and v.ndim == 2}
            state["state"][index] = {k: getattr(head, convert)(v) if k in per_centre else v for k, v in slot.items()}
        return state
