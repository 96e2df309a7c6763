"""Real faces: detectors with five landmarks, the similarity alignment, and dataset preparation."""

from __future__ import annotations

from ..registry import Registry
from .align import ARCFACE_TEMPLATE, TEMPLATE_112x96, align_face, alignment_matrix, umeyama
from .faces import FaceDetector, Faces, choose_face, nms
from .weights import WeightsError, download_weights

DETECTORS: Registry[FaceDetector] = Registry("detector")


@DETECTORS.register("mtcnn")
def _mtcnn(**options) -> FaceDetector:
    from .mtcnn import MTCNN

    return MTCNN(**options)


@DETECTORS.register("retinaface")
def _retinaface(**options) -> FaceDetector:
    from .retinaface import RetinaFace

    return RetinaFace(**options)


def build_detector(name: str, weights: str | None = None, **options) -> FaceDetector:
    """``build_detector("mtcnn", weights="path/to/folder", min_face_size=40)``."""
    return DETECTORS.get(name)(weights=weights, **options)


__all__ = [
    "ARCFACE_TEMPLATE",
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
