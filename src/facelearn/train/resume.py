"""Resuming a run: which config changes alter it, and which are harmless.

A run resumed with another learning rate, schedule, model or data is not the run its checkpoint
and ``config.yaml`` describe. :func:`altering_changes` lists the keys whose values differ, except
those that only change how the run is watched or where it runs (logging, checkpoint frequency,
evaluation, workers, threads, device); ``train.resume=force`` applies a change and records it.
"""

from __future__ import annotations

from typing import Any

from ..config import Config, to_dict

# keys (or key prefixes ending in ".") that may change between a run and its resumption
HARMLESS = (
    "eval.",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_last",
    "train.resume",
    "train.output_dir",
    "train.threads",
    "train.device",
    "train.init_backbone",  # used only when a run starts
    "train.init_head",
    "data.num_workers",  # batches do not depend on the number of workers
)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: data}


def altering_changes(saved: dict, current: Config) -> list[str]:
    """``key: saved -> now`` for every key that differs and alters the run (null = not set)."""
    before, after = flatten(saved), flatten(to_dict(current))
    changes = []
    for key in sorted(set(before) | set(after)):
        if any(key == h or (h.endswith(".") and key.startswith(h)) for h in HARMLESS):
            continue
        old, new = before.get(key), after.get(key)
        if old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes


def apply_changed_config(task, optimizer, scheduler, config):
    """``train.resume=force``: the restored optimizer and schedule take this config's values; returns
    the new scheduler, positioned at the restored step."""
    from .optimizer import build_optimizer
    from .schedule import build_scheduler, lr_factor

    fresh = build_optimizer(task, config)
    for group, new in zip(optimizer.param_groups, fresh.param_groups, strict=True):
        group.update({k: v for k, v in new.items() if k not in ("params", "initial_lr")})
        group["initial_lr"] = new["lr"]
    last = scheduler.last_epoch
    scheduler = build_scheduler(optimizer, config.train.steps, config.schedule)
    scheduler.last_epoch = last
    factor = lr_factor(last, config.train.steps, config.schedule)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return scheduler
