"""Black-box teachers and ``facelearn teacher-embed``: a teacher's embedding of every training photo.

    facelearn teacher-embed --teacher dlib RAW_DIR teacher.npz
    facelearn teacher-embed --teacher onnx:teacher.onnx RAW_DIR teacher.npz
    facelearn teacher-embed --teacher checkpoint:runs/big/best.pt RAW_DIR teacher.npz

Each teacher sees the *original* photos through its own preprocessing: dlib its HOG detector, its
five-point shape predictor and its 150×150 chips (``pip install 'facelearn[dlib]'``: dlib-bin and
the CC0 models of face-recognition-models); a facelearn checkpoint or an exported ONNX model
facelearn's detector, alignment and flip sum at the model's input size. A photo where the teacher
finds no face is listed in the file, not fatal. The work runs in ``--workers`` processes with a
progress bar and is saved every ``SAVE_EVERY`` photos to ``OUT.partial``: a killed run resumes
where it stopped; the finished file is written atomically and never over an existing one.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.folder import ImageFolder
from ..data.images import ImageError, read_image
from ..data.teacher_embeddings import TeacherEmbeddings, image_key
from ..errors import ConfigError

log = logging.getLogger(__name__)
SAVE_EVERY = 200
CHUNK = 8


class DlibTeacher:
    """dlib's raw descriptor of the largest face, through :class:`~facelearn.deploy.dlib_model.DlibFaceModel`
    (its own detector, five points and chip) at the photo's full resolution."""

    def __init__(self, **_):
        from .dlib_model import DlibFaceModel

        self.model = DlibFaceModel(max_size=1 << 30, purpose="--teacher dlib")
        self.identity = {
            "teacher": "dlib",
            "model": "dlib_face_recognition_resnet_model_v1 (face-recognition-models, CC0)",
            "dlib": getattr(self.model.dlib, "__version__", "?"),
            "preprocessing": "dlib HOG frontal detector (upsample 1), largest face, 5-point shape predictor, "
            "150x150 chip (padding 0.25), no jitter",
        }

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        faces = self.model.detector.detect(image)
        if not len(faces):
            return None
        largest = faces.select(np.array([int(np.argmax(faces.areas()))]))
        return self.model.descriptors(np.stack(self.model.align(image, largest)))[0]


class ModelTeacher:
    """A facelearn checkpoint, an arcface_torch ``.pth`` or an exported ``.onnx``, through the Recognizer."""

    def __init__(self, path: str, detector: str = "retinaface", weights: str | None = None):
        from .recognizer import Recognizer

        self.recognizer = Recognizer.load(path, detector=detector, weights=weights, backend="torch")  # .onnx: ORT
        self.identity = {
            "teacher": Path(path).name,
            "weights_sha256": self.recognizer.embedder.model_digest,
            "preprocessing": f"facelearn {detector} detection, largest face, 5-point alignment at "
            f"{self.recognizer.input_size} px, flip sum",
        }

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        row = self.recognizer.embed([image])[0]
        return None if np.isnan(row).any() else row


def build_teacher(spec: str, detector: str = "retinaface", weights: str | None = None):
    if spec == "dlib":
        return DlibTeacher()
    kind, _, path = spec.partition(":")
    if kind not in ("onnx", "checkpoint") or not path:
        raise ConfigError(f"--teacher {spec!r}: use dlib, onnx:PATH or checkpoint:PATH")
    if not Path(path).is_file():
        raise ConfigError(f"--teacher {spec!r}: {path} does not exist")
    return ModelTeacher(path, detector, weights)


_worker_teacher = None


def _start_worker(spec: str, detector: str, weights: str | None) -> None:
    global _worker_teacher
    import torch

    torch.set_num_threads(1)  # one core a process: the processes are the parallelism
    _worker_teacher = build_teacher(spec, detector, weights)


def _embed_paths(paths: list[str]) -> list[np.ndarray | None]:
    answers = []
    for path in paths:
        try:
            answers.append(_worker_teacher.embed(read_image(path)))
        except ImageError as error:
            log.warning("teacher-embed: %s", error)
            answers.append(None)
    return answers


def teacher_embed(
    spec: str, photos: str | Path, output: str | Path, workers: int = 2, detector: str = "retinaface", weights=None
) -> TeacherEmbeddings:
    photos, output = Path(photos), Path(output)
    if output.exists():
        raise ConfigError(f"{output} exists: facelearn never writes over a file; delete it or choose another name")
    partial = output.with_name(output.name + ".partial")
    identity = build_teacher(spec, detector, weights).identity  # fails early: dlib missing, bad ONNX input
    meta = {**identity, "photos": str(photos.resolve())}
    result = TeacherEmbeddings(meta)
    if partial.exists():
        result = TeacherEmbeddings.load(partial)
        if {k: v for k, v in result.meta.items() if k != "photos"} != identity:
            raise ConfigError(f"{partial} was started with another teacher ({result.meta.get('teacher')}): delete it")
        log.info("teacher-embed: resuming %s (%d photos done)", partial, len(result.done()))
    done = result.done()
    folder = ImageFolder(photos)
    todo = [p for p in folder.paths if image_key(p, photos) not in done]
    chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
    since_save = 0
    progress = tqdm(total=len(folder.paths), initial=len(folder.paths) - len(todo), desc="teacher-embed", unit="img")
    with ProcessPoolExecutor(max(workers, 1), initializer=_start_worker, initargs=(spec, detector, weights)) as pool:
        for chunk, answers in zip(chunks, pool.map(_embed_paths, [[str(p) for p in c] for c in chunks]), strict=True):
            for path, embedding in zip(chunk, answers, strict=True):
                result.add(image_key(path, photos), embedding)
            progress.update(len(chunk))
            since_save += len(chunk)
            if since_save >= SAVE_EVERY:
                result.save(partial)
                since_save = 0
    progress.close()
    result.save(output)
    if partial.exists():
        os.unlink(partial)
    return result
