"""``--engine ray``: the same pipeline on Ray Data, on this machine or a cluster (``pip install 'facelearn[ray]'``).

    facelearn embed PHOTOS OUT --model M --engine ray                       # a local Ray, started and stopped
    facelearn embed s3://b/photos s3://b/out --model M --engine ray --address HEAD:6379 --actors 40

The driver lists the photos and cuts them into fixed batches (:func:`facelearn.bulk.stages.batches`);
the dataset's rows are those batches, so no read task holds a CPU, and a row is one call of an actor
of a fixed-size pool (``ActorPoolStrategy``) that loaded the detector and the model once. Actors ask
for ``--cpus-per-actor`` CPUs (1) and ``--gpus-per-actor`` GPUs (0): the pool is sized from what the
nodes hold, and a pool that could never be placed is refused at once instead of waiting forever. A
batch's result is small (statuses; the embeddings and crops are written by the actor itself), so the
object store only carries batches of paths. Ray restarts an actor killed mid-batch and runs its batch
again: the output a batch writes has a name of its own (its photos' keys), so a rerun replaces
instead of duplicating. ``--address`` that does not answer within ``connect_timeout`` is an error.
facelearn must be importable on every node (the same install as the driver).
"""

from __future__ import annotations

import json
import logging
import pickle
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np

from ..errors import ConfigError
from .engine import Engine, EngineOptions
from .stages import Item, Pipeline

MAX_TASKS_IN_FLIGHT_PER_ACTOR = 2  # what a killed actor has to redo


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'facelearn[ray]'") from None
    return ray


def reach(address: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds, in one line, when nothing answers at ``address`` (Ray would retry for
    minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        host, port = hostport, "6379"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({error.strerror or error}, within {timeout:g} s); "
            "start one with `ray start --head`, or leave --address out to run a local Ray"
        ) from None


@contextmanager
def ray_session(options: EngineOptions) -> Iterator[None]:
    """Join ``--address``, or start a local Ray and stop it afterwards; a session already open (a notebook, the
    tests) is used as it is and left open."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if options.address:
        reach(options.address, options.connect_timeout)
        ray.init(address=options.address, **quiet)
    else:
        ray.init(address="local", include_dashboard=False, object_store_memory=options.object_store_memory, **quiet)
    quieter, level = logging.getLogger("ray.data"), logging.getLogger("ray.data").level
    quieter.setLevel(logging.WARNING)  # not Ray Data's own progress lines: the driver shows one bar
    try:
        yield
    finally:
        quieter.setLevel(level)
        ray.shutdown()


def pool_size(ray, options: EngineOptions) -> int:
    """Actors the alive nodes can hold at the asked resources; ``--actors`` above that is refused."""
    wanted = {"CPU": options.cpus_per_actor, "GPU": options.gpus_per_actor}
    room = 0
    for node in ray.nodes():
        if node.get("Alive"):
            held = node.get("Resources", {})
            room += min(int(held.get(name, 0) // amount + 1e-9) for name, amount in wanted.items() if amount > 0)
    asked = ", ".join(f"{amount:g} {name}" for name, amount in wanted.items() if amount > 0)
    if room == 0:
        raise ConfigError(
            f"no node of the Ray cluster holds one actor's {asked}: lower --cpus-per-actor/--gpus-per-actor"
        )
    if options.actors is not None and options.actors > room:
        raise ConfigError(
            f"--actors {options.actors} at {asked} each do not fit the cluster (room for {room}): they would wait "
            "forever; lower --actors or the resources per actor"
        )
    return options.actors or room


class PipelineActor:
    """One actor of the pool: loads the pipeline once, then runs the batches its rows hold."""

    def __init__(self, pipeline: Pipeline, threads: int):
        pipeline.load(threads)
        self.pipeline = pipeline

    def __call__(self, rows: dict) -> dict:
        # the results go back to the driver that sent the batch, through Ray's own serialisation
        done = [pickle.dumps(self.pipeline([Item(**item) for item in json.loads(text)])) for text in rows["batch"]]
        return {"results": np.array(done, dtype=object)}


class RayEngine(Engine):
    def __init__(self, options: EngineOptions):
        super().__init__(options)
        ray = import_ray()  # fail before any work when Ray is not installed, or the cluster does not answer
        if options.address and not ray.is_initialized():
            reach(options.address, options.connect_timeout)
        self.actors = None

    def run_batches(
        self, pipeline: Pipeline, chunks: list[list[Item]]
    ) -> Iterator[tuple[list[dict], dict[str, float]]]:
        ray = import_ray()
        options = self.options
        with ray_session(options):
            self.actors = min(pool_size(ray, options), len(chunks))  # no actor without a batch to run
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # the driver shows one bar, wherever it runs
            context.print_on_execution_start = False
            rows = [{"batch": json.dumps([asdict(item) for item in chunk])} for chunk in chunks]
            # a block per batch: an actor task is one batch, so a killed actor redoes only the batches it held
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                PipelineActor,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(
                    size=self.actors, max_tasks_in_flight_per_actor=MAX_TASKS_IN_FLIGHT_PER_ACTOR
                ),
                num_cpus=options.cpus_per_actor,
                num_gpus=options.gpus_per_actor or None,
                fn_constructor_kwargs={"pipeline": pipeline, "threads": max(1, int(options.cpus_per_actor))},
            )
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for blob in batch["results"]:
                    yield pickle.loads(blob)  # noqa: S301 - what this run's own actors returned

    def describe(self) -> dict:
        options = self.options
        return {
            **super().describe(),
            "address": options.address or "local",
            "actors": self.actors,
            "cpus_per_actor": options.cpus_per_actor,
            "gpus_per_actor": options.gpus_per_actor,
        }
