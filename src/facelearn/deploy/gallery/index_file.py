"""A built index saved beside its gallery (:class:`SavedIndex`: ``people.db.<kind>.index``), trusted only when
whole and fresh.

Layout: a magic line, the header's length (8 bytes, little-endian), the header (JSON: what the index
was built from, and each array's name, dtype, shape and offset), the arrays (each at a 64-byte
boundary), and the SHA-256 of everything before it. :func:`read_index_file` returns ``None`` —
never a partial or foreign index — when the file is missing, cut short, altered (the digest), or
built from something else than ``expected`` (the gallery's model, embedding size, index kind and
generation of its faces). It is written with :func:`facelearn.io.write_atomic`: the old file or
the new one, never half of one. Nothing in it is a pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from ...io import write_atomic

log = logging.getLogger("facelearn.gallery")
MAGIC = b"facelearn-index 1\n"
INDEX_SUFFIX = ".index"
ALIGN = 64


def write_index_file(path: Path, identity: dict, arrays: dict[str, np.ndarray]) -> None:
    entries, offset = [], 0
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        offset = -(-offset // ALIGN) * ALIGN
        entries.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset += array.nbytes
    header = json.dumps({"identity": identity, "arrays": entries}).encode()

    def write(handle) -> None:
        digest = hashlib.sha256()

        def put(data) -> None:
            digest.update(data)
            handle.write(data)

        put(MAGIC)
        put(len(header).to_bytes(8, "little"))
        put(header)
        written = 0
        for entry, array in zip(entries, arrays.values(), strict=True):
            put(b"\0" * (entry["offset"] - written))
            put(memoryview(np.ascontiguousarray(array)).cast("B"))
            written = entry["offset"] + array.nbytes
        handle.write(digest.digest())

    write_atomic(path, write)


def read_index_file(path: Path, expected: dict) -> dict[str, np.ndarray] | None:
    """The arrays, or None (with the reason in the log) when the file cannot be trusted for ``expected``."""
    if not path.is_file():
        return None
    try:
        data = bytearray(path.stat().st_size)
        with open(path, "rb") as handle:
            if handle.readinto(data) != len(data):
                raise ValueError("short read")
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8 + 32:
            raise ValueError("not an index file")
        body = memoryview(data)[:-32]
        if hashlib.sha256(body).digest() != bytes(data[-32:]):
            raise ValueError("its digest does not match (cut short or altered)")
        start = len(MAGIC) + 8
        length = int.from_bytes(data[len(MAGIC) : start], "little")
        header = json.loads(bytes(data[start : start + length]))
        if header["identity"] != expected:
            log.info("%s was built from another state of the gallery: rebuilding the index", path)
            return None
        base = start + length
        arrays = {}
        for entry in header["arrays"]:
            dtype = np.dtype(entry["dtype"])
            count = int(np.prod(entry["shape"], dtype=np.int64))
            end = base + entry["offset"] + count * dtype.itemsize
            if end > len(body):
                raise ValueError("an array runs past the end")
            array = np.frombuffer(body, dtype, count, base + entry["offset"]).reshape(entry["shape"])
            arrays[entry["name"]] = array
        return arrays
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("%s cannot be trusted (%s): rebuilding the index", path, error)
        return None


class SavedIndex:
    """A gallery's built index, saved beside it as ``<gallery>.<kind>.index``: read back only when it matches
    the gallery (``identity``: model, embedding size, kind, the faces' generation; and every row's face id)."""

    def __init__(self, gallery: Path, kind: str):
        self.gallery, self.kind = gallery, kind

    @property
    def path(self) -> Path:
        return self.gallery.with_name(f"{self.gallery.name}.{self.kind}{INDEX_SUFFIX}")

    def restore(self, index, identity: dict, face_ids: np.ndarray, names: list[str]) -> bool:
        """Fill ``index`` (new, empty) from the saved file; False when there is none to trust."""
        state = read_index_file(self.path, identity)
        if state is None or not np.array_equal(state.pop("face_ids", None), face_ids):
            return False
        try:
            index.restore(names, state, face_ids)
        except (RuntimeError, ValueError, KeyError) as error:  # a faiss blob that does not read back
            log.warning("%s cannot be trusted (%s): rebuilding the index", self.path, error)
            return False
        return True

    def save(self, index, identity: dict, face_ids: np.ndarray) -> bool:
        """Write it (atomically); False when the folder will not take it (the gallery works, it opens slower)."""
        try:
            write_index_file(self.path, identity, {"face_ids": face_ids, **index.state()})
        except OSError as error:
            log.warning("could not save the index beside %s (%s); it is rebuilt at the next open", self.gallery, error)
            return False
        return True

    def remove_all(self) -> None:
        """Every kind's saved index of this gallery (a delete: no copy of a deleted face outlives it on disk)."""
        for path in self.gallery.parent.glob(f"{self.gallery.name}.*{INDEX_SUFFIX}"):
            path.unlink(missing_ok=True)
