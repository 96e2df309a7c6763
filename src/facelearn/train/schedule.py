"""Learning-rate schedules: linear warm-up, then cosine, polynomial, step or constant.

Stepped once per optimiser step. The warm-up ramps from base/W to base over W steps (never 0).
Step milestones are fractions of the run, so a recipe keeps its shape when its length changes.
"""

from __future__ import annotations

import bisect
import math

import torch

from ..config import ScheduleConfig


def lr_factor(step: int, total_steps: int, config: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    warmup = config.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    low = config.min_lr_ratio
    if config.decay == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.decay == "poly":
        return low + (1 - low) * (1 - progress) ** config.power
    if config.decay == "step":
        passed = bisect.bisect_right(sorted(config.milestones), step / max(1, total_steps))
        return config.gamma**passed
    if config.decay == "constant":
        return 1.0
    raise ValueError(f"unknown schedule.decay {config.decay!r}; valid: cosine, poly, step, constant")


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, config: ScheduleConfig):
    lr_factor(0, total_steps, config)  # fail now on a bad decay name, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, config))
