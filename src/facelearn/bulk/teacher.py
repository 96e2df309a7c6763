"""``facelearn teacher-embed``: a black-box teacher's embedding of every training photo — the bulk pipeline with a
teacher (:mod:`facelearn.deploy.teachers`) as its end.

    facelearn teacher-embed --teacher dlib RAW_DIR teacher.npz
    facelearn teacher-embed --teacher onnx:teacher.onnx RAW_DIR teacher.npz --engine ray
    facelearn teacher-embed --teacher checkpoint:runs/big/best.pt RAW_DIR teacher.npz

A photo where the teacher finds no face, or that cannot be read, is listed in the file, not fatal.
The driver saves what has come back every ``SAVE_EVERY`` photos to ``OUT.partial``: a killed run
resumes where it stopped; the finished file is written atomically and never over an existing one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..data.folder import ImageFolder
from ..data.teacher_embeddings import TeacherEmbeddings, image_key
from ..deploy.teachers import build_teacher
from ..errors import ConfigError
from .engine import EngineOptions, build_engine
from .stages import Decoded, End, Item, Pipeline, Timer

log = logging.getLogger(__name__)
SAVE_EVERY = 200


class TeacherAnswers(End):
    """The teacher's embedding of each photo (its own detection and alignment), None where it finds no face."""

    def __init__(self, spec: str, detector: str, weights: str | None):
        self.spec, self.detector, self.weights = spec, detector, weights
        self.teacher = None

    def prepare(self) -> dict:
        return build_teacher(self.spec, self.detector, self.weights).identity  # fails early: dlib missing, bad ONNX

    def load(self) -> None:
        self.teacher = build_teacher(self.spec, self.detector, self.weights)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "teacher": None}

    def __call__(self, photos: list[Decoded], timer: Timer) -> list[dict]:
        results = []
        for photo in photos:
            if photo.status != "ok":
                results.append(photo.result(embedding=None))
                continue
            with timer("embed"):  # detection, alignment and embedding, by the teacher's own preprocessing
                embedding = self.teacher.embed(photo.image)
            found = embedding is not None
            results.append(photo.result(status="ok" if found else "no_face", faces=int(found), embedding=embedding))
        return results


def teacher_embed(
    spec: str,
    photos: str | Path,
    output: str | Path,
    workers: int = 2,
    detector: str = "retinaface",
    weights=None,
    engine: EngineOptions | None = None,
) -> TeacherEmbeddings:
    """The teacher's embedding of every photo of ``photos/<identity>/`` into ``output`` (an ``.npz``).
    ``engine``: which engine and its options (default: the local pool of ``workers`` processes)."""
    photos, output = Path(photos), Path(output)
    if output.exists():
        raise ConfigError(f"{output} exists: facelearn never writes over a file; delete it or choose another name")
    partial = output.with_name(output.name + ".partial")
    end = TeacherAnswers(spec, detector, weights)
    identity = end.prepare()
    result = TeacherEmbeddings({**identity, "photos": str(photos.resolve())})
    if partial.exists():
        result = TeacherEmbeddings.load(partial)
        if {k: v for k, v in result.meta.items() if k != "photos"} != identity:
            raise ConfigError(f"{partial} was started with another teacher ({result.meta.get('teacher')}): delete it")
        log.info("teacher-embed: resuming %s (%d photos done)", partial, len(result.done()))
    done = result.done()
    folder = ImageFolder(photos)
    keys = {str(path): image_key(path, photos) for path in folder.paths}
    todo = [Item(key, path) for path, key in keys.items() if key not in done]
    runner = build_engine(engine or EngineOptions(workers=max(workers, 1), batch_size=8))
    since_save = 0
    for answers, _ in runner.run(Pipeline(end), todo, "teacher-embed"):
        for answer in answers:
            if answer["status"] not in ("ok", "no_face"):
                log.warning("teacher-embed: %s", answer["reason"])
            result.add(answer["key"], answer["embedding"])
        since_save += len(answers)
        if since_save >= SAVE_EVERY:
            result.save(partial)
            since_save = 0
    result.save(output)
    if partial.exists():
        os.unlink(partial)
    return result
