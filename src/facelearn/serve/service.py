"""What the routes share: the settings, the model and gallery (loaded in the background), the
worker pool for decoding and detection, the batcher for the model, and the metrics.

Decoding and detection run in a pool of threads, the model in its own thread behind the batcher,
gallery reads and writes in the pool: the event loop only routes requests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .batcher import EmbeddingBatcher
from .keys import KeyStore
from .metrics import Metrics
from .problems import Problem
from .uploads import ImageLimits, decode_upload

log = logging.getLogger("facelearn.serve")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class ServeSettings:
    model: str
    gallery: str
    store: str | None = None
    index: str = "exact"
    detector: str = "retinaface"
    weights: str | None = None
    backend: str = "auto"
    architecture: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    keys: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    workers: int = 2
    max_request_bytes: int = 25 * 1024 * 1024
    limits: ImageLimits = field(default_factory=ImageLimits)
    timeout_s: float = 30.0
    fmr: float = 1e-3


@dataclass
class Face:
    face: np.ndarray  # aligned, at the model's input size
    box: list[float] | None  # in the photo; None for a face sent aligned


class Service:
    def __init__(self, settings: ServeSettings, keys: KeyStore | None = None):
        self.settings = settings
        self.keys = keys or KeyStore(settings.keys)
        self.metrics = Metrics()
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="facelearn-worker")
        self.recognizer = None
        self.batcher: EmbeddingBatcher | None = None
        self.load_error: str | None = None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        from ..deploy.recognizer import Recognizer

        s = self.settings
        try:
            recognizer = await asyncio.to_thread(
                Recognizer.load, s.model, s.architecture, s.gallery, s.store, s.index, s.detector, s.weights, s.backend
            )
        except Exception as error:  # the service stays up and says why it is not ready
            self.load_error = str(error)
            log.error("facelearn serve: cannot load the model or gallery: %s", error)
            return
        self.batcher = EmbeddingBatcher(
            partial(self._embed_all, recognizer), s.max_batch, s.max_wait_ms, self.metrics.batch
        )
        await self.batcher.start()
        self.recognizer = recognizer
        log.info("facelearn serve: ready (model %s, gallery %s)", recognizer.model_id, s.gallery)

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        if self.recognizer is not None and self.recognizer.gallery is not None:
            self.recognizer.gallery.checkpoint()
            self.recognizer.gallery.close()
        self.pool.shutdown(wait=True)

    @staticmethod
    def _embed_all(recognizer, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return recognizer.embed_faces(list(faces), 64)

    def require(self):
        if self.recognizer is None:
            reason = f"the model or gallery failed to load: {self.load_error}" if self.load_error else "still loading"
            raise Problem(503, "not_ready", f"the service is not ready ({reason}); GET /v1/ready says when it is")
        return self.recognizer

    async def in_pool(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(function, *args))

    async def write(self, function, *args):
        """A gallery write in the pool that, once begun, is waited for even past the request's time limit:
        the answer says what happened (a 504 only for a write that never began, so a retry is right)."""
        state = {"begun": False, "abandoned": False}
        lock = threading.Lock()

        def run():
            with lock:
                if state["abandoned"]:
                    return None
                state["begun"] = True
            return function(*args)

        future = asyncio.get_running_loop().run_in_executor(self.pool, run)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with lock:
                state["abandoned"] = not state["begun"]
            if state["abandoned"]:
                raise
            return await future

    # ------------------------------------------------------------------ faces
    async def faces(self, data: bytes, name: str, aligned: bool) -> list[Face]:
        """Every face of an uploaded photo (aligned), or the upload itself as one aligned face."""
        recognizer = self.require()
        image = await self.in_pool(decode_upload, data, name, self.settings.limits)
        if aligned:
            return [Face(await self.in_pool(recognizer.check_aligned, image), None)]
        if recognizer.detector is None:
            raise Problem(
                422, "invalid_request", "this service has no face detector: send aligned faces (aligned=true)"
            )
        aligned_faces, found = await self.in_pool(recognizer.aligned_faces, image)
        if not aligned_faces:
            raise Problem(422, "no_face", f"{name}: no face found")
        order = np.argsort(-found.areas(), kind="stable")  # largest first, as enrollment chooses
        return [Face(aligned_faces[i], [round(float(v), 1) for v in found.boxes[i]]) for i in order]

    async def one_face(self, data: bytes, name: str, aligned: bool, single: bool) -> Face:
        faces = await self.faces(data, name, aligned)
        if single and len(faces) > 1:
            raise Problem(
                422,
                "several_faces",
                f"{name}: {len(faces)} faces found where one is required (single=false takes the largest)",
            )
        return faces[0]

    async def embed(self, faces: list[Face]) -> tuple[np.ndarray, np.ndarray]:
        return await self.batcher.embed(np.stack([f.face for f in faces]))

    def threshold(self, fmr: float | None) -> tuple[float, float]:
        from ..errors import FacelearnError

        fmr = self.settings.fmr if fmr is None else fmr
        try:
            return fmr, self.require().threshold(fmr)
        except FacelearnError as error:
            raise Problem(422, "invalid_request", str(error)) from None
