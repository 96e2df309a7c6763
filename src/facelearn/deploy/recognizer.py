"""``facelearn.Recognizer``: detect, align, embed, verify, enroll, identify and delete — one object.

    recognizer = Recognizer.load("runs/lfw/mbf_detect/best.pt", gallery="people.db")
    recognizer.enroll("alice", ["alice1.jpg", "alice2.jpg"])
    recognizer.identify("visitor.jpg")                  # candidates, or "unknown" below the FMR threshold
    recognizer.calibrate_identification(strangers)      # the gallery's thresholds at FPIR 1e-2, 1e-3 for its size
    recognizer.identify("visitor.jpg", fpir=1e-2)       # … "unknown" at a false-positive identification rate
    recognizer.identify(frames, as_one_person=True)     # a burst of one person: one fused probe
    recognizer.verify(photo_a, photo_b, fmr=1e-3)       # score, decision, threshold, FMR, model
    recognizer.faces("alice")                           # [{"face_id": "3", "quality": 21.0, "source": None}, …]
    recognizer.delete_face("alice", "3")                # one bad photo out; the last face takes the subject

Photos become faces and embeddings in :class:`~facelearn.deploy.face_pipeline.FacePipeline` (what an image
may be, alignment, quality); decisions and answers are :mod:`facelearn.deploy.decisions` (at a named FMR or
FPIR, never a bare cosine unless the model has no calibration). A photo in which no face is found is an
error (:class:`NoFaceFound`) for ``identify`` and ``verify``, as it is over REST (422 ``no_face``);
``enroll`` lists such photos and enrolls the rest; ``embed`` gives them NaN rows. Each face's answer
carries its box, five landmarks, detection score and ``quality`` in [0, 1]; enroll refuses the faces
below the :class:`~facelearn.deploy.quality.QualityGate`, saying why. Every method may be called from
several threads at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..align import build_detector
from ..errors import ConfigError, DataError
from .answers import face_fields
from .calibration import DEFAULT_FMR, Calibration
from .decisions import check_best_fusion, decision, fmr_rule, for_gallery, fpir_rule, verdict
from .enrollment import Enroller
from .face_pipeline import NoFaceFound
from .fusion import DEFAULT_FUSION, check_fusion, fuse
from .gallery import UnknownSubject
from .inputs import as_rgb
from .loading import load_embedder
from .open_set import FPIRS, OpenSetCalibration, UnsupportedFPIR, calibrate_open_set, check_fpirs, searches_needed
from .open_set import unsupported_message as unsupported_fpir
from .quality import QualityGate
from .subject_ids import lookup_id

__all__ = ["NoFaceFound", "Recognizer"]


class Recognizer(Enroller):
    """An :class:`~facelearn.deploy.enrollment.Enroller` (photos to embeddings, a gallery's people) that decides:
    verify at a named FMR, identify against the gallery at a named FMR or FPIR."""

    def __init__(
        self,
        embedder,
        detector=None,
        calibration: Calibration | None = None,
        gallery=None,
        threshold: float | None = None,
        quality: str | None = "auto",
        gate: QualityGate | None = None,
    ):
        """``threshold``: a cosine threshold for a model without calibration (answers then say it is
        uncalibrated); refused for a calibrated model, whose thresholds come at named FMRs. ``quality`` and
        ``gate``: see :meth:`load`."""
        super().__init__(embedder, detector, gallery, quality, gate)
        self.calibration = calibration
        if threshold is not None:
            if calibration is not None:
                raise ConfigError(
                    "this model is calibrated: choose a false-match rate (fmr=, --fmr), not a bare threshold"
                )
            if not -1.0 <= threshold <= 1.0:
                raise ConfigError(f"a threshold is a cosine score between -1 and 1, got {threshold:g}")
        self.uncalibrated_threshold = threshold

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
        threshold: float | None = None,
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
        ``threshold``: only for a model without calibration (see the class docstring).

        ``quality``: ``auto``, ``norm``, ``estimate`` or None (:class:`~facelearn.deploy.quality.QualityScorer`);
        ``gate``: the enroll gate (default :class:`~facelearn.deploy.quality.QualityGate`)."""
        embedder, calibration = load_embedder(model, architecture, backend, **backend_options)
        own = getattr(embedder, "detector", None)
        detector = own or (build_detector(detector, weights) if detector else None)
        calibration = Calibration.from_dict(calibration) if calibration else None
        recognizer = cls(embedder, detector, calibration, threshold=threshold, quality=quality, gate=gate)
        if gallery is not None:
            recognizer.open_gallery(gallery, store, index)
        return recognizer

    # ------------------------------------------------------------------ decisions (against the model)
    def threshold(self, fmr: float = DEFAULT_FMR) -> float:
        if self.uncalibrated_threshold is not None:
            return self.uncalibrated_threshold
        if self.calibration is None:
            raise DataError(
                "this model has no calibration, so no threshold has a known false-match rate: run "
                "facelearn calibrate MODEL --photos DIR (identity folders of photos) first, or give an explicit, "
                "uncalibrated threshold (--threshold, threshold=)"
            )
        return self.calibration.threshold(fmr)

    def decided_at(self, fmr: float) -> dict:
        """What a decision was taken at: the FMR, or ``None`` and ``calibrated: False`` for a bare threshold."""
        calibrated = self.uncalibrated_threshold is None
        return {"fmr": fmr if calibrated else None, "calibrated": calibrated}

    def verify(self, a, b, fmr: float = DEFAULT_FMR, aligned: bool = False, channel_order: str = "rgb") -> dict:
        """Same person or not, at a false-match rate: score, decision, threshold, FMR, model, and the two
        faces' qualities."""
        threshold = self.threshold(fmr)
        (first, second), qualities = self.embed_with_quality([a, b], aligned, channel_order=channel_order)
        for name, embedding in (("first", first), ("second", second)):
            if np.isnan(embedding).any():
                raise NoFaceFound(f"no face found in the {name} image")
        return {**self.verdict(float(first @ second), fmr, threshold), "qualities": [q.quality for q in qualities]}

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
        return verdict(score, threshold, self.decided_at(fmr), self.model_id)

    # ------------------------------------------------------------------ identification (against the gallery)
    def identify(
        self,
        image,
        k: int = 5,
        fmr: float = DEFAULT_FMR,
        aligned: bool = False,
        channel_order: str = "rgb",
        fpir: float | None = None,
        fusion: str | None = None,
        as_one_person: bool = False,
    ) -> list[dict]:
        """For every face in the photo, largest first (or the one aligned face): the k best subjects and the
        decision — the best subject if it scores above the threshold at ``fmr`` (or at ``fpir``, from the
        gallery's identification calibration), else ``None`` (unknown) — with the face's box, landmarks and
        detection score. :class:`NoFaceFound` when the photo has none.

        ``as_one_person``: ``image`` is a list of images of one person (a burst, video frames); the
        largest face of each is embedded, they are fused into one probe (:func:`facelearn.deploy.fusion.fuse`,
        equal weights) and one answer comes back, with ``images`` (how many were used) and ``no_face``."""
        if as_one_person:
            return [self.identify_person(image, k, fmr, aligned, channel_order, fpir, fusion)]
        image = as_rgb(image, channel_order)
        if aligned:
            return self.identify_faces([image], k, fmr, fpir, fusion)
        faces, found = self.aligned_faces(image)
        if not faces:
            raise NoFaceFound("no face found in the image")
        order = np.argsort(-found.areas(), kind="stable")
        results = self.identify_faces(
            [faces[i] for i in order],
            k,
            fmr,
            fpir,
            fusion,
            landmarks=[found.landmarks[i] for i in order],
            photos=[image] * len(order),
            boxes=[found.boxes[i] for i in order],
        )
        return [
            {**result, **face_fields(found, i), "quality": result["quality"]}
            for result, i in zip(results, order, strict=True)
        ]

    def identify_person(self, images: list, k, fmr, aligned, channel_order, fpir, fusion) -> dict:
        if isinstance(images, (str, Path, bytes, np.ndarray)) or not len(images):
            raise DataError("as_one_person takes a list of images of one person (a burst, video frames)")
        embeddings = self.embed(list(images), aligned, channel_order=channel_order)
        usable = ~np.isnan(embeddings).any(1)
        if not usable.any():
            raise DataError(f"no face found in any of the {len(images)} images: nothing to identify")
        (answer,), _ = self.search(fuse(embeddings[usable])[None], k, fmr, None, fpir, fusion)
        return {**answer, "images": int(usable.sum()), "no_face": [int(i) for i in np.flatnonzero(~usable)]}

    def identify_faces(
        self,
        faces: list[np.ndarray],
        k: int = 5,
        fmr: float = DEFAULT_FMR,
        fpir: float | None = None,
        fusion: str | None = None,
        landmarks=None,
        photos=None,
        boxes=None,
    ) -> list[dict]:
        """:meth:`identify` for a batch of aligned faces, one result each (with its quality; ``landmarks``,
        ``photos`` and ``boxes``: where each face came from, for the quality's size and pose)."""
        faces = [self.check_aligned(face) for face in faces]
        embeddings, norms = self.embed_faces(faces, 64)
        results = self.search(embeddings, k, fmr, None, fpir, fusion)[0]
        qualities = self.quality.score(faces, embeddings, norms, landmarks, photos, boxes)
        for result, quality in zip(results, qualities, strict=True):
            result["quality"] = quality.quality
        return results

    def search(
        self,
        embeddings: np.ndarray,
        k: int = 5,
        fmr: float = DEFAULT_FMR,
        faces: list[dict] | None = None,
        fpir: float | None = None,
        fusion: str | None = None,
    ) -> tuple[list[dict], int]:
        """The open-set decision for each embedding against the gallery, and the gallery's size: the
        k best subjects, and the best one if it scores above the threshold (at ``fpir`` when given, else
        at ``fmr``; else unknown). ``faces``: each embedding's face fields (:func:`face_fields`), put into
        its answer."""
        rule = self.identification_rule(fmr, fpir, fusion)
        found = self._require_gallery().search(embeddings, k, fusion=rule["fusion"]) if len(embeddings) else []
        faces = faces if faces is not None else [face_fields(None)] * len(found)
        answers = [decision(c, rule, face, self.model_id) for c, face in zip(found, faces, strict=True)]
        return answers, rule["gallery_size"]

    def identification_rule(self, fmr: float | None, fpir: float | None, fusion: str | None) -> dict:
        """What an identification answer's threshold holds for: ``threshold``, ``fmr`` or ``fpir``, ``fusion``,
        ``gallery_size`` (now), ``calibrated_gallery_size`` and ``warning`` (None unless the gallery has grown
        past what its FPIR calibration holds for)."""
        return for_gallery(self.decision_rule(fmr, fpir, fusion), len(self._require_gallery()))

    def decision_rule(self, fmr: float | None, fpir: float | None, fusion: str | None) -> dict:
        """The threshold and what it holds for: at ``fpir`` from the gallery's identification calibration
        (:func:`~facelearn.deploy.decisions.fpir_rule`), else at ``fmr`` from the model's 1:1 calibration."""
        if fpir is not None:
            return fpir_rule(self._require_gallery().identification_calibration(), fpir, fusion)
        check_best_fusion(fusion)
        fmr = DEFAULT_FMR if fmr is None else fmr
        return fmr_rule(self.threshold(fmr), self.decided_at(fmr))

    def calibrate_identification(
        self,
        strangers: dict[str, list],
        fpirs=FPIRS,
        fusion: str = DEFAULT_FUSION,
        aligned: bool = False,
        source: str = "",
    ) -> OpenSetCalibration:
        """Thresholds at ``fpirs`` for this gallery at its size, from non-mated searches: every photo of
        ``strangers`` (name → images of people who are not enrolled) searched against it; stored in the
        gallery. An FPIR the photos cannot support is :class:`UnsupportedFPIR`, checked before any photo is
        embedded and again after faceless photos are left out; nothing is stored then."""
        gallery = self._require_gallery()
        fpirs, fusion = check_fpirs(fpirs), check_fusion(fusion)
        source = source or f"{sum(map(len, strangers.values())):,} photos of {len(strangers):,} people"
        count = sum(len(images) for images in strangers.values())
        short = [fpir for fpir in fpirs if count < searches_needed(fpir)]
        if short:
            raise UnsupportedFPIR(unsupported_fpir(short, count, len(strangers), source))
        enrolled = {entry["subject"] for entry in gallery.subjects()}
        clash = sorted(name for name in strangers if lookup_id(name) in enrolled)
        if clash:
            raise DataError(
                f"{len(clash)} of the strangers are enrolled (first: {clash[0]!r}): non-mated searches must be of "
                "people not in the gallery; leave them out"
            )
        people = [name for name, images in strangers.items() for _ in images]
        images = [image for listed in strangers.values() for image in listed]
        chunks = [self.embed(images[start : start + 64], aligned) for start in range(0, len(images), 64)]
        embeddings = np.concatenate(chunks)
        usable = ~np.isnan(embeddings).any(1)
        if not usable.all():
            source += f"; {int((~usable).sum()):,} photos without a face left out"
        searched = {people[i] for i in np.flatnonzero(usable)}
        return self.calibrate_identification_embeddings(embeddings[usable], len(searched), fpirs, fusion, source)

    def calibrate_identification_embeddings(
        self, embeddings: np.ndarray, people: int, fpirs=FPIRS, fusion: str = DEFAULT_FUSION, source: str = ""
    ) -> OpenSetCalibration:
        """:meth:`calibrate_identification` from the strangers' embeddings (one search each)."""
        gallery = self._require_gallery()
        size = len(gallery)
        if size == 0:
            raise DataError("the gallery is empty: enroll people before calibrating its identification threshold")
        found = gallery.search(embeddings, 1, fusion=check_fusion(fusion)) if len(embeddings) else []
        best = np.array([hits[0][1] for hits in found], np.float64)
        calibration = calibrate_open_set(best, fpirs, size, self.model_id, fusion, source, people)
        gallery.store_identification_calibration(calibration.to_dict())
        return calibration
