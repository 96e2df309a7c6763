"""MagFace (Meng et al., CVPR 2021): the embedding's magnitude is a quality score.

With a = clamp(‖f‖, l_a, u_a) of the raw (un-normalised) embedding:

* margin m(a) = (u_m − l_m)/(u_a − l_a)·(a − l_a) + l_m, on the ArcFace target cos(θ_y + m(a));
* regulariser g(a) = 1/a + a/u_a², added as λ_g·mean_batch g(a).

Defaults are the official run scripts' (IrvingMeng/MagFace ``run/run.sh``): s = 64, l_a = 10,
u_a = 110, l_m = 0.45, u_m = 0.8, λ_g = 35. The optimum magnitude is unique only when
λ_g ≥ s·k·u_a²·l_a²/(u_a² − l_a²), k = (u_m − l_m)/(u_a − l_a) (22.59 with the defaults); a
smaller λ_g (the official argparse default 20, FaceX-Zoo's 20) is allowed with a warning.

The gradient flows through m(a) and g(a) into the magnitude; the clamp stops it outside
[l_a, u_a], as in the reference. ``fallback`` for cos θ_y past the margin's range:

* ``"easy_margin"`` (default, the official ``MagLinear``): no margin where cos θ_y ≤ 0;
* ``"thmm"`` (official ``easy_margin=False``): cos θ_y − sin(π − m)·m where cos θ_y ≤ cos(π − m);
* ``"cos"`` (FaceX-Zoo): no margin where cos θ_y ≤ cos(π − m).

At inference :meth:`quality` (= ‖f‖) ranks faces by how recognisable they are.
"""

from __future__ import annotations

import math
import warnings

import torch

from .arcface import check_choice
from .base import MarginHead, at_least_fp32, clamp_cos

FALLBACKS = ("easy_margin", "thmm", "cos")


def lambda_g_bound(scale: float, l_a: float, u_a: float, l_m: float, u_m: float) -> float:
    """The smallest λ_g for which the optimal magnitude is unique (MagFace, Theorem / trainer.py)."""
    k = (u_m - l_m) / (u_a - l_a)
    return scale * k * u_a**2 * l_a**2 / (u_a**2 - l_a**2)


class MagFaceHead(MarginHead):
    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        scale: float = 64.0,
        l_a: float = 10.0,
        u_a: float = 110.0,
        l_m: float = 0.45,
        u_m: float = 0.8,
        lambda_g: float = 35.0,
        fallback: str = "easy_margin",
    ):
        super().__init__(embedding_size, num_classes, scale)
        check_choice("fallback", fallback, FALLBACKS)
        if not 0 < l_a < u_a or l_m > u_m:
            raise ValueError(f"MagFace needs 0 < l_a < u_a and l_m ≤ u_m, got l_a={l_a} u_a={u_a} l_m={l_m} u_m={u_m}")
        self.l_a, self.u_a, self.l_m, self.u_m = l_a, u_a, l_m, u_m
        self.lambda_g, self.fallback = lambda_g, fallback
        bound = lambda_g_bound(scale, l_a, u_a, l_m, u_m)
        if lambda_g < bound:
            warnings.warn(
                f"MagFace lambda_g={lambda_g} is below {bound:.4g}, the bound that guarantees a unique optimal "
                f"magnitude for s={scale}, l_a={l_a}, u_a={u_a}, l_m={l_m}, u_m={u_m}: raise lambda_g",
                stacklevel=2,
            )

    def magnitude(self, embeddings: torch.Tensor) -> torch.Tensor:
        return at_least_fp32(embeddings).norm(dim=1).clamp(self.l_a, self.u_a)

    def margin(self, a: torch.Tensor) -> torch.Tensor:
        return (self.u_m - self.l_m) / (self.u_a - self.l_a) * (a - self.l_a) + self.l_m

    def regulariser(self, a: torch.Tensor) -> torch.Tensor:
        return 1.0 / a + a / self.u_a**2

    def target_logit(self, cos: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        m = self.margin(self.magnitude(embeddings))
        c = clamp_cos(cos)
        phi = c * torch.cos(m) - torch.sqrt(1.0 - c * c) * torch.sin(m)
        if self.fallback == "easy_margin":
            return torch.where(cos > 0, phi, cos)
        threshold = torch.cos(math.pi - m)
        if self.fallback == "thmm":
            return torch.where(cos > threshold, phi, cos - torch.sin(math.pi - m) * m)
        return torch.where(cos > threshold, phi, cos)

    def extra_loss(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.lambda_g * self.regulariser(self.magnitude(embeddings)).mean()

    @staticmethod
    def quality(embeddings: torch.Tensor) -> torch.Tensor:
        """The raw embedding norm: MagFace's quality score (larger = more recognisable)."""
        return at_least_fp32(embeddings).norm(dim=1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, l_a={self.l_a}, u_a={self.u_a}, l_m={self.l_m}, u_m={self.u_m}, "
            f"lambda_g={self.lambda_g}, fallback={self.fallback}"
        )
