"""DDL, the Distribution Distillation Loss (Huang et al., "Improving Face Recognition from Hard
Samples via Distribution Distillation Loss", ECCV 2020, arXiv 2002.03662).

One network, several groups of samples: group 0 is easy (the *teacher*), groups 1…K are hard (the
*students*: low resolution, pose, occlusion). For each group g:

* positive similarities S⁺_g: cos(x₁, x₂) of its positive pairs, keeping those > ``positive_threshold``;
* negative similarities S⁻_g: for each single image, the cosine of its hardest negative
  (``mining="paper"``: the most similar other image of the batch; ``mining="reference"``: TFace's
  rule, the maximum over later rows only, floored at 0 — so the last row is always 0);
* soft histograms P_g(t_r) ∝ Σ_s exp(−γ (s − t_r)²) over R nodes, normalised to sum to one.

    L_KL    = λ1 Σ_g KL(P⁺_0 ‖ P⁺_g) + λ2 Σ_g KL(P⁻_0 ‖ P⁻_g)            (teacher first; g ≥ 1)
    L_order = λ3 Σ_(i, j) (E[S⁻_i] − E[S⁺_j])   over every (negative group i, positive group j)
    L_DDL   = L_KL + L_order

with KL(P‖Q) = Σ_r (P_r + ε)(log(P_r + ε) − log(Q_r + ε)), ε = 1e-9, and E[·] the plain mean of
the kept similarities, as in the reference code. Defaults λ = (0.1, 0.02, 0.5) are the reference
code's. Histogram presets:

* ``"reference"`` (default): 1,000 nodes on [0, 0.999] (step 0.001), σ = 0.1 (γ = 50) — TFace's
  values, the only ones that can be checked against running code (the paper's R and γ are not
  stated in a verifiable form). Similarities below 0 only reach it through the kernel tails.
* ``"paper"``: R nodes uniformly on [−1, 1] with step 2/(R − 1), as the paper describes; R = 101
  and σ = 0.1 unless given.

``detach_teacher=False`` (default) reproduces the reference, where the gradient also flows into
the teacher distribution; ``True`` is the textbook distillation, with the teacher held fixed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

KL_EPS = 1e-9
MINING_RULES = ("reference", "paper")
HISTOGRAM_PRESETS = ("reference", "paper")


def histogram_nodes(preset: str, bins: int | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if preset == "reference":
        if bins not in (None, 1000):
            raise ValueError("the reference histogram has 1000 nodes on [0, 0.999]; use preset 'paper' for other R")
        return torch.arange(0, 1.0, 0.001, dtype=dtype)
    if preset == "paper":
        bins = bins or 101
        if bins < 2:
            raise ValueError(f"the histogram needs at least 2 nodes, got {bins}")
        return torch.linspace(-1.0, 1.0, bins, dtype=dtype)
    raise ValueError(f"unknown histogram preset {preset!r}; valid: {', '.join(HISTOGRAM_PRESETS)}")


def soft_histogram(similarities: torch.Tensor, nodes: torch.Tensor, sigma: float) -> torch.Tensor:
    """Σ_s exp(−(s − t_r)² / 2σ²) for every node t_r, normalised over the nodes to sum to 1."""
    weights = torch.exp(-0.5 * ((similarities[:, None] - nodes[None, :]) / sigma) ** 2).sum(0)
    return weights / weights.sum()


def kl_divergence(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) with ε added to both (as ``F.kl_div(log(Q + ε), P + ε)``)."""
    return F.kl_div(torch.log(student + KL_EPS), teacher + KL_EPS, reduction="sum")


def hardest_negatives(features: torch.Tensor, rule: str = "paper", labels: torch.Tensor | None = None) -> torch.Tensor:
    """One mined negative similarity per row of (already normalised) ``features``.

    ``"paper"``: the maximum cosine to any other sample (of another identity when ``labels`` are
    given). ``"reference"``: TFace's ``max_j triu(F Fᵀ, 1)[i, j]`` — later rows only, floored at 0.
    """
    similarities = features @ features.T
    if rule == "reference":
        return torch.triu(similarities, diagonal=1).max(dim=1).values
    if rule != "paper":
        raise ValueError(f"unknown negative mining rule {rule!r}; valid: {', '.join(MINING_RULES)}")
    same = torch.eye(len(features), dtype=torch.bool, device=features.device)
    if labels is not None:
        same = same | (labels[:, None] == labels[None, :])
    return similarities.masked_fill(same, float("-inf")).max(dim=1).values


@dataclass
class DDLOutput:
    loss: torch.Tensor
    kl_positive: list[torch.Tensor] = field(default_factory=list)  # per student
    kl_negative: list[torch.Tensor] = field(default_factory=list)
    order: torch.Tensor | None = None  # (groups, groups): E[S⁻_i] − E[S⁺_j]
    positives: list[torch.Tensor] = field(default_factory=list)  # kept S⁺ per group
    negatives: list[torch.Tensor] = field(default_factory=list)  # mined S⁻ per group
    histograms: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (negative, positive)

    def gaps(self) -> list[float]:
        """E[S⁺] − E[S⁻] per group (NaN for a group without positives)."""
        return [
            (p.mean() - n.mean()).item() if len(p) else float("nan")
            for p, n in zip(self.positives, self.negatives, strict=True)
        ]


class DDLLoss(nn.Module):
    def __init__(
        self,
        pos_weight: float = 0.1,
        neg_weight: float = 0.02,
        order_weight: float = 0.5,
        positive_threshold: float = 0.0,
        mining: str = "paper",
        histogram: str = "reference",
        bins: int | None = None,
        sigma: float = 0.1,
        detach_teacher: bool = False,
    ) -> None:
        super().__init__()
        if mining not in MINING_RULES:
            raise ValueError(f"unknown negative mining rule {mining!r}; valid: {', '.join(MINING_RULES)}")
        if sigma <= 0:
            raise ValueError(f"the histogram kernel width sigma must be positive, got {sigma}")
        histogram_nodes(histogram, bins)  # validates the preset now, not at the first step
        self.pos_weight, self.neg_weight, self.order_weight = pos_weight, neg_weight, order_weight
        self.positive_threshold, self.mining = positive_threshold, mining
        self.histogram, self.bins, self.sigma, self.detach_teacher = histogram, bins, sigma, detach_teacher

    def forward(
        self,
        singles: list[torch.Tensor],
        pairs_first: list[torch.Tensor],
        pairs_second: list[torch.Tensor],
        single_labels: list[torch.Tensor] | None = None,
    ) -> DDLOutput:
        """Per group (teacher first): embeddings of single images of distinct identities (b, d) and
        of the two members of its positive pairs (b, d) each. Embeddings need not be normalised."""
        if not (len(singles) == len(pairs_first) == len(pairs_second)) or len(singles) < 2:
            raise ValueError(
                f"DDL needs a teacher and at least one student with singles and pairs each; got {len(singles)} "
                f"single groups, {len(pairs_first)} and {len(pairs_second)} pair groups"
            )
        with torch.autocast(singles[0].device.type, enabled=False):  # similarities and logs in fp32 or fp64
            return self._forward(singles, pairs_first, pairs_second, single_labels)

    def _forward(self, singles, pairs_first, pairs_second, single_labels) -> DDLOutput:
        dtype = torch.float64 if singles[0].dtype == torch.float64 else torch.float32
        nodes = histogram_nodes(self.histogram, self.bins, dtype).to(singles[0].device)
        output = DDLOutput(loss=singles[0].new_zeros((), dtype=dtype))
        for g, (single, first, second) in enumerate(zip(singles, pairs_first, pairs_second, strict=True)):
            labels = single_labels[g] if single_labels is not None else None
            negatives = hardest_negatives(F.normalize(single.to(dtype), dim=1), self.mining, labels)
            cosines = (F.normalize(first.to(dtype), dim=1) * F.normalize(second.to(dtype), dim=1)).sum(1)
            positives = cosines[cosines > self.positive_threshold]
            output.negatives.append(negatives)
            output.positives.append(positives)
            histograms = (
                soft_histogram(negatives, nodes, self.sigma),
                soft_histogram(positives, nodes, self.sigma) if len(positives) else None,
            )
            if g == 0 and self.detach_teacher:
                histograms = tuple(h.detach() if h is not None else None for h in histograms)
            output.histograms.append(histograms)
        teacher_negative, teacher_positive = output.histograms[0]
        if teacher_positive is None:
            warnings.warn(
                f"DDL: no teacher positive pair has a similarity above {self.positive_threshold}; "
                "the positive KL and order terms are skipped this step",
                RuntimeWarning,
                stacklevel=2,
            )
        for student_negative, student_positive in output.histograms[1:]:
            output.kl_negative.append(kl_divergence(teacher_negative, student_negative))
            if teacher_positive is not None and student_positive is not None:
                output.kl_positive.append(kl_divergence(teacher_positive, student_positive))
            elif student_positive is None:
                warnings.warn("DDL: a student group kept no positive pair this step", RuntimeWarning, stacklevel=2)
        order = torch.stack(
            [
                torch.stack([n.mean() - p.mean() if len(p) else n.new_tensor(float("nan")) for p in output.positives])
                for n in output.negatives
            ]
        )
        output.order = order
        output.loss = (
            self.pos_weight * sum(output.kl_positive, output.loss)
            + self.neg_weight * sum(output.kl_negative, output.loss)
            + self.order_weight * order[~order.isnan()].sum()
        )
        return output
