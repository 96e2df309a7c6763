"""Training tasks: what one step computes. The engine owns everything around the step.

A task is an ``nn.Module`` holding every trainable part (``backbone``, ``head``, …) whose
``forward(batch)`` returns a :class:`StepOutput`. DDL and distillation are tasks too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..heads import Head
from ..models import Backbone


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class Task(nn.Module):
    backbone: Backbone

    def forward(self, batch: dict) -> StepOutput:
        raise NotImplementedError

    def check_labels(self, source) -> None:
        """Fail before training when the data's labels do not fit the task."""


class ClassificationTask(Task):
    """Backbone → embedding → margin head → loss: plain face-recognition training."""

    def __init__(self, backbone: Backbone, head: Head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, batch: dict) -> StepOutput:
        embeddings = self.backbone(batch["images"])
        output = self.head(embeddings, batch["labels"])
        return StepOutput(output.loss)

    def check_labels(self, source) -> None:
        labels = getattr(source, "labels", None)
        highest = max(labels) if labels else source.num_classes - 1
        if highest >= self.head.num_classes:
            raise ValueError(
                f"the data has labels up to {highest} but the head has {self.head.num_classes} classes: "
                f"set data.num_classes to at least {highest + 1} (or leave it empty to count the classes)"
            )
