"""ArcFace (Deng et al., CVPR 2019) and the true combined margin cos(m1·θ + m2) − m3.

ArcFace target logit ``s · cos(θ_y + m)``, others ``s · cos θ_j``; defaults s = 64, m = 0.5
(paper §3.1). ``cos(θ + m)`` is computed as ``cos θ cos m − sin θ sin m`` on a clamped cosine.

When θ + m > π, cos(θ + m) rises again; ``fallback`` chooses what to do there:

* ``"thmm"`` (default; TFace, CurricularFace, insightface MXNet): if cos θ ≤ cos(π − m) use
  ``cos θ − m·sin(π − m)`` (a CosFace-like penalty);
* ``"easy_margin"``: apply the margin only where cos θ > 0;
* ``"cos"``: no margin where cos θ ≤ cos(π − m) (FaceX-Zoo);
* ``"none"``: always cos(θ + m) (insightface arcface_torch).

``gradient`` chooses the backward pass:

* ``"exact"`` (default): autograd through the margin, d target / d cos θ = sin(θ+m)/sin θ;
* ``"straight_through"``: the forward value has the margin, the backward treats the target as
  cos θ (insightface arcface_torch since 2022, which applies the margin under ``no_grad``).
  Use ``fallback="none", gradient="straight_through"`` to reproduce arcface_torch exactly.
"""

from __future__ import annotations

import math

import torch

from .base import MarginHead, clamp_cos

FALLBACKS = ("thmm", "easy_margin", "cos", "none")
GRADIENTS = ("exact", "straight_through")


def straight_through(cos: torch.Tensor, target: torch.Tensor, gradient: str) -> torch.Tensor:
    if gradient == "exact":
        return target
    return cos + (target - cos).detach()


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")


class ArcFaceHead(MarginHead):
    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        fallback: str = "thmm",
        gradient: str = "exact",
    ):
        super().__init__(embedding_size, num_classes, scale)
        check_choice("fallback", fallback, FALLBACKS)
        check_choice("gradient", gradient, GRADIENTS)
        self.margin, self.fallback, self.gradient = margin, fallback, gradient
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        c = clamp_cos(cos)
        phi = c * self.cos_m - torch.sqrt(1.0 - c * c) * self.sin_m
        if self.fallback == "thmm":
            target = torch.where(cos > self.th, phi, cos - self.mm)
        elif self.fallback == "easy_margin":
            target = torch.where(cos > 0, phi, cos)
        elif self.fallback == "cos":
            target = torch.where(cos > self.th, phi, cos)
        else:
            target = phi
        return straight_through(cos, target, self.gradient)


class CombinedMarginHead(MarginHead):
    """insightface's combined margin, all three terms applied: ``s · (cos(m1·θ + m2) − m3)``.

    (1, 0.5, 0) is ArcFace without fallback, (1, 0, 0.35) CosFace, (1.35, 0, 0) the normalised
    SphereFace. Default (1.0, 0.3, 0.2) is insightface MXNet ``loss.combined``. Unlike
    arcface_torch's ``CombinedMarginLoss``, m1 and m2 are not ignored when m3 > 0. As in the
    MXNet original there is no fallback for m1·θ + m2 > π.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        scale: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.3,
        m3: float = 0.2,
        gradient: str = "exact",
    ):
        super().__init__(embedding_size, num_classes, scale)
        check_choice("gradient", gradient, GRADIENTS)
        self.m1, self.m2, self.m3, self.gradient = m1, m2, m3, gradient

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        if self.m1 == 1.0 and self.m2 == 0.0:
            angular = cos
        else:
            angular = torch.cos(self.m1 * torch.acos(clamp_cos(cos)) + self.m2)
        return straight_through(cos, angular - self.m3, self.gradient)
