"""Photos to faces to unit embeddings with their quality: detect, align, embed (what :class:`Recognizer` answers from).

An image is a path, encoded bytes, a PIL image or an (H, W, 3) uint8 array, RGB unless
``channel_order="bgr"`` (what ``cv2.imread`` returns): :func:`facelearn.deploy.inputs.as_rgb`.

Photos go through the same detector and :func:`facelearn.align.align_face` as training data, or
through the model's own detector and alignment where it brings them (``Recognizer.load("dlib")``);
faces that are already aligned at the model's input size can be passed with ``aligned=True``.
Each face's ``quality`` is in [0, 1] (:mod:`facelearn.deploy.quality`: the embedding norm of a
MagFace/AdaFace model, else a model-agnostic estimate).
"""

from __future__ import annotations

import numpy as np

from ..align import align_face, choose_face
from ..align.detector_pool import DetectorPool
from ..data.images import fit_size
from ..errors import DataError
from .answers import face_fields
from .inputs import as_rgb
from .quality import QualityScorer


class NoFaceFound(DataError):
    """No face was found in a photo that a question is about (identify, verify)."""


class FacePipeline:
    def __init__(self, embedder, detector=None, quality: str | None = "auto"):
        """``quality``: ``auto``, ``norm``, ``estimate`` or None (:class:`~facelearn.deploy.quality.QualityScorer`)."""
        self.embedder, self.detector = embedder, detector
        self.input_size = embedder.input_size
        self.quality = QualityScorer(embedder, quality)
        self.detectors = DetectorPool(detector) if detector is not None else None

    @property
    def model_id(self) -> str:
        """The model's id: the first 16 hex digits of its digest (every answer and gallery names it)."""
        return self.embedder.model_digest[:16]

    @property
    def aligns_photos(self) -> bool:
        """Whether the model brings its own alignment (dlib: its chips), so that faces aligned by facelearn's
        template are not its aligned faces."""
        return hasattr(self.embedder, "align")

    def detect(self, image: np.ndarray):
        if self.detector is None:
            raise DataError("this Recognizer has no face detector: pass aligned faces (aligned=True)")
        return self.detectors.detect(image)

    def detect_in_parallel(self, threads: int) -> None:
        """A detector copy for each of ``threads`` threads that may detect at once (one is kept otherwise:
        concurrent photos then wait for it)."""
        if self.detectors is not None:
            self.detectors.grow(threads)

    def aligned_faces(self, image: np.ndarray) -> tuple[list[np.ndarray], object]:
        faces = self.detect(image)
        return self.align(image, faces), faces

    def align(self, image: np.ndarray, faces) -> list[np.ndarray]:
        """The embedder's own alignment where it has one (dlib's chips), else the ArcFace five-point template."""
        if self.aligns_photos:
            return self.embedder.align(image, faces)
        return [fit_size(align_face(image, points), self.input_size) for points in faces.landmarks]

    def embed(
        self, images: list, aligned: bool = False, batch_size: int = 64, channel_order: str = "rgb"
    ) -> np.ndarray:
        """(N, D) unit embeddings: of aligned faces, or of the largest face of each photo (NaN rows where a
        photo has no face)."""
        return self.embed_with_quality(images, aligned, batch_size, channel_order)[0]

    def embed_with_quality(
        self,
        images: list,
        aligned: bool = False,
        batch_size: int = 64,
        channel_order: str = "rgb",
        choose: str = "largest",
    ) -> tuple[np.ndarray, list]:
        """:meth:`embed`, and each photo's :class:`~facelearn.deploy.quality.FaceQuality` (None: no face).
        ``choose``: the face kept where a photo has several (``largest`` or ``central``)."""
        images = [as_rgb(image, channel_order) for image in images]
        if aligned:
            faces = [self.check_aligned(face) for face in images]
            embeddings, norms = self.embed_faces(faces, batch_size)
            return embeddings, self.quality.score(faces, embeddings, norms)
        chosen, points, boxes = [None] * len(images), [None] * len(images), [None] * len(images)
        for i, image in enumerate(images):
            faces, found = self.aligned_faces(image)
            if faces:
                best = choose_face(found, image.shape, choose)
                chosen[i], points[i], boxes[i] = faces[best], found.landmarks[best], found.boxes[best]
        result = np.full((len(images), self.embedder.embedding_size), np.nan, np.float32)
        qualities = [None] * len(images)
        present = [i for i, face in enumerate(chosen) if face is not None]
        if present:
            faces = [chosen[i] for i in present]
            embeddings, norms = self.embed_faces(faces, batch_size)
            result[present] = embeddings
            scored = self.quality.score(
                faces,
                embeddings,
                norms,
                [points[i] for i in present],
                [images[i] for i in present],
                [boxes[i] for i in present],
            )
            for i, quality in zip(present, scored, strict=True):
                qualities[i] = quality
        return result, qualities

    def largest_face(self, image, aligned: bool = False, channel_order: str = "rgb") -> tuple[np.ndarray, dict]:
        """The unit embedding of a photo's largest face (or of the aligned face) and its face fields
        (:func:`face_fields`); :class:`NoFaceFound` when the photo has none."""
        image = as_rgb(image, channel_order)
        if aligned:
            face = self.check_aligned(image)
            embeddings, norms = self.embed_faces([face], 1)
            (quality,) = self.quality.score([face], embeddings, norms)
            return embeddings[0], {**face_fields(None), "quality": quality.quality}
        faces, found = self.aligned_faces(image)
        if not faces:
            raise NoFaceFound("no face found in the image")
        chosen = choose_face(found, image.shape)
        embeddings, norms = self.embed_faces([faces[chosen]], 1)
        (quality,) = self.quality.score(
            [faces[chosen]], embeddings, norms, [found.landmarks[chosen]], [image], [found.boxes[chosen]]
        )
        return embeddings[0], {**face_fields(found, chosen), "quality": quality.quality}

    def check_aligned(self, face: np.ndarray) -> np.ndarray:
        face = np.asarray(face)
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise DataError(f"an aligned face is a uint8 (H, W, 3) RGB image, got {face.dtype} {face.shape}")
        return fit_size(face, self.input_size)

    def embed_faces(self, faces: list[np.ndarray], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        embeddings, qualities = [], []
        for start in range(0, len(faces), batch_size):
            e, q = self.embedder.embed(np.stack(faces[start : start + batch_size]))
            embeddings.append(e)
            qualities.append(q)
        return np.concatenate(embeddings), np.concatenate(qualities)
