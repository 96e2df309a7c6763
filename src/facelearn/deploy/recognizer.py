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

An image is a path, encoded bytes, a PIL image or an (H, W, 3) uint8 array, RGB unless
``channel_order="bgr"`` (what ``cv2.imread`` returns): :func:`facelearn.deploy.inputs.as_rgb`.

Photos go through the same detector and :func:`facelearn.align.align_face` as training data, or
through the model's own detector and alignment where it brings them (``Recognizer.load("dlib")``);
faces that are already aligned at the model's input size can be passed with ``aligned=True``.
Decisions are taken at a named false-match rate from the model's calibration, or at a named
false-positive identification rate from the gallery's own (:mod:`facelearn.deploy.open_set`), never
at a bare cosine — except where the caller gives a model without calibration data an explicit
``threshold``: then every answer says ``"fmr": None, "calibrated": False`` (an uncalibrated
threshold, its error rates unknown). Every identification answer says which rate, fusion and
gallery size it holds for. A photo in which no face is found is an error (:class:`NoFaceFound`) for
``identify`` and ``verify``, as it is over REST (422 ``no_face``); ``enroll`` lists such photos and
enrolls the rest; ``embed`` gives them NaN rows. Each face's answer carries its box, five landmarks,
detection score and ``quality`` in [0, 1] (:mod:`facelearn.deploy.quality`: the embedding norm of a
MagFace/AdaFace model, else a model-agnostic estimate); enroll refuses the faces below the
:class:`~facelearn.deploy.quality.QualityGate`, saying why. Every method may be called from several
threads at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..align import align_face, build_detector, choose_face
from ..align.detector_pool import DetectorPool
from ..data.images import fit_size
from ..errors import ConfigError, DataError
from .answers import face_fields
from .calibration import DEFAULT_FMR, Calibration
from .fusion import DEFAULT_FUSION, check_fusion, fuse
from .gallery import UnknownSubject, open_gallery
from .inputs import as_rgb
from .loading import load_embedder
from .open_set import FPIRS, OpenSetCalibration, UnsupportedFPIR, calibrate_open_set, check_fpirs, searches_needed
from .open_set import unsupported_message as unsupported_fpir
from .quality import QualityGate, QualityRefused, QualityScorer, refusal_message
from .subject_ids import lookup_id, subject_id


class NoFaceFound(DataError):
    """No face was found in a photo that a question is about (identify, verify)."""


class Recognizer:
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
        self.embedder, self.detector, self.calibration, self.gallery = embedder, detector, calibration, gallery
        self.input_size = embedder.input_size
        self.quality = QualityScorer(embedder, quality)
        self.gate = gate or QualityGate()
        if threshold is not None:
            if calibration is not None:
                raise ConfigError(
                    "this model is calibrated: choose a false-match rate (fmr=, --fmr), not a bare threshold"
                )
            if not -1.0 <= threshold <= 1.0:
                raise ConfigError(f"a threshold is a cosine score between -1 and 1, got {threshold:g}")
        self.uncalibrated_threshold = threshold
        self.detectors = DetectorPool(detector) if detector is not None else None

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

    # ------------------------------------------------------------------ decisions
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
        return [self.decision(c, rule, face) for c, face in zip(found, faces, strict=True)], rule["gallery_size"]

    def identification_rule(self, fmr: float | None, fpir: float | None, fusion: str | None) -> dict:
        """What an identification answer's threshold holds for: ``threshold``, ``fmr`` or ``fpir``, ``fusion``,
        ``gallery_size`` (now), ``calibrated_gallery_size`` and ``warning`` (None unless the gallery has grown
        past what its FPIR calibration holds for)."""
        rule = self.decision_rule(fmr, fpir, fusion)
        rule["gallery_size"] = size = len(self._require_gallery())
        calibration = rule.pop("calibration")
        rule["warning"] = calibration.warning(size) if calibration else None
        return rule

    def decision_rule(self, fmr: float | None, fpir: float | None, fusion: str | None) -> dict:
        """The threshold and what it holds for: at ``fpir`` from the gallery's identification calibration
        (with the fusion it was measured with), else at ``fmr`` from the model's 1:1 calibration (best face:
        that threshold was measured on pairs of single faces)."""
        if fpir is None:
            if check_fusion(fusion or "best") != "best":
                raise DataError(
                    "a fused template's scores have no 1:1 (FMR) threshold: identify at an FPIR (fpir=, after "
                    "facelearn calibrate-gallery) or with fusion 'best'"
                )
            fmr = DEFAULT_FMR if fmr is None else fmr
            return {
                "threshold": self.threshold(fmr),
                **self.decided_at(fmr),
                "fpir": None,
                "fusion": "best",
                "calibrated_gallery_size": None,
                "calibration": None,
            }
        stored = self._require_gallery().identification_calibration()
        if stored is None:
            raise DataError(
                "this gallery has no identification calibration, so no threshold has a known FPIR: run facelearn "
                "calibrate-gallery GALLERY --model MODEL --strangers DIR (photos of people who are not enrolled)"
            )
        calibration = OpenSetCalibration.from_dict(stored)
        if fusion is not None and check_fusion(fusion) != calibration.fusion:
            raise DataError(
                f"this gallery's identification threshold was calibrated with fusion {calibration.fusion!r}: "
                f"identify with it, or calibrate again with --fusion {fusion}"
            )
        return {
            "threshold": calibration.threshold(fpir),
            "fmr": None,
            "calibrated": True,
            "fpir": fpir,
            "fusion": calibration.fusion,
            "calibrated_gallery_size": calibration.gallery_size,
            "calibration": calibration,
        }

    def decision(self, candidates: list[tuple[str, float]], rule: dict, face: dict | None = None) -> dict:
        """One face's answer: its candidates, the best one if it scores above the threshold (else None), and
        what the threshold holds for (FMR or FPIR, fusion, gallery size, and a warning when stale)."""
        best = candidates[0] if candidates and candidates[0][1] > rule["threshold"] else None
        return {
            **(face or face_fields(None)),
            "candidates": [{"subject": s, "score": score} for s, score in candidates],
            "subject": best[0] if best else None,  # None: unknown at this FMR / FPIR
            "threshold": rule["threshold"],
            "fmr": rule["fmr"],
            "calibrated": rule["calibrated"],
            "fpir": rule["fpir"],
            "fusion": rule["fusion"],
            "gallery_size": rule["gallery_size"],
            "calibrated_gallery_size": rule["calibrated_gallery_size"],
            "warning": rule["warning"],
            "model": self.model_id,
        }

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
        return {
            "score": score,
            "same": score > threshold,
            "threshold": threshold,
            **self.decided_at(fmr),
            "model": self.model_id,
        }

    def add(
        self,
        subject: str,
        embeddings: np.ndarray,
        qualities=None,
        metadata: dict | None = None,
        append: bool = False,
        sources: list[str] | None = None,
    ) -> int:
        """Store a subject's embeddings (all or none), with where each came from (``sources``, e.g. the file
        name); returns the subject's face count."""
        gallery = self._require_gallery()
        return gallery.enroll(subject_id(subject), embeddings, qualities, sources, metadata, append)

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

    def faces(self, subject: str) -> list[dict]:
        """A subject's faces, in the order enrolled: ``[{"face_id", "quality", "source"}]``."""
        return self._require_gallery().faces(lookup_id(subject))

    def delete_face(self, subject: str, face_id: str | int) -> dict:
        """Remove one face of a subject, erased from the store's files as :meth:`erase` does. Its last face
        takes the subject with it (name and metadata): ``subject_deleted`` says so, ``faces`` is what is left."""
        return self._require_gallery().erase_face(lookup_id(subject), face_id)
