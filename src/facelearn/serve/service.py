"""What the routes share: the settings, the model and gallery (loaded in the background: /v1/ready is 503
until they are; a load that fails stops ``facelearn serve`` with its reason), the
worker pool for decoding and detection, the batcher for the model, and the metrics.

Decoding and detection run in a pool of threads, the model in its own thread behind the batcher,
gallery reads and writes in the pool: the event loop only routes requests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..deploy.answers import face_fields
from ..deploy.audit import AuditLog, default_audit_path
from ..deploy.quality import QualityGate, refusal_message
from ..deploy.subject_ids import lookup_id
from ..errors import describe_os_error
from .batcher import EmbeddingBatcher
from .browsers import BrowserPolicy
from .keys import KeyStore
from .metrics import Metrics
from .problems import Problem
from .settings import ServeSettings
from .uploads import decode_upload

log = logging.getLogger("facelearn.serve")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MAX_ALIGNED_ASPECT, MIN_ALIGNED_SIDE = 1.25, 16


def check_aligned_shape(image: np.ndarray, name: str, size: int) -> None:
    """An aligned face is square (it is resized to the model's size): a 1×5000 strip is not a face."""
    height, width = image.shape[:2]
    if max(height, width) > MAX_ALIGNED_ASPECT * min(height, width) or min(height, width) < MIN_ALIGNED_SIDE:
        raise Problem(
            422,
            "invalid_request",
            f"{name}: an aligned face is a square image (the model's is {size}×{size}), got {width}×{height}",
        )


@dataclass
class Face:
    face: np.ndarray  # aligned, at the model's input size
    fields: dict  # box, landmarks, detection score, quality (recognizer.face_fields); None each when sent aligned
    landmarks: np.ndarray | None = None  # five points in the photo (for the face's quality)
    photo: np.ndarray | None = None

    @property
    def box(self) -> list[float] | None:
        return self.fields["box"]


class Service:
    def __init__(self, settings: ServeSettings, keys: KeyStore | None = None, on_load_error=None):
        """``on_load_error(error)``: called when the model or gallery cannot be loaded."""
        self.settings, self.on_load_error, self.loading = settings, on_load_error, None
        self.keys = keys or KeyStore(settings.keys, must_exist=True)
        self.browsers = BrowserPolicy(settings.host, settings.allowed_hosts, settings.allowed_origins)
        self.audit = AuditLog(settings.audit_log or default_audit_path(settings.gallery))
        self.metrics = Metrics()
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="facelearn-worker")
        self.recognizer = None
        self.batcher: EmbeddingBatcher | None = None
        self.load_error: str | None = None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        """Begin loading the model and gallery in the background: the server answers at once, ``/v1/ready``
        503 until the load is done. A load that fails calls ``on_load_error`` (``facelearn serve`` stops
        and exits non-zero with the reason)."""
        self.loading = asyncio.create_task(self.load())

    async def load(self) -> None:
        from ..deploy.gallery_files import check_gallery_writable
        from ..deploy.recognizer import Recognizer

        s = self.settings
        try:
            await asyncio.to_thread(check_gallery_writable, s.gallery)  # else ready, then every write a 500
            gate = QualityGate(s.min_quality, s.min_eye_distance)
            recognizer = await asyncio.to_thread(
                partial(
                    Recognizer.load,
                    s.model, s.architecture, s.gallery, s.store, s.index, s.detector, s.weights, s.backend,
                    threshold=s.threshold,
                    quality=s.quality,
                    gate=gate,
                )
            )  # fmt: skip
            self.batcher = EmbeddingBatcher(
                partial(self._embed_all, recognizer), s.max_batch, s.max_wait_ms, self.metrics.batch
            )
            await self.batcher.start()
            recognizer.detect_in_parallel(s.workers)  # a detector for each worker thread: photos in parallel
        except Exception as error:  # the reason goes to the log and the operator, never to a caller
            self.load_error = describe_os_error(error) if isinstance(error, OSError) else str(error)
            log.error("facelearn serve: cannot load the model or gallery: %s", self.load_error)
            if self.on_load_error is not None:
                self.on_load_error(error)
            return
        self.recognizer = recognizer
        log.info("facelearn serve: ready (model %s, gallery %s)", recognizer.model_id, s.gallery)

    async def stop(self) -> None:
        if self.loading is not None and not self.loading.done():
            self.loading.cancel()  # a load still under way: its thread finishes on its own, unused
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
        if self.recognizer is None:  # the reason (it names files) goes to the server log, never to a caller
            reason = "still loading"
            if self.load_error:
                reason = "the model or gallery failed to load; the server log says why"
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
            check_aligned_shape(image, name, recognizer.input_size)
            return [Face(await self.in_pool(recognizer.check_aligned, image), face_fields(None))]
        if recognizer.detector is None:
            raise Problem(
                422, "invalid_request", "this service has no face detector: send aligned faces (aligned=true)"
            )
        aligned_faces, found = await self.in_pool(recognizer.aligned_faces, image)
        if not aligned_faces:  # as NoFaceFound in Python: a question about a photo without a face is an error
            raise Problem(422, "no_face", f"{name}: no face found")
        order = np.argsort(-found.areas(), kind="stable")  # largest first, as enrollment chooses
        return [Face(aligned_faces[i], face_fields(found, i), found.landmarks[i], image) for i in order]

    async def one_face(self, data: bytes, name: str, aligned: bool, single: bool) -> Face:
        faces = await self.faces(data, name, aligned)
        if single and len(faces) > 1:
            raise Problem(
                422,
                "several_faces",
                f"{name}: {len(faces)} faces found where one is required (single=false takes the largest)",
            )
        return faces[0]

    async def record(self, request, action: str, subject: str, faces: int, **details) -> None:
        """One audit record of a gallery change: the key's name (or anonymous), the caller's address, and
        ``details`` (a face's id)."""
        key = request.scope.get("facelearn.key")
        who = f"key:{key}" if key else "anonymous"
        client = request.client.host if request.client else None
        try:
            await self.in_pool(
                partial(
                    self.audit.record,
                    action,
                    subject,
                    faces,
                    who,
                    self.settings.gallery,
                    via="api",
                    client=client,
                    **details,
                )  # fmt: skip
            )
        except OSError as error:  # the change is made; say loudly that its record is missing
            log.error("facelearn serve: AUDIT RECORD NOT WRITTEN (%s %s, %d faces): %s", action, subject, faces, error)

    async def embed(self, faces: list[Face]) -> tuple[np.ndarray, np.ndarray, list]:
        """The faces' unit embeddings, raw norms and :class:`~facelearn.deploy.quality.FaceQuality`. The
        quality estimate's perturbed views go to the model in the same batch as the faces, so that under
        load they share the batcher's model calls instead of running beside them, one request at a time."""
        scorer = self.require().quality
        aligned = [f.face for f in faces]
        views = await self.in_pool(scorer.views, aligned)
        rows, norms = await self.batcher.embed(np.concatenate([np.stack(aligned), views]))
        embeddings, norms, moved = rows[: len(faces)], norms[: len(faces)], rows[len(faces) :]
        boxes = [None if f.box is None else np.asarray(f.box) for f in faces]
        landmarks, photos = [f.landmarks for f in faces], [f.photo for f in faces]
        qualities = await self.in_pool(scorer.score, aligned, embeddings, norms, landmarks, photos, boxes, moved)
        return embeddings, norms, qualities

    def fmr(self, fmr: float | None) -> float:
        return self.settings.fmr if fmr is None else fmr

    # ------------------------------------------------------------------ answers
    async def embedded(self, faces: list[Face], images: list[int] | None = None, no_face=()) -> dict:
        """The answer of /v1/embed; ``images``: the upload each face is in (0 for every face of one upload)."""
        embeddings, norms, qualities = await self.embed(faces) if faces else ([], [], [])
        images = images or [0] * len(faces)
        rows = zip(faces, embeddings, norms, qualities, images, strict=True)
        faces = [
            {**f.fields, "embedding": e.tolist(), "norm": float(n), "quality": q.quality, "image": i}
            for f, e, n, q, i in rows
        ]
        return {"model": self.require().model_id, "faces": faces, "no_face": list(no_face)}

    async def embedded_many(self, uploads: list[bytes], aligned: bool) -> dict:
        """Every face of several uploads, embedded together (one batcher entry: one model call)."""
        found, no_face = await self.faces_of_each(uploads, lambda data, name: self.faces(data, name, aligned))
        faces = [face for _, faces in found for face in faces]
        images = [i for i, faces in found for _ in faces]
        return await self.embedded(faces, images, no_face)

    @staticmethod
    async def faces_of_each(uploads: list[bytes], find) -> tuple[list[tuple[int, object]], list[int]]:
        """``find(data, name)`` on every upload at once: ``(index, found)`` for the uploads with a face, and the
        indices of those without one (``no_face``: listed, not an error); any other problem is raised."""
        results = await asyncio.gather(
            *(find(data, f"images[{i}]") for i, data in enumerate(uploads)), return_exceptions=True
        )
        found, no_face = [], []
        for i, result in enumerate(results):
            if isinstance(result, Problem) and result.code == "no_face":
                no_face.append(i)
            elif isinstance(result, BaseException):
                raise result
            else:
                found.append((i, result))
        return found, no_face

    async def verify(self, uploads: list[tuple[str, bytes]], params) -> dict:
        """Two photos, or one photo and ``params.subject``: the Recognizer's verdict, with the faces' boxes."""
        recognizer, fmr = self.require(), self.fmr(params.fmr)
        recognizer.threshold(fmr)  # an FMR the calibration cannot support is refused before any decoding
        faces = await asyncio.gather(*(self.one_face(d, n, params.aligned, params.single) for n, d in uploads))
        embeddings, _, scored = await self.embed(list(faces))
        qualities = [q.quality for q in scored]
        if params.subject is None:
            verdict = recognizer.compare(embeddings[0], embeddings[1], fmr)
        else:
            subject = lookup_id(params.subject)
            verdict = await self.in_pool(recognizer.compare_with_subject, embeddings[0], subject, fmr)
        boxes = [f.box for f in faces]
        fields = [{**f.fields, "quality": q} for f, q in zip(faces, qualities, strict=True)]
        return {**verdict, "subject": params.subject, "boxes": boxes, "faces": fields, "qualities": qualities}

    async def identification_rule(self, fmr: float | None, fpir: float | None) -> dict:
        """The threshold and what it holds for (FMR, or FPIR for the gallery's size); an FMR or FPIR the
        calibrations cannot support is refused before any decoding."""
        fmr = self.fmr(fmr) if fpir is None else None
        return await self.in_pool(self.require().identification_rule, fmr, fpir, None)

    async def identify(self, faces: list[Face], k: int, fmr: float | None, fpir: float | None = None) -> dict:
        """The answer: each face's decision, and what the threshold holds for (``fpir``, ``gallery_size``,
        ``calibrated_gallery_size``, ``warning``)."""
        recognizer = self.require()
        rule = await self.identification_rule(fmr, fpir)
        decisions = []
        if faces:
            embeddings, _, qualities = await self.embed(faces)
            fields = [{**f.fields, "quality": q.quality} for f, q in zip(faces, qualities, strict=True)]
            decisions, _ = await self.in_pool(recognizer.search, embeddings, k, rule["fmr"], fields, fpir)
        keys = ("fmr", "fpir", "fusion", "gallery_size", "calibrated_gallery_size", "warning")
        return {"faces": decisions, **{key: rule[key] for key in keys}}

    async def enroll(self, subject: str, images: list[bytes], params, metadata: dict | None, append: bool) -> dict:
        """The largest face of each photo that passes the quality gate into the gallery; photos without a face
        (``no_face``) and refused faces (``refused``: reasons, quality) are listed, not enrolled."""
        picked, no_face = await self.faces_of_each(
            images, lambda data, name: self.one_face(data, name, params.aligned, params.single)
        )
        photos, chosen = [i for i, _ in picked], [face for _, face in picked]
        if not chosen:
            raise Problem(422, "no_face", f"no face found in any of the {len(images)} images: nothing enrolled")
        embeddings, _, qualities = await self.embed(chosen)
        recognizer = self.require()
        passed, refused = recognizer.apply_gate(qualities)
        for entry in refused:
            entry["photo"] = photos[entry["photo"]]  # the image's index in the request, as no_face has it
        if not passed:
            raise Problem(422, "refused", refusal_message(subject, refused, no_face, lambda i: f"images[{i}]"))
        kept = [qualities[i].quality for i in passed]
        faces = await self.write(recognizer.add, subject, embeddings[passed], kept, metadata, append)
        enrolled = [{"photo": photos[i], "quality": q} for i, q in zip(passed, kept, strict=True)]
        return {"subject": subject, "faces": faces, "no_face": no_face, "refused": refused, "enrolled": enrolled}

    async def subject(self, subject: str) -> dict:
        return await self.in_pool(self.require().subject, subject)

    async def subjects(self) -> list[dict]:
        return await self.in_pool(self.require().subjects)

    async def delete(self, subject: str) -> dict:
        return await self.write(self.require().erase, subject)

    async def enrolled_faces(self, subject: str) -> list[dict]:
        return await self.in_pool(self.require().faces, subject)

    async def delete_face(self, subject: str, face_id: str) -> dict:
        return await self.write(self.require().delete_face, subject, face_id)

    async def ready(self) -> dict:
        recognizer = self.require()
        size = await self.in_pool(len, recognizer.gallery)
        s = self.settings
        return {
            "ready": True,
            "model": recognizer.model_id,
            "gallery_size": size,
            "max_batch": s.max_batch,
            "max_wait_ms": s.max_wait_ms,
        }
