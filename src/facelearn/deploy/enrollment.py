"""Enrollment: a :class:`~facelearn.deploy.face_pipeline.FacePipeline` with a gallery — enroll people's photos
through the quality gate, list them, and delete a person or one face from every store.

A subject's name is its id (:mod:`facelearn.deploy.subject_ids`); enroll refuses the faces below the
:class:`~facelearn.deploy.quality.QualityGate`, saying why, and lists the photos without a face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .face_pipeline import FacePipeline
from .gallery import UnknownSubject, open_gallery
from .quality import QualityGate, QualityRefused, refusal_message
from .subject_ids import lookup_id, subject_id


class Enroller(FacePipeline):
    def __init__(self, embedder, detector=None, gallery=None, quality: str | None = "auto", gate=None):
        """``gate``: the enroll gate (default :class:`~facelearn.deploy.quality.QualityGate`)."""
        super().__init__(embedder, detector, quality)
        self.gallery = gallery
        self.gate = gate or QualityGate()

    def open_gallery(self, location: str | Path, store: str | None = None, index: str = "exact"):
        """An SQLite file (default), or Milvus (``store="milvus"``: a milvus-lite file or a server URI)."""
        self.gallery = open_gallery(location, self.model_id, self.embedder.embedding_size, store, index)
        return self.gallery

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
