"""AdaFace (Kim, Jain, Liu, CVPR 2022): a margin that adapts to image quality via the feature norm.

With ‖z‖ = clip(‖f‖, 0.001, 100) (detached) and batch statistics μ, σ kept by EMA
(μ ← t_α·mean + (1 − t_α)·μ, σ likewise with the *unbiased* std; μ₀ = 20, σ₀ = 100, updated
before use, training mode only):

    ẑ = clip(h·(‖z‖ − μ)/(σ + 1e-3), −1, 1),  g_angle = −m·ẑ,  g_add = m·ẑ + m
    target = s·(cos(clip(θ_y + g_angle, ε, π − ε)) − g_add),  others s·cos θ_j

where every cosine is first clamped to ±(1 − ε), ε = 1e-3. High-norm (good) faces get an
ArcFace-like angular margin, low-norm faces a CosFace-like one. Defaults are the official training
scripts': m = 0.4, h = 0.333, s = 64, t_α = 0.01 (the class default t_α = 1 uses only the current
batch).
"""

from __future__ import annotations

import math

import torch

from .base import MarginHead, at_least_fp32

EPS = 1e-3


class AdaFaceHead(MarginHead):
    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.4,
        h: float = 0.333,
        t_alpha: float = 0.01,
    ):
        super().__init__(embedding_size, num_classes, scale)
        self.margin, self.h, self.t_alpha = margin, h, t_alpha
        self.register_buffer("batch_mean", torch.tensor(20.0))
        self.register_buffer("batch_std", torch.tensor(100.0))

    @staticmethod
    def norms(embeddings: torch.Tensor) -> torch.Tensor:
        return at_least_fp32(embeddings).detach().norm(dim=1).clamp(0.001, 100)

    def observe(self, cos, target_cos, labels, embeddings) -> None:
        norms = self.norms(embeddings)
        self.batch_mean.mul_(1 - self.t_alpha).add_(self.t_alpha * norms.mean().to(self.batch_mean.dtype))
        if len(norms) > 1:  # an unbiased std needs two samples
            self.batch_std.mul_(1 - self.t_alpha).add_(self.t_alpha * norms.std().to(self.batch_std.dtype))

    def margin_scaler(self, embeddings: torch.Tensor) -> torch.Tensor:
        scaled = (self.norms(embeddings) - self.batch_mean) / (self.batch_std + EPS) * self.h
        return scaled.clamp(-1, 1)

    def non_target_logits(self, cos: torch.Tensor, target_cos: torch.Tensor) -> torch.Tensor:
        return cos.clamp(-1 + EPS, 1 - EPS)

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        ms = self.margin_scaler(embeddings).to(cos.dtype)
        theta = torch.acos(cos.clamp(-1 + EPS, 1 - EPS))
        angular = torch.cos((theta - self.margin * ms).clamp(EPS, math.pi - EPS))
        return angular - (self.margin + self.margin * ms)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, h={self.h}, t_alpha={self.t_alpha}"
