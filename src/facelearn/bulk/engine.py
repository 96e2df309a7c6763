"""Two engines behind one option: ``local`` (a process pool, no new dependency) and ``ray`` (Ray Data).

Both run a :class:`facelearn.bulk.stages.Pipeline` on fixed batches of photos and hand each batch's
results back to the driver as they finish, in any order; the driver shows the progress (so it works
on a cluster too) and writes what is written centrally (a journal, a teacher file, the report).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from tqdm import tqdm

from ..errors import ConfigError
from .stages import Item, Pipeline, batches

ENGINES = ("local", "ray")


@dataclass
class EngineOptions:
    engine: str = "local"
    batch_size: int = 16  # photos per batch, and per output shard of facelearn embed
    workers: int = 2  # local: processes (0: in this process)
    address: str | None = None  # ray: join this cluster; None: start a local Ray and stop it at the end
    actors: int | None = None  # ray: None = as many as the nodes hold at --cpus-per-actor / --gpus-per-actor
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    object_store_memory: int | None = None  # ray, local start: bytes of the object store (None: Ray's default)
    connect_timeout: float = 10.0  # ray: seconds to reach --address before giving up

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; valid: {', '.join(ENGINES)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.cpus_per_actor <= 0 and self.gpus_per_actor <= 0:
            raise ConfigError("an actor needs a CPU or a GPU: --cpus-per-actor or --gpus-per-actor above 0")
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--actors must be at least 1, got {self.actors}")


class Engine(ABC):
    def __init__(self, options: EngineOptions):
        self.options = options

    def run(
        self, pipeline: Pipeline, items: list[Item], description: str
    ) -> Iterator[tuple[list[dict], dict[str, float]]]:
        """``(results, stage seconds)`` of every batch of ``items``, as the batches finish."""
        chunks = batches(items, self.options.batch_size)
        if not chunks:
            return
        with tqdm(total=len(items), desc=description, unit="img", mininterval=2) as progress:
            for results, seconds in self.run_batches(pipeline, chunks):
                progress.update(len(results))
                yield results, seconds

    @abstractmethod
    def run_batches(
        self, pipeline: Pipeline, chunks: list[list[Item]]
    ) -> Iterator[tuple[list[dict], dict[str, float]]]: ...

    def describe(self) -> dict:
        """What the report records about the engine."""
        return {"engine": self.options.engine, "batch_size": self.options.batch_size}


def build_engine(options: EngineOptions) -> Engine:
    if options.engine == "ray":
        from .ray_engine import RayEngine

        return RayEngine(options)
    from .local import LocalEngine

    return LocalEngine(options)
