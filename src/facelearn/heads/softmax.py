"""Softmax with a linear layer and bias, and normalised softmax (NormFace).

* Softmax: ``L = CE(W x + b, y)`` (ArcFace eq. 1).
* Normalised softmax: ``L = CE(s · cos θ, y)`` with ``s = 64`` (ArcFace eq. 2; insightface
  ``loss.nsoftmax``). Without a margin it usually scores *below* plain softmax (ArcFace Table 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Head, HeadOutput, MarginHead, at_least_fp32


class SoftmaxHead(Head):
    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__()
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.linear = nn.Linear(embedding_size, num_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        self.check_embeddings(embeddings)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = at_least_fp32(embeddings)
            logits = F.linear(x, self.linear.weight.to(x.dtype), self.linear.bias.to(x.dtype))
        return HeadOutput(F.cross_entropy(logits, labels), logits)


class NormSoftmaxHead(MarginHead):
    """``s · cos θ`` for every class, no margin (default s = 64)."""
