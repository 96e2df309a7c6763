"""CosFace / AM-Softmax (Wang et al., CVPR 2018): additive cosine margin.

Target logit ``s · (cos θ_y − m)``, others ``s · cos θ_j``. Defaults s = 64, m = 0.35 (CosFace
paper; insightface arcface_torch uses m = 0.4, AM-Softmax s = 30).
"""

from __future__ import annotations

import torch

from .base import MarginHead


class CosFaceHead(MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, scale: float = 64.0, margin: float = 0.35):
        super().__init__(embedding_size, num_classes, scale)
        self.margin = margin

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return cos - self.margin
