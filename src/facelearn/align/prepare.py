"""What ``facelearn prepare`` does to one photo: its options, and the crop (detect + align, centre, or resize).

The command itself — the engines, the journal, the report, RecordIO and the pairs ``.bin`` — is the
bulk pipeline with this crop as its end: :mod:`facelearn.bulk.prepare`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError
from .align import align_face
from .faces import FaceDetector, choose_face

CROPS = ("detect", "center", "resize")


@dataclass
class PrepareOptions:
    crop: str = "detect"  # detect + align; center: fixed central square; resize: the whole image
    detector: str = "mtcnn"
    weights: str | None = None  # folder of the detector's weights (default: $FACELEARN_HOME)
    size: int = 112
    choose: str = "largest"  # which face when there are several: largest | central
    min_face_size: int = 20
    max_size: int = 1600  # longer side above which detection runs on a downscaled copy
    center_fraction: float = 0.6  # side of the central square as a fraction of the shorter side
    no_face: str = "skip"  # an image where no face is found: skip it, or keep its central crop ("center")

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ConfigError(f"unknown crop {self.crop!r}; valid: {', '.join(CROPS)}")
        if self.choose not in ("largest", "central"):
            raise ConfigError(f"unknown face choice {self.choose!r}; valid: largest, central")
        if self.no_face not in ("skip", "center"):
            raise ConfigError(f"unknown no_face action {self.no_face!r}; valid: skip, center")
        if not 0 < self.center_fraction <= 1:
            raise ConfigError(f"center_fraction must be in (0, 1], got {self.center_fraction}")

    def build_detector(self) -> FaceDetector | None:
        if self.crop != "detect":
            return None
        from . import build_detector

        options = {"max_size": self.max_size, "min_face_size": self.min_face_size}
        return build_detector(self.detector, self.weights, **options)


def center_crop(image: np.ndarray, fraction: float, size: int) -> np.ndarray:
    """The central square of side ``fraction`` × the shorter side, resized to size×size."""
    height, width = image.shape[:2]
    side = max(1, round(min(height, width) * fraction))
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def crop_face(
    image: np.ndarray, options: PrepareOptions, detector: FaceDetector | None
) -> tuple[np.ndarray | None, int]:
    """(aligned face, number of faces found); no face gives None, or the central crop with ``no_face="center"``."""
    if options.crop == "resize":
        return cv2.resize(image, (options.size, options.size), interpolation=cv2.INTER_AREA), 1
    if options.crop == "center":
        return center_crop(image, options.center_fraction, options.size), 1
    faces = detector.detect(image)
    if len(faces) == 0:
        return (center_crop(image, options.center_fraction, options.size) if options.no_face == "center" else None), 0
    chosen = choose_face(faces, image.shape, options.choose)
    return align_face(image, faces.landmarks[chosen], options.size, options.size), len(faces)
