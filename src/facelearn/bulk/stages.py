"""The stages every bulk command shares: read and decode a photo, time each stage, run an end on a batch.

    photos ─▶ read (bytes, size limit) ─▶ decode (pixel limit) ─▶ End: detect → align → embed | crop | teacher
                                                                   └──▶ write (a Parquet shard, crop files)

An :class:`End` is what a command does with decoded photos: :class:`facelearn.bulk.embed.FaceEmbeddings`,
:class:`facelearn.bulk.prepare.AlignedCrops`, :class:`facelearn.bulk.teacher.TeacherAnswers`. Its
``prepare()`` runs once in the driver (load and check the weights: a bad file is one error before any
worker starts), its ``load()`` once per worker (a process of the local engine, an actor of the Ray
engine), then it is called on batches. The engines only move batches of :class:`Item` in and
results out, so ``--engine local`` and ``--engine ray`` compute the same thing by the same code.

Every photo gets one result with its status: ``ok``, ``no_face``, ``missing``, ``unreadable`` or
``too_large`` (and a reason): none is dropped silently.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..data.images import ImageError, ImageTooLarge, decode_image
from .sources import PhotoError, read_photo

STATUSES = ("ok", "no_face", "missing", "unreadable", "too_large")
FAILED = ("missing", "unreadable", "too_large")
MAX_BYTES = int(os.environ.get("FACELEARN_MAX_BYTES", 64 * 2**20))  # a photo file above this is too_large
STAGES = ("decode", "detect", "align", "embed", "write")


@dataclass
class Item:
    """One photo to process: its key, where to read it, its subject and (prepare) where its crop goes."""

    key: str
    path: str
    subject: str = ""
    destination: str | None = None


@dataclass
class Decoded:
    item: Item
    image: np.ndarray | None
    status: str = "ok"
    reason: str | None = None

    def result(self, **fields) -> dict:
        return {"key": self.item.key, "status": self.status, "reason": self.reason, "faces": 0, **fields}


class Timer:
    """Seconds spent in each stage over a batch (the benchmark's stage shares)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def decode(item: Item, max_bytes: int = MAX_BYTES) -> Decoded:
    try:
        return Decoded(item, decode_image(read_photo(item.path, max_bytes), item.path))
    except PhotoError as error:
        return Decoded(item, None, error.status, str(error))
    except ImageTooLarge as error:
        return Decoded(item, None, "too_large", str(error))
    except ImageError as error:
        return Decoded(item, None, "unreadable", str(error))
    except OSError as error:  # a permission, an I/O error: this photo, not the run
        return Decoded(item, None, "unreadable", f"{item.path}: {error.strerror or error}")


def failure(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


class End(ABC):
    """The last stages of the pipeline; subclasses hold only picklable options until :meth:`load`."""

    def prepare(self) -> dict:
        """Once, in the driver, before any worker: load and check what the workers will load; returns
        what identifies the work (model id, teacher) for the output."""
        return {}

    @abstractmethod
    def load(self) -> None:
        """Once per worker: detector, model, teacher."""

    @abstractmethod
    def __call__(self, photos: list[Decoded], timer: Timer) -> list[dict]:
        """One result per photo, in order: ``key``, ``status``, ``reason``, ``faces`` and the end's own fields."""


class Pipeline:
    """Decode a batch, then run the end on it: what one worker does with one batch."""

    def __init__(self, end: End, max_bytes: int = MAX_BYTES):
        self.end, self.max_bytes = end, max_bytes

    def load(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))  # the workers are the parallelism
        self.end.load()

    def __call__(self, items: list[Item]) -> tuple[list[dict], dict[str, float]]:
        """The batch's results, and the seconds of each stage plus ``cpu``: the worker's CPU time for the batch
        (on a shared machine the wall time of a stage also counts the waits for a core)."""
        timer, cpu = Timer(), time.process_time()
        with timer("decode"):
            decoded = [decode(item, self.max_bytes) for item in items]
        results = self.end(decoded, timer)
        return results, {**timer.seconds, "cpu": time.process_time() - cpu}


def batches(items: list[Item], size: int) -> list[list[Item]]:
    """Fixed batches in listed order: a batch (and its output shard) is the same whichever engine runs it,
    and a retried batch holds the same photos."""
    size = max(1, size)
    return [items[start : start + size] for start in range(0, len(items), size)]
