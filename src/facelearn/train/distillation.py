"""ShrinkTeaNet as a training task: a frozen teacher distils into a light student.

    total = w_h · margin-head loss of the student + Σ λ_i·L_i

(w_h = ``distill.head_weight``, 1 by default; 0 trains on the teacher's terms alone.)

* ``method="angular"``: L_n = mean (1 − cos(F_t, P·F_s))^p on the final embeddings (P, a learned
  linear projection, only when the embedding sizes differ), weight λ_n; and for every requested
  stage i, the student's stage-i map goes through an adapter H_i (1×1 convolution + batch norm to
  the teacher's channels, resized if the spatial size differs) and then through the *teacher's*
  remaining stages i+1 … n, frozen; the embedding that comes out is compared with the teacher's by
  the same loss, with λ_i = λ_n / 2^(n+1−i) (λ_4 = λ_n/2, λ_3 = λ_n/4, …: earlier stages weigh less).
  The adapters' design and the halving rule are the issue's reading of the paper, not confirmed by
  public code (see the losses reference, ``docs/losses_reference.md`` §5, in the project's shared notes).
* ``"l2"``: λ·mean ‖F_t − P·F_s‖², λ = 0.001 (the baseline that also forces the norms to match).
* ``"hinton"``: T²·KL on the teachers' and students' class logits s·cos θ (no margin); teacher and
  student must share the training classes; the teacher's head comes from its checkpoint.
* ``"none"``: the self-taught student (the margin head alone), for comparison.

A black-box teacher (``distill.teacher_embeddings``: an ONNX model, dlib, a service — anything
``facelearn teacher-embed`` ran on the original photos) gives only its final embedding: the angular
and L2 terms apply (the projection to its size is learned as usual; photos where it found no face
are left out of the term), the stage losses and Hinton's method are refused.

The teacher never learns: its parameters have no gradient, it stays in eval mode (batch norm
uses its running statistics) even while the task trains, and it is excluded from the optimiser.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, HeadConfig, from_dict
from ..data.teacher_embeddings import TeacherEmbeddings
from ..errors import ConfigError
from ..heads import Head, build_head
from ..losses.distill import angular_distillation, hinton_distillation, l2_distillation
from ..models import Backbone
from ..models.checkpoint import FORMAT, backbone_from_checkpoint, load_checkpoint, load_head_weights
from .tasks import TASKS, ClassificationTask, StepOutput

METHODS = ("angular", "l2", "hinton", "none")
log = logging.getLogger(__name__)


class StageAdapter(nn.Module):
    """Student stage map → the teacher's channels (1×1 conv + BN) and spatial size."""

    def __init__(self, student_channels: int, teacher_channels: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        self.project = nn.Sequential(
            nn.Conv2d(student_channels, teacher_channels, 1, bias=False), nn.BatchNorm2d(teacher_channels)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.project(features)
        if tuple(features.shape[2:]) != self.size:
            features = F.interpolate(features, size=self.size, mode="bilinear", align_corners=False)
        return features


def stage_shapes(backbone: Backbone, image_size: int) -> list[tuple[int, ...]]:
    """(channels, height, width) of every stage output, from one dummy forward pass."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            _, stages = backbone.forward_stages(torch.zeros(1, 3, image_size, image_size))
    except NotImplementedError:
        raise ConfigError(
            f"{type(backbone).__name__} does not expose its stages: it cannot be distilled stage-wise"
        ) from None
    finally:
        backbone.train(was_training)
    return [tuple(s.shape[1:]) for s in stages]


FROZEN = ("teacher.", "teacher_head.")


class PrecomputedTeacher(nn.Module):
    """A black-box teacher: its embedding of every training image, looked up by the image's index."""

    def __init__(self, table: np.ndarray):
        super().__init__()
        self.embedding_size = table.shape[1]
        self.register_buffer("table", torch.from_numpy(table), persistent=False)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.table[indices.to(self.table.device)]


def black_box_teacher(config: Config, source) -> PrecomputedTeacher:
    """``distill.teacher_embeddings``: only final-embedding losses apply (no layers to run, no logits).

    ``distill.center_teacher`` subtracts the mean of the teacher's embeddings of the training images
    (the paper's loss compares raw directions). dlib's descriptors, for one, all lie near one
    direction (random LFW pairs at cosine 0.84, 0.92 to their mean): raw, the angular term is met
    by outputting that direction, and a student trained on it alone collapsed (58.8 % on LFW)."""
    distill = config.distill
    if distill.teacher:
        raise ConfigError("give distill.teacher (a model) or distill.teacher_embeddings (its answers), not both")
    if distill.stages:
        raise ConfigError(
            "stage losses (distill.stages) need a teacher whose layers facelearn can run; a black-box teacher "
            "(distill.teacher_embeddings) gives only its final embedding: drop distill.stages"
        )
    if distill.method == "hinton":
        raise ConfigError("Hinton distillation needs the teacher's class logits; a black-box teacher has none")
    if not hasattr(source, "teacher_keys"):
        raise ConfigError("distill.teacher_embeddings is keyed by image path: it needs data.kind=folder")
    table = TeacherEmbeddings.load(distill.teacher_embeddings).table_for(source.teacher_keys(), config.data.root)
    mean = np.nanmean(table, axis=0)
    directions = table / np.linalg.norm(table, axis=1, keepdims=True)
    shared = float(np.nanmean(directions @ (mean / np.linalg.norm(mean))))
    if distill.center_teacher:
        table = table - mean  # faceless rows stay NaN
    elif shared > 0.5:
        log.warning(
            "the teacher's embeddings share one direction (mean cosine %.2f to their mean): the angular term "
            "is met by that direction alone; distill.center_teacher=true compares directions about the mean",
            shared,
        )
    return PrecomputedTeacher(table.astype(np.float32))


@TASKS.register("distill")
class DistillationTask(ClassificationTask):
    """The student's classification step plus the distillation terms of ``config.distill``."""

    def __init__(
        self,
        backbone: Backbone,
        head: Head,
        config: Config,
        source,
        teacher: Backbone,
        teacher_head: Head | None = None,
    ):
        super().__init__(backbone, head, config, source)
        distill, image_size = config.distill, config.data.image_size
        method, p, final_weight, stages = distill.method, distill.p, distill.final_weight, distill.stages
        l2_weight, temperature, hinton_weight = distill.l2_weight, distill.temperature, distill.hinton_weight
        if method not in METHODS:
            raise ConfigError(f"unknown distillation method {method!r}; valid: {', '.join(METHODS)}")
        if p not in (1, 2):
            raise ConfigError(f"distill.p must be 1 or 2, got {p}")
        self.method, self.p, self.final_weight, self.stages = method, p, final_weight, list(stages or [])
        self.l2_weight, self.temperature, self.hinton_weight = l2_weight, temperature, hinton_weight
        self.head_weight = distill.head_weight
        if self.head_weight == 0 and method == "none":
            raise ConfigError("distill.head_weight=0 with method none leaves nothing to learn: keep the head's term")
        if self.head_weight == 0:
            head.requires_grad_(False)  # unused: DistributedDataParallel must not wait for its gradients
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_head = teacher_head.eval().requires_grad_(False) if teacher_head is not None else None
        if method == "hinton" and (teacher_head is None or not hasattr(head, "cosine")):
            raise ConfigError(
                "Hinton distillation needs cosine heads for student and teacher (the teacher's from its checkpoint)"
            )
        if method == "hinton" and teacher_head.num_classes != head.num_classes:
            raise ConfigError(
                f"Hinton distillation needs the teacher's classes: its head has {teacher_head.num_classes}, "
                f"the student's {head.num_classes}"
            )
        if self.stages and method != "angular":
            raise ConfigError("stage-wise distillation (distill.stages) is defined for the angular method only")
        self.projection = None
        if method in ("angular", "l2") and backbone.embedding_size != teacher.embedding_size:
            self.projection = nn.Linear(backbone.embedding_size, teacher.embedding_size, bias=False)
        student_shapes, teacher_shapes = [], []
        if self.stages:  # a black-box teacher has no stages to run: its checks are in from_config
            student_shapes, teacher_shapes = stage_shapes(backbone, image_size), stage_shapes(teacher, image_size)
        self.num_stages = len(teacher_shapes)
        for stage in self.stages:
            if not 1 <= stage <= min(len(student_shapes), len(teacher_shapes)):
                raise ConfigError(
                    f"distillation at stage {stage} is impossible: the student has {len(student_shapes)} stages, "
                    f"the teacher {len(teacher_shapes)} (stages are numbered from 1)"
                )
        self.adapters = nn.ModuleDict(
            {
                str(i): StageAdapter(student_shapes[i - 1][0], teacher_shapes[i - 1][0], teacher_shapes[i - 1][1:])
                for i in self.stages
            }
        )

    @classmethod
    def from_config(cls, config: Config, backbone: Backbone, head: Head, source) -> DistillationTask:
        """Loads the frozen teacher (and, for Hinton's method, its head) from ``distill.teacher``."""
        distill = config.distill
        if distill.teacher_embeddings:
            return cls(backbone, head, config, source, black_box_teacher(config, source))
        if distill.center_teacher:
            raise ConfigError("distill.center_teacher applies to distill.teacher_embeddings (a black-box teacher)")
        if not distill.teacher:
            raise ConfigError(
                "train.task=distill needs distill.teacher (a checkpoint) or distill.teacher_embeddings "
                "(a black-box teacher's answers, from facelearn teacher-embed)"
            )
        teacher, teacher_size = backbone_from_checkpoint(
            distill.teacher, distill.teacher_model, distill.teacher_embedding_size
        )
        if teacher_size != config.data.image_size:
            raise ConfigError(
                f"the teacher {distill.teacher} was trained on {teacher_size} px faces, the student on "
                f"{config.data.image_size} px (data.image_size): they must see the same images"
            )
        teacher_head = None
        if distill.method == "hinton":
            saved = load_checkpoint(distill.teacher)
            if saved.get("format") != FORMAT:
                raise ConfigError(
                    "Hinton distillation needs a facelearn teacher checkpoint (it holds the teacher's head)"
                )
            teacher_head_config = from_dict(HeadConfig, saved["config"]["head"])
            num_classes = saved["task"]["head.weight"].shape[0]
            teacher_head = build_head(teacher_head_config, teacher.embedding_size, num_classes, strict=False)
            load_head_weights(teacher_head, distill.teacher)
        return cls(backbone, head, config, source, teacher, teacher_head)

    def state_dict(self, *args, **kwargs) -> dict:
        """The student's state only: the frozen teacher is reloaded from its own checkpoint, so a
        student's checkpoint stays student-sized."""
        state = super().state_dict(*args, **kwargs)
        return type(state)((k, v) for k, v in state.items() if not k.startswith(FROZEN))

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False):
        frozen = {k: v for k, v in super().state_dict().items() if k.startswith(FROZEN)}
        return super().load_state_dict({**state_dict, **frozen}, strict, assign)

    def stage_weight(self, stage: int) -> float:
        return self.final_weight / 2 ** (self.num_stages + 1 - stage)

    def train(self, mode: bool = True) -> DistillationTask:
        super().train(mode)
        self.teacher.eval()
        if self.teacher_head is not None:
            self.teacher_head.eval()
        return self

    def forward(self, batch: dict) -> StepOutput:
        images, labels = batch["images"], batch["labels"]
        if self.method == "none":
            return super().forward(batch)
        with torch.no_grad():
            if isinstance(self.teacher, PrecomputedTeacher):
                teacher_embedding = self.teacher(batch["indices"]).to(images.device)
            else:
                teacher_embedding = self.teacher(images).float()
        answered = ~teacher_embedding.isnan().any(1)  # a precomputed teacher found no face in some photos
        if self.stages:
            student_embedding, student_stages = self.backbone.forward_stages(images)
        else:
            student_embedding, student_stages = self.backbone(images), []
        labelled = labels >= 0  # data.unlabelled faces (label -1) feed the distillation term only
        loss, metrics = 0 * student_embedding.sum(), {}
        if self.head_weight > 0 and labelled.any():
            both = (student_embedding, labels) if labelled.all() else (student_embedding[labelled], labels[labelled])
            classification = self.head(*both).loss
            loss, metrics["classification"] = self.head_weight * classification, classification.item()
        projected = self.projection(student_embedding) if self.projection is not None else student_embedding
        if self.method == "angular":
            final = angular_distillation(teacher_embedding[answered], projected[answered], self.p)
            loss, metrics["angular/final"] = loss + self.final_weight * final, final.item()
            for stage in self.stages:
                routed = self.teacher.forward_from(self.adapters[str(stage)](student_stages[stage - 1]), stage)
                term = angular_distillation(teacher_embedding, routed, self.p)
                loss, metrics[f"angular/stage{stage}"] = loss + self.stage_weight(stage) * term, term.item()
        elif self.method == "l2":
            term = l2_distillation(teacher_embedding[answered], projected[answered])
            loss, metrics["l2"] = loss + self.l2_weight * term, term.item()
        elif self.method == "hinton":
            with torch.no_grad():
                teacher_logits = self.teacher_head.cosine(teacher_embedding) * self.teacher_head.scale
            student_logits = self.head.cosine(student_embedding) * self.head.scale
            term = hinton_distillation(teacher_logits, student_logits, self.temperature)
            loss, metrics["hinton"] = loss + self.hinton_weight * term, term.item()
        return StepOutput(loss, metrics)
