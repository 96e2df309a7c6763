"""The one base class of every margin head: normalise → cosine → change the target logit → scale.

A concrete head overrides :meth:`MarginHead.target_logit` (and, rarely, :meth:`logit_scale`).
The cosine and the margin are computed in at least fp32 with autocast off, and every ``acos`` or
``sqrt(1 - cos²)`` sees a cosine clamped away from ±1, so neither fp16/bf16 training nor a
perfectly aligned sample produces NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

COS_EPS = 1e-7  # keeps d/dc acos(c) and d/dc sqrt(1 - c²) finite


@dataclass
class HeadOutput:
    loss: torch.Tensor
    logits: torch.Tensor  # what the cross-entropy saw, scale included


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def clamp_cos(cos: torch.Tensor) -> torch.Tensor:
    return cos.clamp(-1 + COS_EPS, 1 - COS_EPS)


class Head(nn.Module):
    """Embeddings (N, d) and labels (N,) → :class:`HeadOutput`."""

    embedding_size: int
    num_classes: int

    def check_embeddings(self, embeddings: torch.Tensor) -> None:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(
                f"{type(self).__name__} expects embeddings of shape (N, {self.embedding_size}), "
                f"got {tuple(embeddings.shape)}: set model.embedding_size and the head to agree"
            )


class MarginHead(Head):
    """Cosine head with class centres ``weight`` (C·K, d), initialised N(0, 0.01) as insightface; K =
    ``sub_centers`` rows a class (1 but for Sub-center ArcFace, which sets it before this constructor)."""

    shardable = True  # Partial FC may split the classes across processes
    sub_centers = 1

    def __init__(self, embedding_size: int, num_classes: int, scale: float = 64.0):
        super().__init__()
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(num_classes * self.sub_centers, embedding_size))
        nn.init.normal_(self.weight, 0.0, 0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.cosine_to(embeddings, self.weight)

    def cosine_to(self, embeddings: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """(N, classes) cosines to ``centres`` (this head's weight, or the rows Partial FC sampled)."""
        x = F.normalize(at_least_fp32(embeddings), dim=1)
        w = F.normalize(at_least_fp32(centres), dim=1)
        return F.linear(x, w).clamp(-1, 1)

    def observe(self, cos: torch.Tensor, target_cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor):
        """Update running statistics from the whole batch (training only, no gradient), before
        any logit is built. Under Partial FC ``cos`` holds only this process's sampled centres."""

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The target column's cosine (N,) → its margin-modified value (before the scale)."""
        return cos

    def non_target_logits(self, cos: torch.Tensor, target_cos: torch.Tensor) -> torch.Tensor:
        """Every column's value before the scale (the target column is overwritten afterwards);
        ``target_cos`` (N,) is the detached cosine of each row's own class."""
        return cos

    def logit_scale(self, embeddings: torch.Tensor) -> float | torch.Tensor:
        return self.scale

    def extra_loss(self, embeddings: torch.Tensor) -> torch.Tensor | float:
        """A per-batch term added to the cross-entropy (MagFace's regulariser); 0 for most heads."""
        return 0.0

    def margin_logits(
        self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor, target_cos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cosines (N, C) of the classes in view → scaled logits. Rows whose label is −1 (their
        class lives on another process under Partial FC) get no target column; Partial FC then
        passes every row's ``target_cos``, gathered from the process that holds it."""
        owned = labels >= 0
        if target_cos is None:
            target_cos = cos.gather(1, labels.clamp(min=0).view(-1, 1)).squeeze(1)
        logits = self.non_target_logits(cos, target_cos.detach())
        target = self.target_logit(cos[owned, labels[owned]], labels[owned], embeddings[owned])
        rows = owned.nonzero().squeeze(1)
        logits = logits.index_put((rows, labels[owned]), target.to(logits.dtype))
        return logits * self.logit_scale(embeddings)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check_embeddings(embeddings)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cos = self.cosine(embeddings)
            if self.training:
                with torch.no_grad():
                    target_cos = cos.gather(1, labels.view(-1, 1)).squeeze(1)
                    self.observe(cos, target_cos, labels, at_least_fp32(embeddings))
            return self.margin_logits(cos, labels, embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        logits = self.logits(embeddings, labels)
        return HeadOutput(F.cross_entropy(logits, labels) + self.extra_loss(embeddings), logits)

    def extra_repr(self) -> str:
        return f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, scale={self.scale}"
