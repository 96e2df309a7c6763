"""What training on several processes adds to a step (under ``torchrun``).

* Replicated parameters (backbone, an unsharded head) have their gradients averaged across the
  processes in one coalesced all-reduce after the backward pass — DDP's arithmetic, without
  overlapping the communication with the backward pass — and batch-norm statistics follow rank 0,
  as DDP broadcasts them.
* Sharded parameters (Partial FC's class centres) are never averaged; gradient clipping sums their
  norm across processes, so every process scales by the same factor one process would.
* Checkpoints hold the sharded centres' optimizer state (momentum, Adam moments) in full: it is
  gathered on save and split again on load, so a run resumes on another number of processes.

With one process every method reduces to the plain single-process operation.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..distributed import world_size


class DataParallel:
    def __init__(self, task: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.task, self.optimizer, self.world_size = task, optimizer, world_size()
        head = getattr(task, "head", None)
        # id(parameter) → the Partial FC head whose class centres it holds (one shard per process)
        self.shards = {id(p): head for p in getattr(head, "sharded_parameters", list)()}
        self.replicated = [p for p in task.parameters() if p.requires_grad and id(p) not in self.shards]

    def average_gradients(self) -> None:
        if self.world_size == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.replicated]
        flat = torch._utils._flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world_size
        averaged = torch._utils._unflatten_dense_tensors(flat, grads)
        for parameter, grad in zip(self.replicated, averaged, strict=True):
            parameter.grad = grad
        for buffer in self.task.backbone.buffers():
            dist.broadcast(buffer, src=0)

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
