"""From a config to a ready :class:`Trainer`: checks, seed, data, task and evaluation sets."""

from __future__ import annotations

import numpy as np
import torch

from ..config import Config
from ..data.loader import build_source
from ..data.pairs import pair_set_from_config
from ..data.unlabelled import refuse_test_identities
from ..distributed import init_from_environment
from ..errors import ConfigError
from ..hardware import keep_freed_memory, resolve_device
from ..heads import build_head, check_head_options
from ..models import build_backbone, check_model_options
from . import distillation  # noqa: F401 - registers train.task=distill
from .engine import Trainer
from .tasks import TASKS


def check_config(config: Config) -> Config:
    """What the schema alone cannot check: the options of the chosen backbone and head, and the
    task's name. Cheap, and run before anything is built or written."""
    check_model_options(config.model)
    check_head_options(config.head)
    TASKS.get(config.train.task)
    return config


def build_trainer(config: Config) -> Trainer:
    check_config(config)
    init_from_environment()  # under torchrun; before anything is built or written
    if resolve_device(config.train.device).type == "cpu":
        keep_freed_memory()
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    np.random.seed(config.train.seed)
    if config.data.unlabelled:
        if config.train.task != "distill" or config.data.sampler != "random":
            raise ConfigError(
                "data.unlabelled feeds a label-free loss: it needs train.task=distill and data.sampler=random"
            )
        refuse_test_identities(config)
    source = build_source(config.data, config.train.seed)
    num_classes = config.data.num_classes or source.num_classes
    backbone = build_backbone(config.model, config.data.image_size)
    head = build_head(config.head, config.model.embedding_size, num_classes)
    eval_sets = [pair_set_from_config(s, config.train.seed, config.data.image_size) for s in config.eval.sets]
    task = TASKS.get(config.train.task).from_config(config, backbone, head, source)
    return Trainer(config, task, eval_sets)
