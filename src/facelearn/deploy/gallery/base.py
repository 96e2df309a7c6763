"""What every gallery store does, and the errors it raises: the contract the Recognizer and the service use.

A store keeps subjects (a name, metadata, and the embeddings of their faces) made by one model, and
answers searches: per query, the best subjects, each scoring its best face. A new store is one file
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
        self, queries: np.ndarray, k: int = 5, where: dict | None = None, subject: str | None = None
    ) -> list[list[tuple[str, float]]]:
        """Per query the ``k`` best ``(subject, score)``, optionally only subjects whose metadata has every
        ``where`` key with that value, or only ``subject``."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of subjects."""

    @abstractmethod
    def close(self) -> None: ...
