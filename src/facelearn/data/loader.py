"""Training data: seeded per-sample augmentation, resumable batch order, skipped bad images.

The batch sampler is an infinite, deterministic function of (seed, batch number): resuming at
batch b replays exactly the batches an uninterrupted run would have seen. Each sample's
augmentation randomness comes from ``rng([seed, epoch, index])``, independent of workers.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from ..config import DataConfig
from ..errors import DataError
from .folder import ImageFolder
from .identity_sampler import IdentityBatchSampler
from .images import ImageError, fit_size
from .recordio import RecordDataset
from .synthetic import SyntheticFaces
from .transforms import TrainTransform
from .unlabelled import WithUnlabelled

log = logging.getLogger(__name__)


def build_source(config: DataConfig, seed: int):
    """The image source named by ``data.kind``: anything with len, num_classes, label, image."""
    if config.kind == "synthetic":
        return SyntheticFaces(config.num_identities, config.images_per_identity, config.image_size, seed)
    if config.root is None:
        raise DataError(f"data.kind={config.kind} needs data.root (the dataset directory)")
    source = ImageFolder(config.root, config.exclude) if config.kind == "folder" else RecordDataset(config.root)
    if config.unlabelled:
        if config.kind != "folder":
            raise DataError("data.unlabelled adds a folder of faces to folder data: set data.kind=folder")
        return WithUnlabelled(source, ImageFolder(config.unlabelled))
    if source.num_classes < 2:
        raise DataError(
            f"{config.root} holds {source.num_classes} identity: a classifier needs at least two "
            "(one identity trains to a loss of 0 and learns nothing)"
        )
    return source


def read_or_skip(source, index: int, image_size: int, strict: bool) -> np.ndarray | None:
    """Image ``index`` of ``source`` at ``image_size``; an unreadable one is logged and None (raised if ``strict``)."""
    try:
        return fit_size(source.image(index), image_size)
    except ImageError as error:
        if strict:
            raise
        log.warning("skipping unreadable image: %s", error)
        return None


class TrainingDataset(torch.utils.data.Dataset):
    """Keys are (epoch, index); an unreadable image returns None (skipped) unless ``strict``."""

    def __init__(self, source, transform: TrainTransform, image_size: int, seed: int, strict: bool = False):
        self.source, self.transform = source, transform
        self.image_size, self.seed, self.strict = image_size, seed, strict

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        image = read_or_skip(self.source, index, self.image_size, self.strict)
        if image is None:
            return None
        rng = np.random.default_rng([self.seed, epoch, index])
        return self.transform(image, rng), self.source.label(index), index


class SeededBatchSampler:
    """Infinite batches of (epoch, index) keys; epoch e is permutation(rng([seed, e])).

    With ``world_size`` > 1 each rank takes its slice of the global batch of
    ``batch_size × world_size`` samples.
    """

    def __init__(
        self, length: int, batch_size: int, seed: int, start_batch: int = 0, rank: int = 0, world_size: int = 1
    ):
        global_batch = batch_size * world_size
        if length < global_batch:
            raise DataError(f"the dataset has {length} images, fewer than one global batch of {global_batch}")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self.batches_per_epoch = length // global_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batch = self.start_batch
        while True:
            epoch, position = divmod(batch, self.batches_per_epoch)
            order = np.random.default_rng([self.seed, 6, epoch]).permutation(self.length)
            start = (position * self.world_size + self.rank) * self.batch_size
            yield [(epoch, int(i)) for i in order[start : start + self.batch_size]]
            batch += 1


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """One batch tensor; in a data worker it is stacked straight into shared memory (torch's default collate),
    so passing it to the training process copies nothing."""
    return default_collate(images) if images else torch.empty(0)


def collate(samples) -> dict:
    """Stack images and labels; count the samples that came back None (unreadable)."""
    kept = [s for s in samples if s is not None]
    images = stack_images([s[0] for s in kept])
    labels = torch.tensor([s[1] for s in kept], dtype=torch.long)
    indices = torch.tensor([s[2] for s in kept], dtype=torch.long)  # which images: for precomputed teachers
    return {"images": images, "labels": labels, "indices": indices, "skipped": len(samples) - len(kept)}


def build_train_loader(
    dataset: TrainingDataset,
    batch_size: int,
    seed: int,
    start_batch: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    samples_per_identity: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """Random batches, or with ``samples_per_identity`` = K batches of batch_size/K identities × K;
    ``pin_memory`` for a CUDA device (the copy to it then overlaps the step)."""
    if samples_per_identity:
        labels = [dataset.source.label(i) for i in range(len(dataset))]
        sampler = IdentityBatchSampler(labels, batch_size, samples_per_identity, seed, start_batch, rank, world_size)
    else:
        sampler = SeededBatchSampler(len(dataset), batch_size, seed, start_batch, rank, world_size)
    return seeded_loader(dataset, sampler, collate, num_workers, seed, pin_memory)


def leave_stop_signals_to_the_main_process(_worker: int) -> None:
    """In each data worker: ignore SIGTERM and SIGINT. ``timeout``, SLURM preemption and Ctrl-C in a
    terminal signal the whole process group; a worker killed by it would take the main process down
    mid-step (torch raises on a dead worker), before it could finish the step and checkpoint. The
    workers still end with the main process (torch shuts them down, or they see their parent gone)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def seeded_loader(
    dataset, batch_sampler, collate_fn, num_workers: int, seed: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader that draws its workers' base seed from its own generator, never from the global
    one: creating its iterator must not move the RNG state that a resumed run has just restored.
    Its workers leave stop signals to the main process (:func:`leave_stop_signals_to_the_main_process`)."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=leave_stop_signals_to_the_main_process if num_workers > 0 else None,
    )
