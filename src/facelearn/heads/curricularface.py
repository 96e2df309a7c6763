"""CurricularFace (Huang et al., CVPR 2020): hard negatives weigh more as training advances.

Target: ArcFace cos(θ_y + m) with the th/mm fallback. A non-target j is *hard* when
cos θ_j > cos(θ_y + m) (the raw value, also on fallback rows); a hard j becomes
cos θ_j·(t + cos θ_j), an easy one stays cos θ_j. The running statistic
t ← α·mean_batch(cos θ_y) + (1 − α)·t, t₀ = 0, is updated before the logits, without gradient,
in training mode only. Defaults s = 64, m = 0.5, α = 0.01 (official code; the paper writes 0.99
for the other weight and the author confirmed the code; TFace uses α = 0.1).
"""

from __future__ import annotations

import torch

from .arcface import ArcFaceHead
from .base import clamp_cos


class CurricularFaceHead(ArcFaceHead):
    def __init__(
        self, embedding_size: int, num_classes: int, scale: float = 64.0, margin: float = 0.5, momentum: float = 0.01
    ):
        super().__init__(embedding_size, num_classes, scale, margin, fallback="thmm", gradient="exact")
        self.momentum = momentum
        self.register_buffer("t", torch.zeros(()))

    def observe(self, cos, target_cos, labels, embeddings) -> None:
        self.t.mul_(1 - self.momentum).add_(self.momentum * target_cos.mean().to(self.t.dtype))

    def non_target_logits(self, cos: torch.Tensor, target_cos: torch.Tensor) -> torch.Tensor:
        c = clamp_cos(target_cos)
        cos_theta_m = (c * self.cos_m - torch.sqrt(1.0 - c * c) * self.sin_m).view(-1, 1)
        return torch.where(cos > cos_theta_m, cos * (self.t.to(cos.dtype) + cos), cos)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, momentum={self.momentum}, t={float(self.t):.4f}"
