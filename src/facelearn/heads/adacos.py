"""AdaCos (Zhang et al., CVPR 2019): no margin, and a scale chosen from the data.

Fixed scale s = √2·ln(C − 1). With ``dynamic=True`` (default) the scale is re-estimated every
training step without gradient, from the previous scale s_old:

    B_avg = mean_i Σ_{j≠y_i} exp(s_old·cos θ_ij),   s = ln(B_avg) / cos(min(π/4, median_i θ_{y_i}))

(FaceX-Zoo ``head/AdaCos.py``). The scale is a buffer, so it is checkpointed and resumed.
"""

from __future__ import annotations

import math

import torch

from .base import MarginHead, clamp_cos


class AdaCosHead(MarginHead):
    shardable = False  # B_avg sums over every class: not available to one Partial FC shard

    def __init__(self, embedding_size: int, num_classes: int, dynamic: bool = True):
        if num_classes < 3:
            raise ValueError(f"AdaCos needs at least 3 classes (s = √2·ln(C − 1)), got {num_classes}")
        super().__init__(embedding_size, num_classes, scale=math.sqrt(2) * math.log(num_classes - 1))
        self.dynamic = dynamic
        self.register_buffer("adaptive_scale", torch.tensor(self.scale))

    def observe(self, cos, target_cos, labels, embeddings) -> None:
        if not self.dynamic:
            return
        s = self.adaptive_scale.to(cos.dtype)
        others = torch.ones_like(cos, dtype=torch.bool).scatter(1, labels.view(-1, 1), False)
        b_avg = torch.where(others, torch.exp(s * cos), 0).sum(dim=1).mean()
        theta_median = torch.acos(clamp_cos(target_cos)).median()
        new = torch.log(b_avg) / torch.cos(theta_median.clamp(max=math.pi / 4))
        self.adaptive_scale.copy_(new.to(self.adaptive_scale.dtype))

    def logit_scale(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.adaptive_scale.to(torch.float64 if embeddings.dtype == torch.float64 else torch.float32)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dynamic={self.dynamic}, adaptive_scale={float(self.adaptive_scale):.3f}"
