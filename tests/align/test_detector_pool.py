"""Several threads detect at once, each with its own copy of the detector: the copies find what the
detector finds, and a pool of one still serialises."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import need, shared_path

from facelearn.align import FaceDetector, Faces, build_detector
from facelearn.align.detector_pool import DetectorPool
from facelearn.data.images import read_image


class SlowDetector(FaceDetector):
    """Counts how many of its copies are detecting at the same moment."""

    def __init__(self, state: dict):
        super().__init__()
        self.state = state

    def clone(self):
        return SlowDetector(self.state)

    def _detect(self, image):
        with self.state["lock"]:
            self.state["now"] += 1
            self.state["most"] = max(self.state["most"], self.state["now"])
            self.state["used"].add(id(self))
        time.sleep(0.05)
        with self.state["lock"]:
            self.state["now"] -= 1
        return Faces.empty()


@pytest.mark.parametrize("size", [1, 3])
def test_as_many_detect_at_once_as_the_pool_has_copies(size):
    state = {"lock": threading.Lock(), "now": 0, "most": 0, "used": set()}
    pool = DetectorPool(SlowDetector(state), size)
    image = np.zeros((32, 32, 3), np.uint8)
    with ThreadPoolExecutor(6) as threads:
        list(threads.map(lambda _: pool.detect(image), range(12)))
    assert state["most"] == size and len(state["used"]) == size


@pytest.mark.parametrize("name", ["retinaface", "mtcnn", "dlib"])
def test_each_copy_finds_what_the_detector_finds(name):
    photo = read_image(shared_path("data", "photos", "facenet_pytorch", "multiface.jpg"))
    if name == "dlib":
        need("dlib", "dlib")
        from facelearn.deploy.dlib_model import DlibFaceModel

        detector = DlibFaceModel().detector
    else:
        detector = build_detector(name, str(shared_path("weights", name)))
    alone = detector.detect(photo)
    pool = DetectorPool(detector, 2)
    with ThreadPoolExecutor(2) as threads:
        found = list(threads.map(pool.detect, [photo] * 4))
    assert len(alone.boxes) >= 5
    for faces in found:
        np.testing.assert_allclose(faces.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(faces.landmarks, alone.landmarks, atol=1e-3)
