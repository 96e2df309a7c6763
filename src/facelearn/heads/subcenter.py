"""Sub-center ArcFace (Deng et al., ECCV 2020): K centres per class absorb noisy samples.

The class cosine is the maximum over the class's K sub-centres, cos θ_{i,j} = max_k cos(x_i, W_{j,k}),
then the ArcFace margin (s = 64, m = 0.5, K = 3; the th/mm fallback). ``weight`` has C·K rows,
row j·K + k being sub-centre k of class j.

Cleaning (:func:`find_outliers`): per class the *dominant* sub-centre is the one most of the
class's samples are closest to; a sample further than 75° from its class's dominant sub-centre is
an outlier. The paper drops them and retrains plain ArcFace on the rest.
"""

from __future__ import annotations

import torch

from .arcface import ArcFaceHead


class SubCenterArcFaceHead(ArcFaceHead):
    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        sub_centers: int = 3,
        fallback: str = "thmm",
        gradient: str = "exact",
    ):
        if sub_centers < 1:
            raise ValueError(f"sub_centers must be at least 1, got {sub_centers}")
        self.sub_centers = sub_centers  # read by MarginHead when it builds the C·K centres
        super().__init__(embedding_size, num_classes, scale, margin, fallback, gradient)

    def sub_center_cosine(self, embeddings: torch.Tensor, centres: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, K) cosines to every sub-centre."""
        centres = self.weight if centres is None else centres
        return super().cosine_to(embeddings, centres).view(len(embeddings), -1, self.sub_centers)

    def cosine_to(self, embeddings: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        return self.sub_center_cosine(embeddings, centres).amax(dim=2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, sub_centers={self.sub_centers}"


@torch.no_grad()
def find_outliers(
    head: SubCenterArcFaceHead, embeddings: torch.Tensor, labels: torch.Tensor, threshold_degrees: float = 75.0
) -> torch.Tensor:
    """Boolean mask (N,): True for samples further than ``threshold_degrees`` from their class's
    dominant sub-centre. Give it the embeddings of the whole training set."""
    cos = head.sub_center_cosine(embeddings)[torch.arange(len(labels)), labels]  # (N, K)
    nearest = cos.argmax(dim=1)
    votes = torch.zeros(head.num_classes, head.sub_centers, dtype=torch.long, device=labels.device)
    votes.index_put_((labels, nearest), torch.ones_like(labels), accumulate=True)
    dominant = votes.argmax(dim=1)[labels]
    angle = torch.rad2deg(torch.acos(cos.gather(1, dominant.view(-1, 1)).squeeze(1).clamp(-1, 1)))
    return angle > threshold_degrees
