"""Embedding extraction with flip test-time augmentation, and evaluation of pair sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.pairs import PairSet
from ..data.transforms import to_tensor
from .plots import plot_error_versus_reject, plot_roc, plot_score_histogram
from .quality import error_versus_reject
from .verification import VerificationResult, evaluate_pairs


def default_device() -> torch.device:
    """The first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def embedding_batches(
    backbone: torch.nn.Module,
    load,
    count: int,
    batch_size: int = 128,
    flip: bool = True,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    amp_dtype: torch.dtype | None = None,
):
    """Raw float32 embeddings of images ``load(0) … load(count-1)`` per batch: a list of one view
    (the images) or two (the images and their mirrors), on the CPU. The model is in eval mode."""
    was_training = backbone.training
    backbone.eval()
    device = torch.device(device)
    try:
        for start in range(0, count, batch_size):
            batch = torch.stack([to_tensor(load(i)) for i in range(start, min(start + batch_size, count))])
            views = []
            for view in [batch, batch.flip(3)] if flip else [batch]:
                view = view.to(device)
                if channels_last:
                    view = view.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                    views.append(backbone(view).float().cpu())
            yield views
    finally:
        backbone.train(was_training)


def embed_raw(backbone: torch.nn.Module, load, count: int, **options) -> tuple[np.ndarray, np.ndarray | None]:
    """(embeddings, embeddings of the mirrored images or None), raw (not normalised), float32."""
    images, mirrors = [], []
    for views in embedding_batches(backbone, load, count, **options):
        images.append(views[0])
        mirrors.append(views[-1])
    if not images:
        raise ValueError("no images to embed")
    flipped = options.get("flip", True)
    return torch.cat(images).numpy(), torch.cat(mirrors).numpy() if flipped else None


def embed_images(backbone: torch.nn.Module, load, count: int, **options) -> tuple[np.ndarray, float, np.ndarray]:
    """Unit embeddings of images ``load(0) … load(count-1)``, their XNorm and each image's quality.

    With ``flip``, the embeddings of the image and its mirror are summed before normalising (as
    insightface); XNorm is the mean norm of the un-normalised embeddings of both copies. The
    quality of an image is the norm of its own (un-flipped) raw embedding, MagFace's score.
    """
    fused, norms, quality = [], [], []
    for views in embedding_batches(backbone, load, count, **options):
        norms += [view.norm(dim=1) for view in views]
        quality.append(norms[-len(views)])
        fused.append(torch.nn.functional.normalize(sum(views), dim=1))
    return torch.cat(fused).numpy(), float(torch.cat(norms).mean()), torch.cat(quality).numpy()


def evaluate_pair_set(
    backbone: torch.nn.Module,
    pairs: PairSet,
    output_dir: str | Path | None = None,
    **embed_options,
) -> VerificationResult:
    """Embed a pair set, run the k-fold protocol (``pairs.folds``, ``pairs.stratify``), and (with ``output_dir``) write
    ``<name>.json``, ``<name>_scores.png`` and ``<name>_roc.png``."""
    embeddings, xnorm, quality = embed_images(backbone, pairs.load, 2 * pairs.num_pairs, **embed_options)
    result = evaluate_pairs(
        embeddings[0::2], embeddings[1::2], pairs.issame, folds=pairs.folds, stratify=pairs.stratify
    )
    result.xnorm = xnorm
    scores = np.sum(embeddings[0::2] * embeddings[1::2], 1)
    if pairs.issame.any() and (~pairs.issame).any():
        result.mean_cosine_genuine = float(scores[pairs.issame].mean())
        result.mean_cosine_impostor = float(scores[~pairs.issame].mean())
        pair_quality = np.minimum(quality[0::2], quality[1::2])
        result.error_versus_reject = error_versus_reject(scores, pairs.issame, pair_quality)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / f"{pairs.name}.json").write_text(json.dumps(result.to_dict(), indent=2))
        title = f"{pairs.name}: accuracy {100 * result.accuracy:.2f}%"
        plot_score_histogram(
            scores, pairs.issame, result.threshold_cosine, output_dir / f"{pairs.name}_scores.png", title
        )
        plot_roc({pairs.name: (scores, pairs.issame)}, output_dir / f"{pairs.name}_roc.png")
        if result.error_versus_reject:
            path = output_dir / f"{pairs.name}_error_versus_reject.png"
            plot_error_versus_reject({pairs.name: result.error_versus_reject}, path)
    return result
