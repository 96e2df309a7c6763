"""From a config to a ready :class:`Trainer`: seed, data, task and evaluation sets."""

from __future__ import annotations

import torch

from ..config import Config, HeadConfig, from_dict
from ..data.ddl_batches import build_ddl_loader, build_groups
from ..data.loader import build_source
from ..data.pairs import pair_set_from_config
from ..distributed import init_from_environment, rank
from ..heads import build_head
from ..losses import DDLLoss
from ..models import build_backbone
from .checkpoint import FORMAT, backbone_from_checkpoint, load_checkpoint, load_head_weights
from .distillation import DistillationTask
from .engine import Trainer
from .tasks import ClassificationTask, DDLTask


def build_trainer(config: Config) -> Trainer:
    init_from_environment()  # under torchrun; before anything is built or written
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    source = build_source(config.data, config.train.seed)
    num_classes = config.data.num_classes or source.num_classes
    backbone = build_backbone(config.model, config.data.image_size)
    head = build_head(config.head, config.model.embedding_size, num_classes)
    eval_sets = [pair_set_from_config(s, config.train.seed, config.data.image_size) for s in config.eval.sets]
    if config.train.task == "classification":
        return Trainer(config, ClassificationTask(backbone, head), source, eval_sets)
    if config.train.task == "ddl":
        return ddl_trainer(config, backbone, head, source, eval_sets)
    if config.train.task == "distill":
        return Trainer(config, distillation_task(config, backbone, head), source, eval_sets)
    raise ValueError(f"unknown train.task {config.train.task!r}; valid: classification, ddl, distill")


def distillation_task(config: Config, backbone, head) -> DistillationTask:
    distill = config.distill
    if not distill.teacher:
        raise ValueError("train.task=distill needs distill.teacher, the teacher's checkpoint")
    teacher, teacher_size = backbone_from_checkpoint(
        distill.teacher, distill.teacher_model, distill.teacher_embedding_size
    )
    if teacher_size != config.data.image_size:
        raise ValueError(
            f"the teacher {distill.teacher} was trained on {teacher_size} px faces, the student on "
            f"{config.data.image_size} px (data.image_size): they must see the same images"
        )
    teacher_head = None
    if distill.method == "hinton":
        saved = load_checkpoint(distill.teacher)
        if saved.get("format") != FORMAT:
            raise ValueError("Hinton distillation needs a facelearn teacher checkpoint (it holds the teacher's head)")
        teacher_head_config = from_dict(HeadConfig, saved["config"]["head"])
        num_classes = saved["task"]["head.weight"].shape[0]
        teacher_head = build_head(teacher_head_config, teacher.embedding_size, num_classes)
        load_head_weights(teacher_head, distill.teacher)
    return DistillationTask(
        backbone,
        head,
        teacher,
        config.data.image_size,
        distill.method,
        distill.p,
        distill.final_weight,
        distill.stages,
        distill.l2_weight,
        distill.temperature,
        distill.hinton_weight,
        teacher_head,
    )


def ddl_trainer(config: Config, backbone, head, source, eval_sets) -> Trainer:
    ddl = config.ddl
    groups = build_groups(source, ddl)
    loss = DDLLoss(
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
    task = DDLTask(backbone, head, loss, [g.name for g in groups], ddl.pairs)
    data, seed = config.data, config.train.seed

    def make_loader(start_batch: int):
        options = {"flip": data.flip, "strict": data.strict, "num_workers": data.num_workers, "rank": rank()}
        return build_ddl_loader(source, groups, ddl, data.image_size, seed, start_batch, **options)

    return Trainer(config, task, source, eval_sets, make_loader)
