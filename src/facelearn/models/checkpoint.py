"""Checkpoints: written atomically, read without unrestricted pickle, and a backbone built from one.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over
the target (:func:`facelearn.io.write_atomic`), so a crash or a full disk leaves either the old
file or the new one, never half of one, and no temporary file. Loading
uses ``torch.load(weights_only=True)``: tensors and plain containers only, no code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from ..config import ModelConfig, from_dict
from ..errors import FacelearnError
from ..io import write_atomic
from . import build_backbone
from .state_dicts import plain_model_config

FORMAT = "facelearn-checkpoint-1"
_STEP_FILE = re.compile(r"step_(\d+)\.pt$")


class CheckpointError(FacelearnError):
    """A checkpoint that cannot be used (truncated, corrupt, or for another model)."""


def save_atomic(state: dict, path: str | Path) -> None:
    """Write ``state`` to a temporary file beside ``path`` and rename it (removed if the write fails)."""
    try:
        write_atomic(path, lambda handle: torch.save(state, handle))
    except RuntimeError as error:
        # torch's zip writer turns a full disk into "unexpected pos …": report the disk's error
        if isinstance(error.__context__, OSError):
            cause = error.__context__
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({error})") from error
        raise CheckpointError(
            f"{path} holds pickled Python objects, not only weights; facelearn never runs pickled code. If you "
            "trust its source, load it yourself and save the weights: torch.save(model.state_dict(), 'weights.pt')"
        ) from None
    except Exception as error:
        others = [p.name for p in step_checkpoints(path.parent) if p != path]
        hint = f"; other checkpoints in {path.parent}: {', '.join(others)}" if others else ""
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error}). "
            f"Delete it to resume from an earlier one{hint}"
        ) from error


def step_checkpoints(run_dir: str | Path) -> list[Path]:
    """``step_*.pt`` files in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _STEP_FILE.search(p.name))]
    return [p for _, p in sorted(found)]


def backbone_state(checkpoint: dict) -> dict:
    """Backbone weights from a facelearn checkpoint, or the dict itself if it is already a plain
    backbone state_dict (an insightface arcface_torch ``model.pt``)."""
    if checkpoint.get("format") == FORMAT:
        prefix = "backbone."
        return {k[len(prefix) :]: v for k, v in checkpoint["task"].items() if k.startswith(prefix)}
    return checkpoint


def load_backbone_state(backbone: torch.nn.Module, checkpoint: dict, source: str | Path) -> None:
    """Put a (read) checkpoint's backbone weights into ``backbone``; ``source`` names the file in errors."""
    state = backbone_state(checkpoint)
    own = backbone.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        key, saved, expected = wrong[0]
        raise CheckpointError(
            f"{source} does not match this {type(backbone).__name__}: {len(wrong)} tensors differ in shape, e.g. "
            f"{key} is {saved} in the file and {expected} here (check the architecture named — --architecture or "
            "model.name — and its width, blocks and embedding size)"
        )
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match {type(backbone).__name__}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]} (check model.name and model.embedding_size)"
        )


def load_backbone_weights(backbone: torch.nn.Module, path: str | Path) -> None:
    """:func:`load_backbone_state` from a file (``train.init_backbone``)."""
    load_backbone_state(backbone, load_checkpoint(path), path)


def load_head_weights(head: torch.nn.Module, path: str | Path) -> None:
    """The margin head of a facelearn checkpoint (fine-tuning on the same identities)."""
    checkpoint = load_checkpoint(path)
    if checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a plain backbone state_dict: it has no head (set train.init_head=false)")
    state = {k[len("head.") :]: v for k, v in checkpoint["task"].items() if k.startswith("head.")}
    try:
        head.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"the head of {path} does not fit this head (class count or kind): {error}") from None


def backbone_from_state(
    checkpoint: dict, source: str | Path, model_name: str | None = None, embedding_size: int | None = None
) -> tuple[torch.nn.Module, int]:
    """(backbone with a read checkpoint's weights, in eval mode; its input size).

    A facelearn checkpoint names its architecture. A plain state_dict (arcface_torch ``model.pt``) is
    built as ``model_name`` — a facelearn backbone or an arcface_torch name (``r50``, ``mbf``) — or, with
    none, as the architecture its keys show; its embedding and input size come from its shapes
    (:mod:`facelearn.models.state_dicts`). ``backbone.model_config`` says what was built.
    """
    if checkpoint.get("format") == FORMAT:
        model_config = from_dict(ModelConfig, checkpoint["config"]["model"])
        image_size = checkpoint["config"]["data"]["image_size"]
    else:
        model_config, image_size, checkpoint = plain_model_config(checkpoint, source, model_name, embedding_size)
    backbone = build_backbone(model_config, image_size, strict=False)
    load_backbone_state(backbone, checkpoint, source)
    backbone.model_config = model_config
    return backbone.eval(), image_size


def backbone_from_checkpoint(
    path: str | Path, model_name: str | None = None, embedding_size: int | None = None
) -> tuple[torch.nn.Module, int]:
    """:func:`backbone_from_state` of the file at ``path``."""
    return backbone_from_state(load_checkpoint(path), path, model_name, embedding_size)
