"""What every gallery store does, and the errors it raises: the contract the Recognizer and the service use.

A store keeps subjects (a name, metadata, and the embeddings of their faces) made by one model, and
answers searches: per query, the best subjects, each scoring its best face (``fusion="best"``) or
its template, the quality-weighted mean of its faces (``fusion="mean"``, :mod:`facelearn.deploy.fusion`).
It also keeps the gallery's identification calibration (thresholds at named FPIRs for its size:
:mod:`facelearn.deploy.open_set`), since that depends on the gallery and not only on the model.

Every face has an id, a string that names it for as long as it is enrolled and is never given to
another face afterwards (SQLite: the face's row number, never reused; Milvus: its primary key — a
64-bit number, too large for a JavaScript number, hence text). A subject is its faces: deleting its
last face deletes the subject, its name and metadata with it (Milvus could not keep a subject
without a face, and a name left behind is personal data nobody asked to keep); deleting one face
makes the subject's template again from the faces kept. A new store is one file
with a subclass registered in :data:`facelearn.deploy.gallery.STORES` and one test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ...errors import FacelearnError


class GalleryError(FacelearnError):
    """A gallery used in a way it cannot be: another model, an unknown or duplicate subject."""


class DuplicateSubject(GalleryError):
    """Enrolling a subject that is enrolled already (without ``append``)."""


class UnknownSubject(GalleryError):
    """A subject that is not in the gallery."""


class UnknownFace(GalleryError):
    """A face id that is not one of the subject's faces."""


def face_number(face_id: str | int) -> int:
    """A face id as the number the stores keep, or :class:`UnknownFace` for text that names no face."""
    text = str(face_id).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise UnknownFace(f"{str(face_id)[:40]!r} is not a face id (a face id is a number, as listed with the faces)")
    return int(text)


class GalleryStore(ABC):
    """One gallery of one model's embeddings. ``model_id`` / ``dim`` None opens an existing gallery
    for listing and deleting only (it names its model itself)."""

    model_id: str
    dim: int

    @abstractmethod
    def enroll(
        self,
        subject: str,
        embeddings: np.ndarray,
        qualities: list[float] | None = None,
        sources: list[str] | None = None,
        metadata: dict | None = None,
        append: bool = False,
    ) -> int:
        """Add a subject's faces, all or none (``append``: to an existing subject); returns its face count.
        Raises :class:`DuplicateSubject` for an enrolled subject without ``append``."""

    def add_faces(
        self,
        subjects: list[str],
        embeddings: np.ndarray,
        qualities: list[float] | None = None,
        sources: list[str] | None = None,
    ) -> int:
        """Faces of many subjects in one call, each added to its subject (created when new): bulk enroll's
        batches. This default enrolls subject by subject; a store overrides it with one write."""
        rows: dict[str, list[int]] = {}
        for row, subject in enumerate(subjects):
            rows.setdefault(subject, []).append(row)
        for subject, taken in rows.items():
            self.enroll(
                subject,
                embeddings[taken],
                [qualities[i] for i in taken] if qualities else None,
                [sources[i] for i in taken] if sources else None,
                append=True,
            )
        return len(subjects)

    def sources(self) -> set[str]:
        """The ``source`` of every enrolled face that has one (what a rerun of bulk enroll skips)."""
        raise GalleryError(f"{type(self).__name__} cannot list where its faces came from: bulk enroll needs it")

    @abstractmethod
    def delete(self, subject: str) -> int:
        """Remove a subject and every embedding of it; returns the faces removed. Raises :class:`UnknownSubject`."""

    @abstractmethod
    def faces(self, subject: str) -> list[dict]:
        """``[{"face_id", "quality", "source"}]`` of a subject's faces in the order enrolled (quality and
        source None where the store has none). Raises :class:`UnknownSubject`."""

    @abstractmethod
    def delete_face(self, subject: str, face_id: str) -> int:
        """Remove one face of a subject; returns the faces it has left — 0: the subject was its last face, and
        the subject is deleted too. Raises :class:`UnknownSubject`, or :class:`UnknownFace` for an id that is
        not one of the subject's faces."""

    def erase_face(self, subject: str, face_id: str | int) -> dict:
        """:meth:`delete_face`, then :meth:`checkpoint`: the answer the API, the CLI and Python give
        (``faces`` left, ``subject_deleted``, and ``erased``/``erasure`` as for a deleted subject)."""
        face = str(face_number(face_id))
        left = self.delete_face(subject, face)
        erased = self.checkpoint()
        return {
            "subject": subject,
            "deleted_face": face,
            "faces": left,
            "subject_deleted": left == 0,
            "erased": erased,
            "erasure": self.erasure,
        }

    @abstractmethod
    def checkpoint(self) -> bool:
        """Make deletes final in the store's files (no copy of a deleted embedding left behind) without
        waiting on readers: True when done, False when that erasure is pending (the store finishes it
        later; :attr:`erasure` says when). A delete is committed either way."""

    @property
    def erasure(self) -> str:
        """``done``, or in words what a pending erasure waits for."""
        return "done"

    @abstractmethod
    def subjects(self) -> list[dict]:
        """``[{"subject", "metadata", "faces", "qualities"}]`` sorted by name; ``qualities``: each face's quality
        in [0, 1] as enrolled (None where the store or the enroll kept none)."""

    @abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int = 5,
        where: dict | None = None,
        subject: str | None = None,
        fusion: str = "best",
    ) -> list[list[tuple[str, float]]]:
        """Per query the ``k`` best ``(subject, score)``, optionally only subjects whose metadata has every
        ``where`` key with that value, or only ``subject``; a subject scores its best face (``fusion="best"``)
        or its template (``"mean"``)."""

    def identification_calibration(self) -> dict | None:
        """The stored identification calibration (:class:`facelearn.deploy.open_set.OpenSetCalibration`'s
        dict), or None."""
        return None

    def store_identification_calibration(self, calibration: dict) -> None:
        """Replace the stored identification calibration, in one write."""
        raise GalleryError(f"{type(self).__name__} cannot keep an identification calibration")

    @abstractmethod
    def __len__(self) -> int:
        """The number of subjects."""

    @abstractmethod
    def close(self) -> None: ...
