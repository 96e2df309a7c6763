"""P identities × K images per batch, for losses that compare samples inside the batch
(batch-hard triplet, pair-wise Circle Loss).

Like :class:`facelearn.data.loader.SeededBatchSampler`, batch b is a pure function of (seed, b),
so a resumed run replays the same batches, and under ``world_size`` > 1 each rank takes its slice
(P identities each) of a global batch of P·world_size identities. Identities with fewer than two
images cannot give a positive pair and are left out; one with fewer than K images is sampled with
repetition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from ..errors import DataError


class IdentityBatchSampler:
    def __init__(
        self,
        labels: list[int],
        batch_size: int,
        samples_per_identity: int,
        seed: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if samples_per_identity < 2 or batch_size % samples_per_identity:
            raise DataError(
                f"train.batch_size ({batch_size}) must be a multiple of data.samples_per_identity "
                f"({samples_per_identity}), which must be at least 2"
            )
        by_identity: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_identity[label].append(index)
        self.members = [np.asarray(v) for _, v in sorted(by_identity.items()) if len(v) >= 2]
        self.identities = batch_size // samples_per_identity
        if len(self.members) < self.identities * world_size:
            raise DataError(
                f"{len(self.members)} identities have two or more images, fewer than the "
                f"{self.identities * world_size} a global batch needs: lower train.batch_size or raise "
                f"data.samples_per_identity"
            )
        self.k, self.seed, self.start_batch = samples_per_identity, seed, start_batch
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batch = self.start_batch
        while True:
            rng = np.random.default_rng([self.seed, 7, batch])
            chosen = rng.permutation(len(self.members))[: self.identities * self.world_size]
            mine = chosen[self.rank * self.identities : (self.rank + 1) * self.identities]
            keys = []
            for identity in mine:
                images = self.members[identity]
                picks = rng.choice(images, self.k, replace=len(images) < self.k)
                keys += [(batch, int(i)) for i in picks]
            yield keys
            batch += 1
