"""``facelearn.Recognizer``: detect, align, embed, verify, enroll, identify and delete — one object.

    recognizer = Recognizer.load("runs/lfw/mbf_detect/best.pt", gallery="people.db")
    recognizer.enroll("alice", ["alice1.jpg", "alice2.jpg"])
    recognizer.identify("visitor.jpg")                  # candidates, or "unknown" below the FMR threshold
    recognizer.verify(photo_a, photo_b, fmr=1e-3)       # score, decision, threshold, FMR, model

An image is a path, encoded bytes, a PIL image or an (H, W, 3) uint8 array, RGB unless
``channel_order="bgr"`` (what ``cv2.imread`` returns): :func:`facelearn.deploy.inputs.as_rgb`.

Photos go through the same detector and :func:`facelearn.align.align_face` as training data, or
through the model's own detector and alignment where it brings them (``Recognizer.load("dlib")``);
faces that are already aligned at the model's input size can be passed with ``aligned=True``.
Decisions are taken at a named false-match rate from the model's calibration, never at a bare
cosine. Every face gets a quality in [0, 1] (:mod:`facelearn.deploy.quality`: the embedding norm of a
MagFace/AdaFace model, else a model-agnostic estimate), and enroll refuses the faces below the
:class:`~facelearn.deploy.quality.QualityGate`, saying why. Every method may be called from several
threads at once.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..align import align_face, build_detector, choose_face
from ..data.images import fit_size
from ..errors import DataError
from .calibration import DEFAULT_FMR, Calibration
from .gallery import UnknownSubject, open_gallery
from .inputs import as_rgb
from .loading import load_embedder
from .quality import QualityGate, QualityRefused, QualityScorer, refusal_message
from .subject_ids import lookup_id, subject_id


class Recognizer:
    def __init__(
        self,
        embedder,
        detector=None,
        calibration: Calibration | None = None,
        gallery=None,
        quality: str | None = "auto",
        gate: QualityGate | None = None,
    ):
        self.embedder, self.detector, self.calibration, self.gallery = embedder, detector, calibration, gallery
        self.input_size = embedder.input_size
        self.quality = QualityScorer(embedder, quality)
        self.gate = gate or QualityGate()
        self.detector_lock = threading.Lock()  # the detectors keep per-call state: one image at a time

    @classmethod
    def load(
        cls,
        model: str | Path,
        architecture: str | None = None,
        gallery: str | Path | None = None,
        store: str | None = None,
        index: str = "exact",
        detector: str | None = "retinaface",
        weights: str | None = None,
        backend: str = "auto",
        quality: str | None = "auto",
        gate: QualityGate | None = None,
        **backend_options,
    ) -> Recognizer:
        """From a named model (``"dlib"``), a facelearn checkpoint, a plain state_dict (arcface_torch ``model.pt``:
        ``architecture`` names it, else it is read from the keys) or an ``.onnx`` (facelearn's export, or an
        insightface-style float-input model: :mod:`facelearn.deploy.onnx_import`).

        ``backend`` for a checkpoint: a name in :data:`facelearn.deploy.backends.BACKENDS` (``torch``,
        ``onnx``: exported in memory) or ``auto`` — whichever embeds faster on this machine, measured at
        load. The checkpoint file is read once. A model with its own detector and alignment (dlib) always
        uses them, whatever ``detector`` says (its aligned faces, ``aligned=True``, are its own chips).

        ``quality``: ``auto``, ``norm``, ``estimate`` or None (:class:`~facelearn.deploy.quality.QualityScorer`);
        ``gate``: the enroll gate (default :class:`~facelearn.deploy.quality.QualityGate`)."""
        embedder, calibration = load_embedder(model, architecture, backend, **backend_options)
        own = getattr(embedder, "detector", None)
        detector = own or (build_detector(detector, weights) if detector else None)
        calibration = Calibration.from_dict(calibration) if calibration else None
        recognizer = cls(embedder, detector, calibration, quality=quality, gate=gate)
        if gallery is not None:
            recognizer.open_gallery(gallery, store, index)
        return recognizer

    @property
    def model_id(self) -> str:
        return self.embedder.model_digest[:16]

    def open_gallery(self, location: str | Path, store: str | None = None, index: str = "exact"):
        """An SQLite file (default), or Milvus (``store="milvus"``: a milvus-lite file or a server URI)."""
        self.gallery = open_gallery(location, self.model_id, self.embedder.embedding_size, store, index)
        return self.gallery

    @property
    def aligns_photos(self) -> bool:
        """Whether the model brings its own alignment (dlib: its chips), so that faces aligned by facelearn's
        template are not its aligned faces."""
        return hasattr(self.embedder, "align")

    # ------------------------------------------------------------------ faces
    def detect(self, image: np.ndarray):
        if self.detector is None:
            raise DataError("this Recognizer has no face detector: pass aligned faces (aligned=True)")
        with self.detector_lock:
            return self.detector.detect(image)

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

    # ------------------------------------------------------------------ decisions
    def threshold(self, fmr: float = DEFAULT_FMR) -> float:
        if self.calibration is None:
            raise DataError(
                "this model has no calibration, so no threshold has a known false-match rate: run "
                "facelearn calibrate MODEL --pairs/--bin/--gallery first"
            )
        return self.calibration.threshold(fmr)

    def verify(self, a, b, fmr: float = DEFAULT_FMR, aligned: bool = False, channel_order: str = "rgb") -> dict:
        """Same person or not, at a false-match rate: score, decision, threshold, FMR, model, and the two
        faces' qualities."""
        threshold = self.threshold(fmr)
        (first, second), qualities = self.embed_with_quality([a, b], aligned, channel_order=channel_order)
        for name, embedding in (("first", first), ("second", second)):
            if np.isnan(embedding).any():
                raise DataError(f"no face found in the {name} image")
        return {**self.verdict(float(first @ second), fmr, threshold), "qualities": [q.quality for q in qualities]}

    def _require_gallery(self):
        if self.gallery is None:
            raise DataError("no gallery is open: Recognizer.load(..., gallery='people.db') or open_gallery()")
        return self.gallery

    def enroll(
        self,
        subject: str,
        images: list,
        aligned: bool = False,
        metadata: dict | None = None,
        append: bool = False,
        channel_order: str = "rgb",
        gate: bool = True,
    ) -> dict:
        """Enroll the largest face of each photo that passes the quality gate (``gate=False``: every face).
        Photos without a face are listed in ``no_face``; refused faces in ``refused`` with their reasons and
        quality; ``enrolled`` gives each enrolled photo's quality. Nothing passes: :class:`QualityRefused`."""
        self._require_gallery()
        if not images:
            raise DataError(f"nothing to enroll for {subject!r}: no images given")
        embeddings, qualities = self.embed_with_quality(images, aligned, channel_order=channel_order)
        no_face = [i for i, quality in enumerate(qualities) if quality is None]
        if len(no_face) == len(images):
            raise DataError(f"no face found in any of the {len(images)} images of {subject!r}: nothing enrolled")
        passed, refused = self.apply_gate(qualities, gate)
        if not passed:
            raise QualityRefused(refusal_message(subject, refused, no_face), refused, no_face)
        faces = self.add(subject, embeddings[passed], [qualities[i].quality for i in passed], metadata, append)
        enrolled = [{"photo": i, "quality": qualities[i].quality} for i in passed]
        return {"subject": subject, "faces": faces, "no_face": no_face, "refused": refused, "enrolled": enrolled}

    def apply_gate(self, qualities: list, gate: bool = True) -> tuple[list[int], list[dict]]:
        """(indices that pass, ``[{"photo", "reasons", "quality"}]`` refused); None entries (no face) are neither."""
        passed, refused = [], []
        for i, quality in enumerate(qualities):
            if quality is None:
                continue
            reasons = self.gate.reasons(quality) if gate else []
            if reasons:
                refused.append({"photo": i, "reasons": reasons, "quality": quality.quality})
            else:
                passed.append(i)
        return passed, refused

    def identify(
        self, image, k: int = 5, fmr: float = DEFAULT_FMR, aligned: bool = False, channel_order: str = "rgb"
    ) -> list[dict]:
        """For every face in the photo (or the one aligned face): the k best subjects and the decision —
        the best subject if it scores above the threshold at ``fmr``, else ``None`` (unknown)."""
        image = as_rgb(image, channel_order)
        if aligned:
            return self.identify_faces([image], k, fmr)
        faces, found = self.aligned_faces(image)
        if not faces:
            return []
        results = self.identify_faces(faces, k, fmr, list(found.landmarks), [image] * len(faces), list(found.boxes))
        for result, box in zip(results, found.boxes, strict=True):
            result["box"] = box.tolist()
        return results

    def identify_faces(
        self, faces: list[np.ndarray], k: int = 5, fmr: float = DEFAULT_FMR, landmarks=None, photos=None, boxes=None
    ) -> list[dict]:
        """:meth:`identify` for a batch of aligned faces, one result each (with its quality)."""
        faces = [self.check_aligned(face) for face in faces]
        embeddings, norms = self.embed_faces(faces, 64)
        results = self.search(embeddings, k, fmr)[0]
        qualities = self.quality.score(faces, embeddings, norms, landmarks, photos, boxes)
        for result, quality in zip(results, qualities, strict=True):
            result["quality"] = quality.quality
        return results

    def search(
        self, embeddings: np.ndarray, k: int = 5, fmr: float = DEFAULT_FMR, boxes=None
    ) -> tuple[list[dict], int]:
        """The open-set decision for each embedding against the gallery, and the gallery's size: the
        k best subjects, and the best one if it scores above the threshold at ``fmr`` (else unknown)."""
        gallery = self._require_gallery()
        threshold = self.threshold(fmr)
        size, found = len(gallery), gallery.search(embeddings, k)
        boxes = boxes if boxes is not None else [None] * len(found)
        return [self.decision(c, threshold, fmr, box) for c, box in zip(found, boxes, strict=True)], size

    def decision(self, candidates: list[tuple[str, float]], threshold: float, fmr: float, box=None) -> dict:
        """One face's answer: its candidates, and the best one if it scores above the threshold (else None)."""
        best = candidates[0] if candidates and candidates[0][1] > threshold else None
        return {
            "box": box,
            "candidates": [{"subject": s, "score": score} for s, score in candidates],
            "subject": best[0] if best else None,  # None: unknown at this FMR
            "threshold": threshold,
            "fmr": fmr,
            "model": self.model_id,
        }

    def compare(self, first: np.ndarray, second: np.ndarray, fmr: float = DEFAULT_FMR) -> dict:
        """Two unit embeddings: same person or not at ``fmr``."""
        return self.verdict(float(first @ second), fmr)

    def compare_with_subject(self, embedding: np.ndarray, subject: str, fmr: float = DEFAULT_FMR) -> dict:
        """An embedding against an enrolled subject's best face, at ``fmr``."""
        threshold = self.threshold(fmr)  # an unsupported FMR is refused before the gallery is read
        (hits,) = self._require_gallery().search(embedding[None], 1, subject=subject)
        if not hits:
            raise UnknownSubject(f"subject {subject!r} is not enrolled")
        return {**self.verdict(hits[0][1], fmr, threshold), "subject": subject}

    def verdict(self, score: float, fmr: float, threshold: float | None = None) -> dict:
        threshold = self.threshold(fmr) if threshold is None else threshold
        return {"score": score, "same": score > threshold, "threshold": threshold, "fmr": fmr, "model": self.model_id}

    def add(
        self, subject: str, embeddings: np.ndarray, qualities=None, metadata: dict | None = None, append: bool = False
    ) -> int:
        """Store a subject's embeddings (all or none); returns the subject's face count."""
        gallery = self._require_gallery()
        return gallery.enroll(subject_id(subject), embeddings, qualities, None, metadata, append)

    def subject(self, subject: str) -> dict:
        """An enrolled subject's entry (name, metadata, face count)."""
        subject = lookup_id(subject)
        found = [entry for entry in self._require_gallery().subjects() if entry["subject"] == subject]
        if not found:
            raise UnknownSubject(f"subject {subject!r} is not enrolled")
        return found[0]

    def subjects(self) -> list[dict]:
        return self._require_gallery().subjects()

    def delete(self, subject: str) -> int:
        """Remove a subject and every embedding of it from the gallery; returns the faces removed."""
        return self.erase(subject)["faces"]

    def erase(self, subject: str) -> dict:
        """Remove a subject (committed: gone for every search from here) and erase it from the store's files
        (SQLite: the WAL folded and truncated, never waiting on a reader): ``erased`` says whether that is
        done yet, ``erasure`` until when it waits."""
        gallery = self._require_gallery()
        subject = lookup_id(subject)
        removed = gallery.delete(subject)
        erased = gallery.checkpoint()
        return {"deleted": subject, "faces": removed, "erased": erased, "erasure": gallery.erasure}
