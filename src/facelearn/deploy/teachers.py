"""Black-box teachers: what ``facelearn teacher-embed`` (:mod:`facelearn.bulk.teacher`) runs on every photo.

Each teacher sees the *original* photos through its own preprocessing: dlib its HOG detector, its
five-point shape predictor and its 150×150 chips (``pip install 'facelearn[dlib]'``: dlib-bin and
the CC0 models of face-recognition-models); a facelearn checkpoint or an exported ONNX model
facelearn's detector, alignment and flip sum at the model's input size. ``embed(image)`` is the
teacher's embedding of the photo's largest face, or None where it finds no face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError


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
