"""DDL batches: per step and group (easy teacher first, then each hard student), b single images of
b distinct identities and b positive pairs — 3b images a group, 6b for one student.

Positive pairs are drawn on the fly (two different images of one identity) or from a prepared
list (``ddl.pairs_list``). Groups are defined in two ways (``ddl`` config): a student with
``degrade`` sees hard views made from the easy images on the fly (for example 4× down-sampled); a
student without it takes the images that the metadata CSV (``path,group``) assigns to its name,
the teacher taking ``easy``.

Layout of a batch: group-major, each group ``[singles (b) | first of pairs (b) | second (b)]``.
Like the classification sampler, batch n is a pure function of (seed, n), so resuming replays it.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import DDLConfig, DegradeConfig
from ..errors import DataError
from .loader import read_or_skip, seeded_loader, stack_images
from .transforms import TrainTransform

log = logging.getLogger(__name__)


class ImageGroup:
    """The images of one group, by identity, and the degradation that makes its views."""

    def __init__(self, name: str, indices: list[int], labels: list[int], degrade: DegradeConfig | None):
        self.name, self.degrade = name, degrade
        self.listed_pairs: list[tuple[int, int]] = []  # from ddl.pairs_list; empty: pairs drawn on the fly
        self.by_identity: dict[int, list[int]] = defaultdict(list)
        for index in indices:
            self.by_identity[labels[index]].append(index)
        self.identities = sorted(self.by_identity)
        self.pair_identities = [i for i in self.identities if len(self.by_identity[i]) >= 2]

    def check(self, b: int) -> None:
        if len(self.identities) < b or not (self.pair_identities or self.listed_pairs):
            raise DataError(
                f"DDL group {self.name!r} has {len(self.identities)} identities ({len(self.pair_identities)} with "
                f"two or more images): it needs at least ddl.pairs={b} identities and one with two images"
            )


def read_metadata(path: str | Path, source) -> dict[str, list[int]]:
    """Group name → source indices, from a CSV of ``path,group`` rows (paths relative to the data root)."""
    if not hasattr(source, "paths"):
        raise DataError("ddl.metadata needs an image-folder dataset (data.kind: folder)")
    index_of = {str(p.relative_to(source.root)): i for i, p in enumerate(source.paths)}
    groups: dict[str, list[int]] = defaultdict(list)
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if row.get("path") is None or row.get("group") is None:
                raise DataError(f"{path}: expected the columns path,group")
            if row["path"] not in index_of:
                raise DataError(f"{path}:{line}: {row['path']} is not an image of {source.root}")
            groups[row["group"]].append(index_of[row["path"]])
    return groups


def read_pairs_list(path: str | Path, source, groups: list[ImageGroup]) -> None:
    """Attach the positive pairs of a CSV ``group,first,second`` (paths relative to the data root)."""
    if not hasattr(source, "paths"):
        raise DataError("ddl.pairs_list needs an image-folder dataset (data.kind: folder)")
    index_of = {str(p.relative_to(source.root)): i for i, p in enumerate(source.paths)}
    by_name = {group.name: group for group in groups}
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if row.get("group") not in by_name:
                raise DataError(f"{path}:{line}: group {row.get('group')!r} is not one of {', '.join(by_name)}")
            missing = [row[k] for k in ("first", "second") if row.get(k) not in index_of]
            if missing:
                raise DataError(f"{path}:{line}: {missing[0]} is not an image of {source.root}")
            first, second = index_of[row["first"]], index_of[row["second"]]
            if source.label(first) != source.label(second):
                raise DataError(f"{path}:{line}: {row['first']} and {row['second']} are different people")
            by_name[row["group"]].listed_pairs.append((first, second))


def build_groups(source, config: DDLConfig) -> list[ImageGroup]:
    """[teacher (easy), student 1, …]; checked against ``config.pairs`` before training."""
    labels = [source.label(i) for i in range(len(source))]
    listed = read_metadata(config.metadata, source) if config.metadata else None
    if listed is not None and "easy" not in listed:
        raise DataError(f"{config.metadata}: no image is in group 'easy' (the teacher)")
    everything = list(range(len(source)))
    groups = [ImageGroup("easy", listed["easy"] if listed else everything, labels, None)]
    for student in config.students:
        if student.degrade is not None:
            groups.append(ImageGroup(student.name, listed["easy"] if listed else everything, labels, student.degrade))
        elif listed is None or student.name not in listed:
            raise DataError(
                f"DDL student {student.name!r} has no degrade and no rows in ddl.metadata: give one of them"
            )
        else:
            groups.append(ImageGroup(student.name, listed[student.name], labels, None))
    if len(groups) < 2:
        raise DataError("DDL needs at least one student group (ddl.students)")
    if config.pairs_list:
        read_pairs_list(config.pairs_list, source, groups)
    for group in groups:
        group.check(config.pairs)
    return groups


class DDLBatchSampler:
    """Infinite DDL batches of keys (group, image index, batch number, slot)."""

    def __init__(self, groups: list[ImageGroup], b: int, seed: int, start_batch: int = 0, rank: int = 0):
        """Under several processes each ``rank`` draws its own batches (rank 0 those of one process)."""
        self.groups, self.b, self.seed, self.start_batch, self.rank = groups, b, seed, start_batch, rank

    def batch(self, number: int) -> list[tuple[int, int, int, int]]:
        rng = np.random.default_rng([self.seed, 7, number, *([self.rank] if self.rank else [])])
        keys = []
        for g, group in enumerate(self.groups):
            singles = [rng.choice(group.by_identity[i]) for i in rng.choice(group.identities, self.b, replace=False)]
            if group.listed_pairs:
                rows = rng.choice(len(group.listed_pairs), self.b, replace=len(group.listed_pairs) < self.b)
                pairs = [group.listed_pairs[r] for r in rows]
            else:
                pair_ids = rng.choice(group.pair_identities, self.b, replace=len(group.pair_identities) < self.b)
                pairs = [rng.choice(group.by_identity[i], 2, replace=False) for i in pair_ids]
            for index in [*singles, *(p[0] for p in pairs), *(p[1] for p in pairs)]:
                keys.append((g, int(index), number, len(keys)))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        number = self.start_batch
        while True:
            yield self.batch(number)
            number += 1


class DDLDataset(torch.utils.data.Dataset):
    def __init__(self, source, groups: list[ImageGroup], image_size: int, seed: int, flip: bool, strict: bool):
        self.source, self.image_size, self.seed, self.strict = source, image_size, seed, strict
        self.transforms = [TrainTransform(flip, group.degrade) for group in groups]

    def __getitem__(self, key: tuple[int, int, int, int]):
        group, index, number, slot = key
        image = read_or_skip(self.source, index, self.image_size, self.strict)  # None drops the whole DDL batch
        if image is None:
            return None
        rng = np.random.default_rng([self.seed, number, slot])
        return self.transforms[group](image, rng), self.source.label(index)


def collate_whole(samples) -> dict:
    """Stack a DDL batch; one unreadable image drops the whole batch (its layout would break)."""
    if any(s is None for s in samples):
        return {"images": torch.empty(0), "labels": torch.empty(0, dtype=torch.long), "skipped": len(samples)}
    images = stack_images([s[0] for s in samples])
    return {"images": images, "labels": torch.tensor([s[1] for s in samples]), "skipped": 0}


def build_ddl_loader(
    source, groups: list[ImageGroup], config: DDLConfig, image_size: int, seed: int, start_batch: int, **options
) -> DataLoader:
    dataset = DDLDataset(source, groups, image_size, seed, options.get("flip", True), options.get("strict", False))
    workers = options.get("num_workers", 0)
    sampler = DDLBatchSampler(groups, config.pairs, seed, start_batch, options.get("rank", 0))
    return seeded_loader(dataset, sampler, collate_whole, workers, seed, options.get("pin_memory", False))
