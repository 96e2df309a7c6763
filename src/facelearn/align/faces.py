"""What every detector returns, the interface they share, and non-maximum suppression.

Landmarks are five (x, y) points in image pixels, in the order the ArcFace template uses: left eye,
right eye, nose tip, left mouth corner, right mouth corner ("left" = smaller x in the image).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from ..registry import Registry


@dataclass
class Faces:
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32

    @staticmethod
    def empty() -> Faces:
        return Faces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> Faces:
        return Faces(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    def scaled(self, sx: float, sy: float) -> Faces:
        """Coordinates stretched by (sx, sy) (detections on a resized image → original pixels)."""
        xy = np.array([sx, sy], np.float32)
        return Faces(self.boxes * np.tile(xy, 2), self.scores, self.landmarks * xy)

    def areas(self) -> np.ndarray:
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])


def choose_face(faces: Faces, image_shape: tuple[int, ...], rule: str = "largest") -> int:
    """Index of the face to keep when an image holds several: the largest box, or the most central one."""
    if len(faces) == 0:
        raise ValueError("no face to choose from")
    if rule == "largest":
        return int(np.argmax(faces.areas()))
    if rule == "central":
        centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
        middle = np.array([image_shape[1] / 2, image_shape[0] / 2])
        return int(np.argmin(np.linalg.norm(centres - middle, axis=1)))
    raise ValueError(f"unknown face choice {rule!r}; valid: largest, central")


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best first.

    ``mode="union"`` compares intersection over union; ``"min"`` intersection over the smaller box,
    which MTCNN's last stage uses to remove a small box inside a bigger one.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"unknown NMS mode {mode!r}; valid: union, min")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    kept = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(best)
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:4], boxes[rest, 2:4])
        intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
        if mode == "union":
            overlap = intersection / (area[best] + area[rest] - intersection)
        else:
            overlap = intersection / np.minimum(area[best], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(kept, np.int64)


class FaceDetector(ABC):
    """Finds faces with five landmarks in HWC uint8 RGB images.

    ``max_size``: images whose longer side exceeds it are downscaled for detection only; the
    coordinates returned are in the original image, so alignment uses the full-resolution pixels.
    """

    def __init__(self, max_size: int = 1600) -> None:
        self.max_size = max_size

    @abstractmethod
    def _detect(self, image: np.ndarray) -> Faces:
        """Detection on an image already no larger than ``max_size``."""

    def detect(self, image: np.ndarray) -> Faces:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HWC uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
        longer = max(image.shape[:2])
        if longer <= self.max_size:
            return self._detect(image)
        factor = self.max_size / longer
        size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return self._detect(small).scaled(image.shape[1] / size[0], image.shape[0] / size[1])

    def clone(self) -> FaceDetector:
        """An independent copy, for another thread (:class:`~facelearn.align.detector_pool.DetectorPool`)."""
        return copy.deepcopy(self)


DETECTORS: Registry[FaceDetector] = Registry("detector")  # each detector registers itself where it is defined
DEFAULT_DETECTOR = "retinaface"  # what the Recognizer, the service and teacher-embed use unless told
