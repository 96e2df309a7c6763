"""L-Softmax, the large-margin softmax (Liu et al., ICML 2016): a multiplicative angular margin on
the *unnormalised* logit.

    f_y = (λ ‖W_y‖‖x‖ cos θ_y + ‖W_y‖‖x‖ ψ(θ_y)) / (1 + λ),   f_j = W_jᵀx = ‖W_j‖‖x‖ cos θ_j,

with SphereFace's ψ(θ) = (−1)^k cos(mθ) − 2k on [kπ/m, (k+1)π/m] and its annealing
λ = max(λ_min, base·(1 + γ·iter)^(−power)). No bias, and neither the weights nor the feature are
normalised (wy1iu/LargeMargin_Softmax_Loss). With unit-norm class weights it is SphereFace at
scale 1; with m = 1 it is a plain bias-free softmax. Defaults: m = 4 (the paper's LFW model) and
SphereFace's λ schedule (base 1000, γ 0.12, power 1, λ_min 5; the L-Softmax README advises
λ_min 5–10 on large, difficult datasets). Autograd gives the exact gradient. The logit of every
class needs its weight norm, so it is not split by Partial FC.
"""

from __future__ import annotations

import torch

from .base import at_least_fp32
from .sphereface import SphereFaceHead


class LSoftmaxHead(SphereFaceHead):
    shardable = False

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        margin: int = 4,
        lambda_base: float = 1000.0,
        lambda_gamma: float = 0.12,
        lambda_power: float = 1.0,
        lambda_min: float = 5.0,
    ):
        super().__init__(embedding_size, num_classes, 1.0, margin, lambda_base, lambda_gamma, lambda_power, lambda_min)

    def margin_logits(
        self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor, target_cos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """SphereFace's ‖x‖-scaled logits, times each class's weight norm ‖W_j‖."""
        return super().margin_logits(cos, labels, embeddings, target_cos) * at_least_fp32(self.weight).norm(dim=1)
