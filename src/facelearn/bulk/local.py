"""``--engine local``: a pool of worker processes on this machine (the default; no dependency beyond facelearn).

Each process loads the pipeline's end once (its initializer) and runs batches with one thread; with
``workers=0`` the batches run in this process on every core. At most ``4 × workers`` batches are in
flight, so memory stays bounded however many photos there are. A worker that dies (or fails to
start: a bad weights file) stops the run with the reason instead of hanging.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import FacelearnError
from .engine import Engine
from .stages import Item, Pipeline

IN_FLIGHT_PER_WORKER = 4

_pipeline: Pipeline | None = None  # one per worker process, loaded by the initializer


def _start(pipeline: Pipeline, threads: int) -> None:
    global _pipeline
    pipeline.load(threads)
    _pipeline = pipeline


def _run(chunk: list[Item]) -> tuple[list[dict], dict[str, float]]:
    return _pipeline(chunk)


class LocalEngine(Engine):
    def run_batches(
        self, pipeline: Pipeline, chunks: list[list[Item]]
    ) -> Iterator[tuple[list[dict], dict[str, float]]]:
        workers = self.options.workers
        if workers <= 0:
            pipeline.load(threads=os.cpu_count() or 1)
            for chunk in chunks:
                yield pipeline(chunk)
            return
        context = multiprocessing.get_context("spawn")  # no fork after torch has started threads
        # unlike multiprocessing.Pool, the executor does not respawn a worker whose start failed: it breaks
        with ProcessPoolExecutor(workers, context, initializer=_start, initargs=(pipeline, 1)) as pool:
            waiting, running = iter(chunks), set()
            try:
                while True:
                    while len(running) < IN_FLIGHT_PER_WORKER * workers:
                        chunk = next(waiting, None)
                        if chunk is None:
                            break
                        running.add(pool.submit(_run, chunk))
                    if not running:
                        return
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        yield future.result()
            except BrokenProcessPool as error:
                raise FacelearnError(f"a worker process failed ({error}); nothing more was done") from None
            finally:
                for future in running:
                    future.cancel()

    def describe(self) -> dict:
        return {**super().describe(), "workers": self.options.workers}
