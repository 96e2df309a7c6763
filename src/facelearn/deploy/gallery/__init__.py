"""Gallery stores by name: SQLite (the default, one file) and Milvus (milvus-lite or a cluster).

    gallery = open_gallery("people.db", model_id, dim)               # SQLite
    gallery = open_gallery("http://milvus:19530", model_id, dim)     # Milvus, chosen by the URI

A new store subclasses :class:`GalleryStore` in its own module and registers itself here with
``@STORES.register(name)``; the CLI's and the service's choices are read from :data:`STORES`. The SQLite
store's in-memory index is built by its kind: :func:`build_index` (exact: :mod:`.index`; approximate:
:mod:`.approximate_index`).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ...registry import Registry
from .approximate_index import ApproximateIndex, FaissIndex
from .base import DuplicateSubject, GalleryError, GalleryStore, UnknownFace, UnknownSubject, face_number
from .index import ExactIndex, SubjectIndex

STORES: Registry[GalleryStore] = Registry("gallery store")
URI_PREFIXES = {"milvus": ("http://", "https://", "tcp://")}  # a location that names its store


def store_for(location: str | Path) -> str:
    """The store a location means when none is named: by URI prefix, SQLite otherwise."""
    return next((name for name, prefixes in URI_PREFIXES.items() if str(location).startswith(prefixes)), "sqlite")


def open_gallery(
    location: str | Path, model_id: str | None, dim: int | None, store: str | None = None, index: str = "exact"
) -> GalleryStore:
    """``store`` None: chosen by :func:`store_for`; ``index``: the SQLite gallery's in-memory index (Milvus
    indexes on its side)."""
    return STORES.get(store or store_for(location))(str(location), model_id, dim, index=index)


def build_index(dim: int, kind: str = "exact") -> SubjectIndex:
    """``exact`` (float32), ``hnsw`` or ``ivf`` (approximate, re-scored exactly; trained on their first add),
    or a faiss factory string that needs no training (``SQfp16``, ``HNSW32``)."""
    if kind == "exact":
        return ExactIndex(dim)
    if kind in ("hnsw", "ivf"):
        return ApproximateIndex(dim, kind)
    if kind.startswith("IVF"):
        raise DataError(
            f"index {kind!r} must be trained before use; a gallery takes exact, hnsw, ivf, SQfp16 or HNSW32"
        )
    return FaissIndex(dim, kind)


from . import milvus, sqlite  # noqa: E402,F401  (register the stores)

__all__ = [
    "STORES",
    "DuplicateSubject",
    "GalleryError",
    "GalleryStore",
    "UnknownFace",
    "UnknownSubject",
    "build_index",
    "face_number",
    "open_gallery",
    "store_for",
]
