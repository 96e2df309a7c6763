"""Circle Loss (Sun et al., CVPR 2020), class-level and pair-wise.

With O_p = 1 + m, O_n = −m, Δ_p = 1 − m, Δ_n = m and the weights α_p = [O_p − s_p]₊,
α_n = [s_n − O_n]₊ computed on detached similarities (as every reference does):

* **class-level** (:class:`CircleHead`, a classification head with class proxies): the
  cross-entropy of z_y = γ·α_p·(cos θ_y − Δ_p) and z_j = γ·α_n·(cos θ_j − Δ_n), j ≠ y
  (FaceX-Zoo ``head/CircleLoss.py``);
* **pair-wise** (:class:`CirclePairLoss`, embeddings and labels only): per anchor
  softplus(LSE_j γ·α_n(s_n − Δ_n) + LSE_i −γ·α_p(s_p − Δ_p)) over its positives and negatives in
  the batch, averaged over the anchors with a non-zero loss (pytorch-metric-learning's form and
  reduction; anchors without a positive or a negative contribute nothing).

Defaults m = 0.25, γ = 256, the paper's face-recognition setting (pytorch-metric-learning's
defaults are m = 0.4, γ = 80). Everything is in logsumexp/softplus form, finite at γ = 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Head, HeadOutput, MarginHead, at_least_fp32


class CircleHead(MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, margin: float = 0.25, gamma: float = 256.0):
        super().__init__(embedding_size, num_classes, scale=gamma)
        self.margin, self.gamma = margin, gamma

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        alpha_p = (1 + self.margin - cos.detach()).clamp(min=0)
        return alpha_p * (cos - (1 - self.margin))

    def non_target_logits(self, cos: torch.Tensor, target_cos: torch.Tensor) -> torch.Tensor:
        alpha_n = (cos.detach() + self.margin).clamp(min=0)
        return alpha_n * (cos - self.margin)

    def extra_repr(self) -> str:
        return f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, m={self.margin}, γ={self.gamma}"


class CirclePairLoss(Head):
    """Pair-wise Circle Loss over a batch: no class centres, so ``num_classes`` is unused and any
    identity sampler (P identities × K images) feeds it."""

    def __init__(self, embedding_size: int, num_classes: int = 0, margin: float = 0.25, gamma: float = 256.0):
        super().__init__()
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.margin, self.gamma = margin, gamma

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        self.check_embeddings(embeddings)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(at_least_fp32(embeddings), dim=1)
            sim = x @ x.T
            same = labels.view(-1, 1) == labels.view(1, -1)
            eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
            positive, negative = same & ~eye, ~same
            m, gamma = self.margin, self.gamma
            logit_p = -gamma * (1 + m - sim.detach()).clamp(min=0) * (sim - (1 - m))
            logit_n = gamma * (sim.detach() + m).clamp(min=0) * (sim - m)
            usable = (positive.any(dim=1) & negative.any(dim=1)).view(-1, 1)
            # rows without a positive or a negative are zeroed, so no logsumexp sees only −inf
            lse_p = torch.where(usable, logit_p.masked_fill(~positive, -torch.inf), 0.0).logsumexp(dim=1)
            lse_n = torch.where(usable, logit_n.masked_fill(~negative, -torch.inf), 0.0).logsumexp(dim=1)
            usable = usable.squeeze(1)
            per_anchor = torch.where(usable, F.softplus(lse_p + lse_n), torch.zeros_like(lse_p))
            nonzero = per_anchor > 0
            loss = per_anchor[nonzero].mean() if nonzero.any() else per_anchor.sum()
            return HeadOutput(loss, sim)
