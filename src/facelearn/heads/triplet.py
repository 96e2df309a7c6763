"""Triplet loss with batch-hard mining (Hermans et al., 2017, on FaceNet's loss).

For each anchor a: d(a, p*) = the largest distance to a sample of its identity, d(a, n*) = the
smallest to any other identity, loss = mean_a [d(a, p*) − d(a, n*) + margin]₊ over the anchors
that have both. Distances are squared L2 between L2-normalised embeddings (= 2 − 2 cos), with
FaceNet's margin 0.2. Needs batches of P identities × K images (``data.sampler: identity``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Head, HeadOutput, at_least_fp32


class BatchHardTripletLoss(Head):
    def __init__(self, embedding_size: int, num_classes: int = 0, margin: float = 0.2):
        super().__init__()
        self.embedding_size, self.num_classes, self.margin = embedding_size, num_classes, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        self.check_embeddings(embeddings)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(at_least_fp32(embeddings), dim=1)
            distance = (2 - 2 * (x @ x.T)).clamp(min=0)
            same = labels.view(-1, 1) == labels.view(1, -1)
            eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
            positive, negative = same & ~eye, ~same
            hardest_positive = distance.masked_fill(~positive, -torch.inf).amax(dim=1)
            hardest_negative = distance.masked_fill(~negative, torch.inf).amin(dim=1)
            usable = positive.any(dim=1) & negative.any(dim=1)
            if not usable.any():
                raise ValueError(
                    "batch-hard triplet loss needs at least two images of one identity and another identity "
                    "in each batch: set data.sampler=identity (P identities × data.samples_per_identity)"
                )
            loss = (hardest_positive - hardest_negative + self.margin)[usable].clamp(min=0).mean()
            return HeadOutput(loss, distance)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
