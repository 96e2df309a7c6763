"""Training checkpoints: where a run keeps them, and the random state that makes resume exact.

Reading, writing and loading a backbone from a checkpoint live in :mod:`facelearn.models.checkpoint`
(recognition and serving use them without importing training code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import step_checkpoints


def remove_temporary_files(run_dir: str | Path) -> None:
    """Temporary checkpoint files a killed writer left behind (call it while holding the run's lock)."""
    for path in [*Path(run_dir).glob(".*.pt.*.tmp"), *Path(run_dir).glob("*.pt.tmp")]:
        path.unlink(missing_ok=True)


def step_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"step_{step:07d}.pt"


def prune(run_dir: str | Path, keep_last: int) -> None:
    for path in step_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        path.unlink()


def rng_state() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
