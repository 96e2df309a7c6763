"""SphereFace / A-Softmax (Liu et al., CVPR 2017): multiplicative angular margin with λ annealing.

Class centres are normalised, the feature is not: target ``‖x‖ · f_y`` with
``f_y = (λ cos θ_y + ψ(θ_y)) / (1 + λ)``, others ``‖x‖ · cos θ_j``, where
``ψ(θ) = (−1)^k cos(mθ) − 2k`` for θ ∈ [kπ/m, (k+1)π/m] (monotone on [0, π]) and cos(mθ) is the
Chebyshev polynomial T_m(cos θ). ``λ = max(λ_min, base · (1 + γ·iter)^(−power))``, with ``iter``
incremented before every training forward. Defaults from the official prototxt: m = 4,
base = 1000, γ = 0.12, power = 1, λ_min = 5. ``lambda_base = lambda_min = 0`` gives the pure
ψ margin (pytorch-metric-learning's ``SphereFaceLoss``). ``scale`` multiplies ‖x‖ (default 1).
The official Caffe layer back-propagates a normalised gradient; here autograd is exact.
"""

from __future__ import annotations

import math

import torch

from .base import MarginHead, at_least_fp32, clamp_cos


def chebyshev(c: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m·θ) from c = cos θ: T_0 = 1, T_1 = c, T_{n+1} = 2c·T_n − T_{n−1}."""
    previous, current = torch.ones_like(c), c
    if m == 0:
        return previous
    for _ in range(m - 1):
        previous, current = current, 2 * c * current - previous
    return current


class SphereFaceHead(MarginHead):
    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        scale: float = 1.0,
        margin: int = 4,
        lambda_base: float = 1000.0,
        lambda_gamma: float = 0.12,
        lambda_power: float = 1.0,
        lambda_min: float = 5.0,
    ):
        super().__init__(embedding_size, num_classes, scale)
        if int(margin) != margin or margin < 1:
            raise ValueError(f"SphereFace margin must be a positive integer, got {margin}")
        self.margin = int(margin)
        self.lambda_base, self.lambda_gamma = lambda_base, lambda_gamma
        self.lambda_power, self.lambda_min = lambda_power, lambda_min
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def current_lambda(self) -> float:
        annealed = self.lambda_base * (1 + self.lambda_gamma * int(self.iteration)) ** (-self.lambda_power)
        return max(self.lambda_min, annealed)

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.iteration += 1
        c = clamp_cos(cos)
        k = torch.floor(self.margin * torch.acos(c.detach()) / math.pi).clamp(max=self.margin - 1)
        sign = 1.0 - 2.0 * torch.remainder(k, 2)
        psi = sign * chebyshev(c, self.margin) - 2.0 * k
        lam = self.current_lambda()
        return (lam * cos + psi) / (1.0 + lam)

    def logit_scale(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.scale * at_least_fp32(embeddings).norm(dim=1, keepdim=True)
