"""dlib's ResNet face descriptor, a complete pretrained model: ``Recognizer.load("dlib")``, ``--model dlib``.

dlib's model (``dlib_face_recognition_resnet_model_v1``, CC0, shipped in face-recognition-models;
``pip install 'facelearn[dlib]'``) expects its own preprocessing, so it brings it: the HOG frontal
face detector (upsampling once), the five-point shape predictor, and a 150×150 chip with padding
0.25 (``dlib.get_face_chip``). Its five points are dlib's (two corners of each eye and the base of
the nose), not the ArcFace template's, so :class:`DlibDetector` is not a general detector: its
landmarks feed :meth:`DlibFaceModel.align` and nothing else. The Recognizer asks the embedder for
its alignment where it has one (:meth:`facelearn.deploy.face_pipeline.FacePipeline.align`).

Embeddings are the 128-d descriptors scaled to unit length, quality their raw norm; no flip. The
model id is the sha256 of the model file. The thresholds are facelearn's own measurement on LFW-a
(benchmarks/dlib_calibration.py), shipped in ``calibrations/dlib.json``; ``facelearn calibrate
dlib`` on your own pairs writes ``$FACELEARN_HOME/models/dlib/calibration.json``, which is used
instead from then on. :class:`facelearn.deploy.teachers.DlibTeacher` runs the same code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import threading
from pathlib import Path

import numpy as np

from ..align import FaceDetector, Faces
from ..align.weights import facelearn_home
from ..errors import ConfigError
from .backends import Embedder

log = logging.getLogger(__name__)

INSTALL = "pip install 'facelearn[dlib]' (dlib-bin and face-recognition-models)"
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPES_FILE = "shape_predictor_5_face_landmarks.dat"
CHIP_SIZE, CHIP_PADDING, UPSAMPLE = 150, 0.25, 1
SHIPPED_CALIBRATION = Path(__file__).parent / "calibrations" / "dlib.json"
PREPROCESSING = (
    f"dlib HOG frontal detector (upsample {UPSAMPLE}), 5-point shape predictor, "
    f"{CHIP_SIZE}x{CHIP_SIZE} chip (padding {CHIP_PADDING}), no jitter"
)


def import_dlib(purpose: str = "the dlib model"):
    """(the dlib module, the folder of face-recognition-models' files), or a ConfigError saying what to install."""
    # face_recognition_models' __init__ imports pkg_resources, gone from recent setuptools: its files
    # are found from the package's location, without importing it
    spec = importlib.util.find_spec("face_recognition_models")
    try:
        import dlib
    except ImportError:
        dlib = None
    if dlib is None or spec is None:
        raise ConfigError(f"{purpose} needs dlib and its models: {INSTALL}")
    return dlib, Path(spec.submodule_search_locations[0]) / "models"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_calibration_path() -> Path:
    return facelearn_home() / "models" / "dlib" / "calibration.json"


class DlibDetector(FaceDetector):
    """HOG boxes (scores: the detector's margins) with dlib's own five points, for :meth:`DlibFaceModel.align`."""

    def __init__(self, dlib, models: Path, max_size: int = 1600):
        super().__init__(max_size)
        self.dlib, self.models = dlib, models
        self.hog = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(models / SHAPES_FILE))

    def clone(self) -> DlibDetector:
        return DlibDetector(self.dlib, self.models, self.max_size)  # dlib's objects do not deep-copy

    def _detect(self, image: np.ndarray) -> Faces:
        rectangles, scores, _ = self.hog.run(image, UPSAMPLE, 0.0)
        if not rectangles:
            return Faces.empty()
        points = []
        for rectangle in rectangles:
            shape = self.shapes(image, rectangle)
            points.append([(shape.part(k).x, shape.part(k).y) for k in range(shape.num_parts)])
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rectangles]
        return Faces(np.array(boxes, np.float32), np.array(scores, np.float32), np.array(points, np.float32))


class DlibFaceModel(Embedder):
    """A complete model: its own detector (:attr:`detector`), alignment (:meth:`align`) and network."""

    name = "dlib"
    input_size = CHIP_SIZE
    embedding_size = 128
    landmark_scheme = "dlib"  # its five points: two corners of each eye, the base of the nose (deploy/quality.py)

    def __init__(self, max_size: int = 1600, purpose: str = "the dlib model"):
        dlib, models = import_dlib(purpose)
        self.dlib = dlib
        self.detector = DlibDetector(dlib, models, max_size)
        self.network = dlib.face_recognition_model_v1(str(models / MODEL_FILE))
        self.network_lock = threading.Lock()  # a dlib network keeps its buffers between calls
        self.model_digest = file_digest(models / MODEL_FILE)
        self.calibration = self.stored_calibration()

    def stored_calibration(self) -> dict | None:
        """The user's calibration (``facelearn calibrate dlib``) where there is one for this model file, else the
        shipped one."""
        for path in (user_calibration_path(), SHIPPED_CALIBRATION):
            if path.is_file():
                stored = json.loads(path.read_text())
                if stored.get("model_digest") == self.model_digest:
                    log.info("dlib: thresholds from %s", path)
                    return stored["calibration"]
                log.warning("%s is for another dlib model file (%s): not used", path, stored.get("model_digest"))
        return None

    def store_calibration(self, calibration: dict) -> Path:
        from ..io import write_text_atomic

        path = user_calibration_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"model_digest": self.model_digest, "calibration": calibration}, indent=2))
        return path

    def align(self, image: np.ndarray, faces: Faces) -> list[np.ndarray]:
        """dlib's 150×150 chip of every face, from the five points :class:`DlibDetector` found."""
        dlib, chips = self.dlib, []
        for box, points in zip(faces.boxes.astype(int), faces.landmarks, strict=True):
            shape = dlib.full_object_detection(
                dlib.rectangle(*(int(v) for v in box)), [dlib.point(int(x), int(y)) for x, y in points]
            )
            chips.append(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
        return chips

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB chips → (N, 128) raw descriptors (what dlib compares by Euclidean distance)."""
        batch = [np.ascontiguousarray(chip, np.uint8) for chip in chips]
        with self.network_lock:
            return np.array(self.network.compute_face_descriptor(batch), np.float32).reshape(len(batch), -1)

    def embed(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = self.descriptors(faces)
        norms = np.linalg.norm(raw, axis=1)
        return raw / np.maximum(norms, 1e-12)[:, None], norms

    @classmethod
    def from_backbone(cls, *_, **__):
        raise ConfigError("dlib is a complete model with its own network: it runs no other backbone")
