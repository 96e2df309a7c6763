"""Sub-center ArcFace's cleaning step: list the training images that lie far from their class.

A Sub-center ArcFace model (``head.name: subcenter_arcface``) lets noisy images of a class gather at
non-dominant sub-centres. :func:`find_noisy_images` embeds every image of the identity folders the
model was trained on and lists those more than ``threshold_degrees`` (75°, the paper's) from their
class's dominant sub-centre; ``facelearn clean`` writes them to a file that ``data.exclude`` reads,
so the next run (plain ArcFace, as the paper does) trains on the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import HeadConfig, from_dict
from ..data.folder import ImageFolder
from ..data.images import ImageError, fit_size
from ..heads import build_head, find_outliers
from ..models.checkpoint import CheckpointError, backbone_from_checkpoint, load_checkpoint, load_head_weights
from .embed import embed_images


def find_noisy_images(checkpoint: str | Path, root: str | Path, threshold_degrees: float = 75.0) -> dict:
    """{"outliers": relative paths, "unreadable": relative paths, "images": count} for ``root``."""
    saved = load_checkpoint(checkpoint)
    head_config = from_dict(HeadConfig, saved.get("config", {}).get("head", {}))
    if head_config.name != "subcenter_arcface":
        raise CheckpointError(
            f"{checkpoint} was trained with head {head_config.name!r}: cleaning needs subcenter_arcface"
        )
    backbone, image_size = backbone_from_checkpoint(checkpoint)
    head_config.partial_fc, head_config.sample_rate = False, 1.0
    source = ImageFolder(root)
    head = build_head(head_config, backbone.embedding_size, source.num_classes, strict=False)
    load_head_weights(head, checkpoint)  # fails, naming both, if the class count differs
    unreadable: list[int] = []

    def load(index: int) -> np.ndarray:
        try:
            return fit_size(source.image(index), image_size)
        except ImageError:
            unreadable.append(index)
            return np.zeros((image_size, image_size, 3), dtype=np.uint8)

    embeddings, _, _ = embed_images(backbone, load, len(source))
    labels = torch.tensor(source.labels)
    outliers = find_outliers(head, torch.from_numpy(embeddings), labels, threshold_degrees).numpy()
    outliers[unreadable] = False

    def relative(index: int) -> str:
        return source.paths[index].relative_to(source.root).as_posix()

    return {
        "images": len(source),
        "outliers": [relative(i) for i in np.flatnonzero(outliers)],
        "unreadable": [relative(i) for i in unreadable],
    }
