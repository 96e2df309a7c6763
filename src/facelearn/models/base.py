"""What every facelearn backbone offers: an embedding, and its per-stage feature maps.

A backbone is a sequence of stages followed by an embedding head. Distillation needs to read a
stage's output and to run a feature map through the *remaining* stages, so both are public.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Backbone(nn.Module):
    embedding_size: int

    def stages(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """The stages in order; composing them and :meth:`embed` gives :meth:`forward`."""
        raise NotImplementedError

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Final feature map → embedding (un-normalised: its norm carries quality)."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_from(images, 0)

    def forward_from(self, features: torch.Tensor, first_stage: int) -> torch.Tensor:
        """Run stages ``first_stage, first_stage+1, ...`` and the embedding head."""
        for stage in self.stages()[first_stage:]:
            features = stage(features)
        return self.embed(features)

    def forward_stages(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding and the output of every stage (for distillation)."""
        outputs = []
        features = images
        for stage in self.stages():
            features = stage(features)
            outputs.append(features)
        return self.embed(features), outputs
