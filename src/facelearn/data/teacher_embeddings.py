"""A black-box teacher's answers, precomputed: one embedding per training image, keyed by its path.

``facelearn teacher-embed`` writes the file from the original photos with the teacher's own
preprocessing; ``distill.teacher_embeddings`` reads it. The file is a NumPy ``.npz`` (no pickle):
``keys`` (``<identity>/<image name without extension>``, so a photo and its aligned copy from
``facelearn prepare`` share a key), ``embeddings`` (float32, one row per key), ``missing`` (the
images where the teacher found no face: listed, not fatal) and ``meta`` (JSON: the teacher's
identity and preprocessing, the photo folder it was made from).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import write_bytes_atomic

FORMAT = "facelearn-teacher-embeddings/1"


def image_key(path: Path, root: Path) -> str:
    return Path(path).relative_to(root).with_suffix("").as_posix()


@dataclass
class TeacherEmbeddings:
    meta: dict
    keys: list[str] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def embedding_size(self) -> int | None:
        return len(self.rows[0]) if self.rows else None

    def add(self, key: str, embedding: np.ndarray | None) -> None:
        """One image's answer (None: no face); a teacher whose embedding size changes is refused."""
        if embedding is None:
            self.missing.append(key)
            return
        embedding = np.asarray(embedding, np.float32).ravel()
        if self.rows and len(embedding) != self.embedding_size:
            raise DataError(
                f"the teacher's embedding size changed mid-file: {self.embedding_size} before, {len(embedding)} "
                f"for {key}; one file holds one teacher"
            )
        self.keys.append(key)
        self.rows.append(embedding)

    def done(self) -> set[str]:
        return set(self.keys) | set(self.missing)

    def save(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        size = self.embedding_size or 0
        np.savez(
            buffer,
            format=np.array(FORMAT),
            meta=np.array(json.dumps(self.meta)),
            keys=np.array(self.keys, dtype=str),
            embeddings=np.stack(self.rows) if self.rows else np.zeros((0, size), np.float32),
            missing=np.array(self.missing, dtype=str),
        )
        write_bytes_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> TeacherEmbeddings:
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise DataError(f"{path} is a {data['format']} file, not {FORMAT}")
                loaded = cls(json.loads(str(data["meta"])), [str(k) for k in data["keys"]])
                loaded.rows = list(data["embeddings"].astype(np.float32))
                loaded.missing = [str(k) for k in data["missing"]]
        except (OSError, KeyError, ValueError) as error:
            raise DataError(
                f"{path} is not a teacher-embeddings file written by facelearn teacher-embed ({error})"
            ) from None
        return loaded

    def table_for(self, wanted: list[str], source_name: str) -> np.ndarray:
        """(len(wanted), D) rows for a dataset's image keys, in order; NaN rows where the teacher found no
        face. Images the file does not know are an error that counts and names them."""
        position = {key: i for i, key in enumerate(self.keys)}
        missing = set(self.missing)
        unknown = [key for key in wanted if key not in position and key not in missing]
        if unknown:
            made_from = self.meta.get("photos", "?")
            hint = (
                f" — none match: the file was made from {made_from}, for another data root?"
                if len(unknown) == len(wanted)
                else ""
            )
            raise DataError(
                f"{len(unknown):,} of the {len(wanted):,} images of {source_name} have no teacher embedding "
                f"(first: {', '.join(unknown[:5])}){hint}; run facelearn teacher-embed on the photos they came from"
            )
        table = np.full((len(wanted), self.embedding_size or 0), np.nan, np.float32)
        for row, key in enumerate(wanted):
            if key in position:
                table[row] = self.rows[position[key]]
        return table
