"""Partial FC (An et al., CVPR 2022) for any margin head: millions of identities across processes.

* **Sharding.** The class centres are split across the processes of ``torch.distributed``:
  process r holds a contiguous block of classes (insightface's split). The embeddings and labels
  of every process are all-gathered, so each process scores the whole global batch against its
  own classes.
* **Sampling.** In training, each process keeps ``sample_rate`` of its centres per step, always
  including every class that appears in the global batch (insightface's rule); when there are more
  positives than that, all positives are kept and the effective rate is logged.
* **Softmax across shards.** The cross-entropy is computed with an all-reduced max and sum of
  exponentials; unlike insightface it uses the exact log-sum-exp (no 1e-30 probability clamp), so
  with ``sample_rate = 1`` the loss equals a single-process full classifier's.
* **Margins.** The wrapped head's own rules make the logits: its target margin on the process
  that holds each row's class, its non-target rule (CurricularFace) with every row's target cosine
  gathered from its owner, its running statistics (CurricularFace t, AdaFace μ/σ) from the whole
  global batch. AdaCos needs the sum over all classes and is refused.
* **Gradients.** The class centres get the exact gradient of the global loss. The embeddings'
  gradient is multiplied by the number of processes, so that DDP's gradient *averaging* gives the
  backbone the exact gradient of the global mean loss, as a single process would.
* **Checkpoints.** :meth:`full_weight` gathers the shards (every process must call it) and
  :meth:`local_block` takes this process's block of a full matrix, so a checkpoint holds every
  centre once and resumes on any number of processes.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist

from ..distributed import gather, rank, world_size
from .base import Head, HeadOutput, MarginHead, at_least_fp32

log = logging.getLogger(__name__)


def shard_range(num_classes: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of the classes held by ``rank`` (the first C mod W ranks hold one more)."""
    base, extra = divmod(num_classes, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


class DistributedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of logits split by columns across processes. ``labels`` (N,) index this
    process's columns, −1 where the row's class is elsewhere."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        owned = labels >= 0
        rows = owned.nonzero().squeeze(1)
        maximum = logits.max(dim=1).values
        target = torch.zeros_like(maximum).index_put((rows,), logits[rows, labels[rows]])
        if world_size() > 1:
            dist.all_reduce(maximum, dist.ReduceOp.MAX)
            dist.all_reduce(target)
        exp = torch.exp(logits - maximum.unsqueeze(1))
        total = exp.sum(dim=1)
        if world_size() > 1:
            dist.all_reduce(total)
        ctx.save_for_backward(exp / total.unsqueeze(1), labels)
        return (torch.log(total) + maximum - target).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        probabilities, labels = ctx.saved_tensors
        rows = (labels >= 0).nonzero().squeeze(1)
        grad_logits = probabilities.index_put((rows, labels[rows]), probabilities[rows, labels[rows]] - 1)
        return grad_logits * (grad / len(labels)), None


class PartialFC(Head):
    def __init__(self, head: MarginHead, num_classes: int, sample_rate: float = 1.0):
        """``head`` is built for this process's classes (``shard_range``); ``num_classes`` is the total."""
        super().__init__()
        if not getattr(head, "shardable", False):
            raise ValueError(f"{type(head).__name__} cannot be used with Partial FC (it needs every class at once)")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"head.sample_rate must be in (0, 1], got {sample_rate}")
        self.head, self.num_classes, self.sample_rate = head, num_classes, sample_rate
        self.embedding_size = head.embedding_size
        self.start, self.stop = shard_range(num_classes, rank(), world_size())
        if self.stop - self.start != head.num_classes:
            raise ValueError(
                f"the head holds {head.num_classes} classes, this process's shard {self.stop - self.start}"
            )
        self.effective_rate = sample_rate
        self.initialise_centres(torch.initial_seed())
        # a checkpoint holds every centre once, whatever the number of processes that wrote or reads it
        self._register_state_dict_hook(self.full_state)
        self._register_load_state_dict_pre_hook(self.local_state)

    @torch.no_grad()
    def initialise_centres(self, seed: int, chunk_values: int = 1 << 22) -> None:
        """This shard's rows of one N(0, 0.01) matrix of all centres drawn from ``seed``, so the
        model does not depend on the number of processes (drawn in chunks: no process holds all)."""
        weight = self.head.weight
        rows = weight.shape[0] // self.head.num_classes
        first, last = self.start * rows, self.stop * rows
        generator = torch.Generator().manual_seed(seed)
        chunk = max(1, chunk_values // weight.shape[1])
        for begin in range(0, last, chunk):
            values = torch.randn(min(chunk, last - begin), weight.shape[1], generator=generator) * 0.01
            low, high = max(begin, first), min(begin + len(values), last)
            if low < high:
                weight[low - first : high - first] = values[low - begin : high - begin]

    def sample(self, local_labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Centres to use (None = all) and the labels re-indexed into them."""
        count = self.head.num_classes
        if self.sample_rate >= 1 or not self.training:
            return None, local_labels
        positives = local_labels[local_labels >= 0].unique()
        wanted = int(self.sample_rate * count)
        keep = max(wanted, len(positives))
        rate = keep / count
        if keep > wanted and abs(rate - self.effective_rate) > 1e-9:
            log.info(
                "Partial FC: %d positive classes exceed the %d sampled centres; rate %.4f", len(positives), wanted, rate
            )
        self.effective_rate = rate
        keys = torch.rand(count, device=local_labels.device)
        keys[positives] = 2.0
        index = keys.topk(keep).indices.sort().values
        remapped = torch.where(local_labels >= 0, torch.searchsorted(index, local_labels.clamp(min=0)), -1)
        return index, remapped

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        self.check_embeddings(embeddings)
        head = self.head
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            local = at_least_fp32(embeddings)
            everyone = gather(ScaleGradient.apply(local, float(world_size())), dim=0)
            all_labels = gather(labels, dim=0)
            in_shard = (all_labels >= self.start) & (all_labels < self.stop)
            local_labels = torch.where(in_shard, all_labels - self.start, -1)
            index, sampled_labels = self.sample(local_labels)
            centres = head.weight.view(head.num_classes, -1, self.embedding_size)
            centres = centres if index is None else centres[index]
            cos = head.cosine_to(everyone, centres.reshape(-1, self.embedding_size))
            owned = sampled_labels >= 0
            target_cos = torch.zeros(len(cos), dtype=cos.dtype, device=cos.device)
            target_cos[owned] = cos.detach()[owned, sampled_labels[owned]]
            if world_size() > 1:
                dist.all_reduce(target_cos)
            if self.training:
                with torch.no_grad():
                    head.observe(cos.detach(), target_cos, sampled_labels, everyone.detach())
            logits = head.margin_logits(cos, sampled_labels, everyone, target_cos)
            loss = DistributedCrossEntropy.apply(logits, sampled_labels) + head.extra_loss(local)
            return HeadOutput(loss, logits)

    def full_weight(self) -> torch.Tensor:
        """Every class centre (C·K, d), gathered from the shards in rank order."""
        return self.gather_shards(self.head.weight.detach())

    def gather_shards(self, local: torch.Tensor) -> torch.Tensor:
        """This process's rows of a per-centre tensor (the weight, its momentum) → all rows, in
        class order. Every process must call it."""
        return gather(local, dim=0)

    def local_block(self, full: torch.Tensor) -> torch.Tensor:
        """This process's rows of a full per-centre tensor."""
        rows = full.shape[0] // self.num_classes
        return full[self.start * rows : self.stop * rows]

    def sharded_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters that differ per process and must not be averaged across processes."""
        return [self.head.weight]

    def full_state(self, module, state: dict, prefix: str, local_metadata) -> None:
        state[prefix + "head.weight"] = self.full_weight()

    def local_state(self, state: dict, prefix: str, *args) -> None:
        key = prefix + "head.weight"
        if key in state:
            full = state[key]
            expected = self.num_classes * (self.head.weight.shape[0] // self.head.num_classes)
            if full.shape[0] != expected:
                raise ValueError(
                    f"the checkpoint holds {full.shape[0]} class centres, this head {expected}: "
                    f"the class count (data.num_classes) or head changed since it was written"
                )
            state[key] = self.local_block(full)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, shard=[{self.start}, {self.stop}), sample_rate={self.sample_rate}"
