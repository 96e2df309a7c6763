"""Faces from concurrent requests gathered into one model call.

Each request hands its aligned faces to :meth:`EmbeddingBatcher.embed` and awaits its rows. One
task takes every request that queued while the model was busy (up to ``max_batch`` faces), waits
at most ``max_wait_ms`` more for others, runs the model once on all of them in the model's own
thread (the event loop never blocks on it), and hands each request its rows. Batches thus form by
themselves under load; ``max_wait_ms=0`` never delays a lone request. ``max_batch=1`` turns
batching off: one model call per request, in the same thread, so the two compare like for like.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class EmbeddingBatcher:
    def __init__(
        self,
        embed: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self.model_call, self.max_batch, self.max_wait = embed, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch or (lambda size: None)
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="facelearn-model")
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        self.model_thread.shutdown(wait=True)

    async def embed(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, norms) of an (N, H, W, 3) uint8 batch of aligned faces."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((faces, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.queue.get()]
            count = len(waiting[0][0])
            while count < self.max_batch and not self.queue.empty():  # all that queued while the model ran
                waiting.append(self.queue.get_nowait())
                count += len(waiting[-1][0])
            deadline = time.monotonic() + self.max_wait
            while count < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                waiting.append(item)
                count += len(item[0])
            live = [(faces, future) for faces, future in waiting if not future.cancelled()]
            if not live:
                continue
            batch = np.concatenate([faces for faces, _ in live])
            self.on_batch(len(batch))
            try:
                embeddings, norms = await loop.run_in_executor(self.model_thread, self.model_call, batch)
            except Exception as error:  # the model failed: every waiting request gets the error
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for faces, future in live:
                end = start + len(faces)
                if not future.done():
                    future.set_result((embeddings[start:end], norms[start:end]))
                start = end
