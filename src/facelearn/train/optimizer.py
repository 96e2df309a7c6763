"""The optimizer of a task's parameters, as the recipe asks."""

from __future__ import annotations

import torch

from ..config import Config
from .tasks import Task


def build_optimizer(task: Task, config: Config) -> torch.optim.Optimizer:
    """SGD or AdamW; 1-D parameters (BatchNorm, PReLU, biases) skip weight decay unless
    ``optim.decay_norm_and_bias``."""
    optim = config.optim
    decay, no_decay = [], []
    for parameter in task.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 and not optim.decay_norm_and_bias else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    return torch.optim.AdamW(groups, lr=optim.lr)
