"""Real faces: detectors with five landmarks, the similarity alignment, and dataset preparation."""

from __future__ import annotations

from . import mtcnn, retinaface  # noqa: F401  (register the detectors)
from .align import ARCFACE_TEMPLATE, TEMPLATE_112x96, align_face, alignment_matrix, umeyama
from .faces import DEFAULT_DETECTOR, DETECTORS, FaceDetector, Faces, choose_face, nms
from .weights import WeightsError, download_weights


def build_detector(name: str, weights: str | None = None, **options) -> FaceDetector:
    """``build_detector("mtcnn", weights="path/to/folder", min_face_size=40)``."""
    return DETECTORS.get(name)(weights=weights, **options)


__all__ = [
    "ARCFACE_TEMPLATE",
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "TEMPLATE_112x96",
    "FaceDetector",
    "Faces",
    "WeightsError",
    "align_face",
    "alignment_matrix",
    "build_detector",
    "choose_face",
    "download_weights",
    "nms",
    "umeyama",
]
