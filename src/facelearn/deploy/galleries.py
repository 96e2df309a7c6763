"""Which gallery store a location means: an SQLite file by default, Milvus by URI or by request."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

STORES = ("sqlite", "milvus")


def open_gallery(
    location: str | Path, model_id: str | None, dim: int | None, store: str | None = None, index: str = "exact"
):
    """``store`` None: Milvus for an ``http(s)://`` or ``tcp://`` URI, SQLite otherwise; ``index``: the
    SQLite gallery's in-memory index (Milvus indexes on its side)."""
    location = str(location)
    if store is None:
        store = "milvus" if location.startswith(("http://", "https://", "tcp://")) else "sqlite"
    if store == "sqlite":
        from .sqlite_gallery import SQLiteGallery

        return SQLiteGallery(location, model_id, dim, index)
    if store == "milvus":
        from .milvus_gallery import MilvusGallery

        return MilvusGallery(location, model_id, dim)
    raise ConfigError(f"unknown gallery store {store!r}; valid: {', '.join(STORES)}")
