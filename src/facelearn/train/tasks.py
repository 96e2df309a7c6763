"""Training tasks: what one step computes. The engine owns everything around the step.

A task is an ``nn.Module`` registered by name in :data:`TASKS` (``train.task``). The contract
below is everything the engine uses, so a new task is one file (a subclass, ``@TASKS.register``),
its config section and its test:

* ``from_config(config, backbone, head, source)`` builds it (reading its own config section);
* ``backbone`` and ``head`` are its trainable modules (plus any it adds); the engine checkpoints
  ``state_dict()`` and evaluates ``backbone``;
* ``loader(start_batch)`` yields the batches (dicts with ``images``, ``labels``, ``skipped``) from
  batch number ``start_batch`` on, a pure function of the seed so a resumed run replays them;
* ``forward(batch)`` returns a :class:`StepOutput` (loss and metrics to log);
* ``check_labels()`` fails before training when the data does not fit the task;
* ``report(output_dir, step, writer)`` adds the task's own plots and scalars at each evaluation.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..data.ddl_batches import build_ddl_loader, build_groups
from ..data.loader import TrainingDataset, build_train_loader
from ..data.transforms import TrainTransform
from ..distributed import gather, rank, world_size
from ..errors import ConfigError, DataError
from ..eval.plots import plot_group_distributions
from ..hardware import resolve_device
from ..heads import Head
from ..losses import DDLLoss, DDLOutput
from ..models import Backbone
from ..registry import Registry

log = logging.getLogger("facelearn.train")


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class Task(nn.Module, metaclass=abc.ABCMeta):
    """What one training step computes; see the module docstring for the contract."""

    backbone: Backbone
    head: Head

    def __init__(self, backbone: Backbone, head: Head, config: Config, source):
        super().__init__()
        if backbone.embedding_size != head.embedding_size:
            raise ConfigError(
                f"the backbone gives {backbone.embedding_size}-d embeddings but the head expects "
                f"{head.embedding_size}-d: build both from model.embedding_size"
            )
        self.backbone, self.head = backbone, head
        self.config, self.source = config, source

    @classmethod
    def from_config(cls, config: Config, backbone: Backbone, head: Head, source) -> Task:
        return cls(backbone, head, config, source)

    @abc.abstractmethod
    def forward(self, batch: dict) -> StepOutput: ...

    @abc.abstractmethod
    def loader(self, start_batch: int):
        """The batches from number ``start_batch`` on."""

    def check_labels(self) -> None:
        """Fail before training when the data's labels do not fit the head."""
        labels = getattr(self.source, "labels", None)
        highest = max(labels) if labels else self.source.num_classes - 1
        if highest >= self.head.num_classes:
            raise DataError(
                f"the data has labels up to {highest} but the head has {self.head.num_classes} classes: "
                f"set data.num_classes to at least {highest + 1} (or leave it empty to count the classes)"
            )

    def report(self, output_dir: Path, step: int, writer) -> dict[str, float]:
        return {}


TASKS: Registry[Task] = Registry("train.task")


def pins(train) -> bool:
    """Batches for a CUDA device come in pinned memory, so their copy to it overlaps the step."""
    return resolve_device(train.device).type == "cuda"


@TASKS.register("classification")
class ClassificationTask(Task):
    """Backbone → embedding → margin head → loss: plain face-recognition training."""

    def forward(self, batch: dict) -> StepOutput:
        embeddings = self.backbone(batch["images"])
        output = self.head(embeddings, batch["labels"])
        return StepOutput(output.loss)

    def loader(self, start_batch: int):
        data, train = self.config.data, self.config.train
        dataset = TrainingDataset(
            self.source, TrainTransform(data.flip, data.degrade), data.image_size, train.seed, data.strict
        )
        k = data.samples_per_identity if data.sampler == "identity" else 0
        return build_train_loader(
            dataset, train.batch_size, train.seed, start_batch, data.num_workers, rank(), world_size(), k, pins(train)
        )


@TASKS.register("ddl")
class DDLTask(ClassificationTask):
    """Margin-head classification of the single images of every group + the DDL loss.

    The batch holds ``groups`` blocks of ``3b`` images (see :mod:`facelearn.data.ddl_batches`); all
    go through the backbone in one pass. As in the reference, the pair images get no
    classification loss. Under ``torch.distributed`` the embeddings of every process are gathered
    (with gradient) before the distributions are estimated.
    """

    def __init__(self, backbone: Backbone, head: Head, config: Config, source):
        super().__init__(backbone, head, config, source)
        ddl = config.ddl
        self.groups = build_groups(source, ddl)
        self.ddl = DDLLoss(
            ddl.pos_weight,
            ddl.neg_weight,
            ddl.order_weight,
            ddl.positive_threshold,
            ddl.mining,
            ddl.histogram,
            ddl.bins,
            ddl.sigma,
            ddl.detach_teacher,
        )
        self.group_names, self.pairs = [g.name for g in self.groups], ddl.pairs
        self.recent: list[DDLOutput] = []  # the last steps' similarities, for plots at evaluation

    def loader(self, start_batch: int):
        data, seed = self.config.data, self.config.train.seed
        options = {"flip": data.flip, "strict": data.strict, "num_workers": data.num_workers, "rank": rank()}
        options["pin_memory"] = pins(self.config.train)
        return build_ddl_loader(
            self.source, self.groups, self.config.ddl, data.image_size, seed, start_batch, **options
        )

    def forward(self, batch: dict) -> StepOutput:
        b, groups = self.pairs, len(self.group_names)
        embeddings = self.backbone(batch["images"]).float()
        blocks = embeddings.view(groups, 3, b, -1)
        labels = batch["labels"].view(groups, 3, b)
        classification = self.head(blocks[:, 0].reshape(groups * b, -1), labels[:, 0].reshape(-1)).loss
        singles, first, second, single_labels = (
            gather(blocks[:, 0], dim=1),  # (groups, pairs, D): every process's pairs of each group
            gather(blocks[:, 1], dim=1),
            gather(blocks[:, 2], dim=1),
            gather(labels[:, 0], dim=1),
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
