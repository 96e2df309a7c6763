"""From a config to a ready :class:`Trainer`: seed, data, task and evaluation sets."""

from __future__ import annotations

import torch

from ..config import Config
from ..data.loader import build_source
from ..data.pairs import pair_set_from_config
from ..heads import build_head
from ..models import build_backbone
from .engine import Trainer
from .tasks import ClassificationTask


def build_trainer(config: Config) -> Trainer:
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    source = build_source(config.data, config.train.seed)
    num_classes = config.data.num_classes or source.num_classes
    backbone = build_backbone(config.model, config.data.image_size)
    head = build_head(config.head, config.model.embedding_size, num_classes)
    task = ClassificationTask(backbone, head)
    eval_sets = [pair_set_from_config(s, config.train.seed, config.data.image_size) for s in config.eval.sets]
    return Trainer(config, task, source, eval_sets)
