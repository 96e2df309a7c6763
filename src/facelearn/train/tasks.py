"""Training tasks: what one step computes. The engine owns everything around the step.

A task is an ``nn.Module`` holding every trainable part (``backbone``, ``head``, …) whose
``forward(batch)`` returns a :class:`StepOutput`. DDL and distillation are tasks too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..distributed import gather
from ..eval.plots import plot_group_distributions
from ..heads import Head
from ..losses import DDLLoss, DDLOutput
from ..models import Backbone

log = logging.getLogger("facelearn.train")


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
        if backbone.embedding_size != head.embedding_size:
            raise ValueError(
                f"the backbone gives {backbone.embedding_size}-d embeddings but the head expects "
                f"{head.embedding_size}-d: build both from model.embedding_size"
            )
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


class DDLTask(ClassificationTask):
    """Margin-head classification of the single images of every group + the DDL loss.

    The batch holds ``groups`` blocks of ``3b`` images (see :mod:`facelearn.data.ddl_batches`); all
    go through the backbone in one pass. As in the reference, the pair images get no
    classification loss. Under ``torch.distributed`` the embeddings of every process are gathered
    (with gradient) before the distributions are estimated.
    """

    def __init__(self, backbone: Backbone, head: Head, ddl: DDLLoss, groups: list[str], pairs: int):
        super().__init__(backbone, head)
        self.ddl, self.group_names, self.pairs = ddl, groups, pairs
        self.recent: list[DDLOutput] = []  # the last steps' similarities, for plots at evaluation

    def forward(self, batch: dict) -> StepOutput:
        b, groups = self.pairs, len(self.group_names)
        embeddings = self.backbone(batch["images"]).float()
        blocks = embeddings.view(groups, 3, b, -1)
        labels = batch["labels"].view(groups, 3, b)
        classification = self.head(blocks[:, 0].reshape(groups * b, -1), labels[:, 0].reshape(-1)).loss
        singles, first, second, single_labels = (
            gather(blocks[:, 0]),
            gather(blocks[:, 1]),
            gather(blocks[:, 2]),
            gather(labels[:, 0]),
        )
        ddl = self.ddl(list(singles), list(first), list(second), list(single_labels))
        self.recent = [*self.recent[-49:], detached(ddl)]
        metrics = {"classification": classification.item(), "ddl": ddl.loss.item()}
        for name, gap in zip(self.group_names, ddl.gaps(), strict=True):
            metrics[f"gap/{name}"] = gap
        return StepOutput(classification + ddl.loss, metrics)

    def report(self, output_dir: Path, step: int, writer) -> dict[str, float]:
        return report_distributions(self, output_dir, step, writer)


def detached(output: DDLOutput) -> DDLOutput:
    return DDLOutput(
        loss=output.loss.detach(),
        positives=[p.detach().cpu() for p in output.positives],
        negatives=[n.detach().cpu() for n in output.negatives],
    )


def report_distributions(task: DDLTask, output_dir: Path, step: int, writer) -> dict[str, float]:
    """Plot the recent steps' S⁺/S⁻ per group to ``ddl_distributions_step<N>.png``; log E[S⁺] − E[S⁻]."""
    if not task.recent:
        return {}
    output_dir.mkdir(parents=True, exist_ok=True)
    groups, gaps = {}, {}
    for g, name in enumerate(task.group_names):
        positives = torch.cat([o.positives[g] for o in task.recent]).numpy()
        negatives = torch.cat([o.negatives[g] for o in task.recent]).numpy()
        groups[name] = (positives, negatives)
        gaps[name] = float(positives.mean() - negatives.mean()) if len(positives) else float("nan")
        writer.add_scalar(f"ddl/gap/{name}", gaps[name], step)
    title = f"step {step}, last {len(task.recent)} batches: " + ", ".join(f"{n} {v:.3f}" for n, v in gaps.items())
    plot_group_distributions(groups, output_dir / f"ddl_distributions_step{step:07d}.png", "E[S⁺] − E[S⁻]  " + title)
    log.info("step %d DDL E[S+] - E[S-]: %s", step, ", ".join(f"{n} {v:.4f}" for n, v in gaps.items()))
    return gaps
