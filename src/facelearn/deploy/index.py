"""An exact in-memory face index: unit float32 rows, each with its subject; search by subject.

A subject scores its best face. The top-k subjects come from the faces in descending score order
(the best face of each new subject), so only the best faces are ever sorted. Queries are scored in
chunks, so a batch of queries against a million faces never holds the whole score matrix.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

SCORE_ELEMENTS = 2**25  # scores per chunk of queries (128 MB of float32)


class ExactIndex:
    def __init__(self, dim: int):
        self.dim = dim
        self.vectors = np.empty((0, dim), np.float32)
        self.rows = 0
        self.subject_of_row = np.empty(0, np.int64)
        self.names: list[str] = []  # subject number → name
        self.numbers: dict[str, int] = {}

    def check(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, dim) finite non-zero float32 rows, normalised."""
        embeddings = np.atleast_2d(np.asarray(embeddings, np.float32))
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise DataError(f"expected {self.dim}-d embeddings, got shape {embeddings.shape}")
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        if not np.isfinite(embeddings).all() or (norms == 0).any():
            raise DataError("embeddings must be finite and non-zero (a NaN or empty embedding was given)")
        return embeddings / norms

    def add(self, subjects: list[str], embeddings: np.ndarray) -> None:
        embeddings = self.check(embeddings) if len(subjects) else np.empty((0, self.dim), np.float32)
        if self.rows + len(embeddings) > len(self.vectors):  # grow by doubling: amortised O(1) per face
            grown = np.empty((max(2 * len(self.vectors), self.rows + len(embeddings), 1024), self.dim), np.float32)
            grown[: self.rows] = self.vectors[: self.rows]
            self.vectors = grown
            self.subject_of_row = np.resize(self.subject_of_row, len(grown))
        for name in subjects:
            if name not in self.numbers:
                self.numbers[name] = len(self.names)
                self.names.append(name)
        self.vectors[self.rows : self.rows + len(embeddings)] = embeddings
        self.subject_of_row[self.rows : self.rows + len(embeddings)] = [self.numbers[n] for n in subjects]
        self.rows += len(embeddings)

    def remove(self, subject: str) -> None:
        number = self.numbers.get(subject)
        if number is None:
            return
        keep = self.subject_of_row[: self.rows] != number
        kept = int(keep.sum())
        self.vectors[:kept] = self.vectors[: self.rows][keep]
        self.subject_of_row[:kept] = self.subject_of_row[: self.rows][keep]
        self.vectors[kept : self.rows] = 0  # no copy of a deleted face stays in memory
        self.rows = kept
        del self.numbers[subject]

    def count(self, subject: str) -> int:
        number = self.numbers.get(subject)
        return 0 if number is None else int(np.sum(self.subject_of_row[: self.rows] == number))

    def subject_names(self) -> list[str]:
        return list(self.numbers)

    def search(self, queries: np.ndarray, k: int = 5, allowed: set[str] | None = None) -> list[list[tuple[str, float]]]:
        queries = self.check(queries)
        if k < 1:
            raise DataError(f"k must be at least 1, got {k}")
        vectors, subjects = self.vectors[: self.rows], self.subject_of_row[: self.rows]
        if allowed is not None:
            mask = np.isin(subjects, [self.numbers[s] for s in allowed if s in self.numbers])
            vectors, subjects = vectors[mask], subjects[mask]
        results = []
        chunk = max(1, SCORE_ELEMENTS // max(1, len(vectors)))
        for start in range(0, len(queries), chunk):
            for scores in queries[start : start + chunk] @ vectors.T:
                results.append(self._best_subjects(scores, subjects, k))
        return results

    def _best_subjects(self, scores: np.ndarray, subjects: np.ndarray, k: int) -> list[tuple[str, float]]:
        take = min(len(scores), 4 * k)
        while True:
            top = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            found: dict[int, float] = {}
            for row in top:
                found.setdefault(int(subjects[row]), float(scores[row]))
                if len(found) == k:
                    break
            if len(found) == k or take == len(scores):
                return [(self.names[s], score) for s, score in found.items()]
            take = min(len(scores), 4 * take)
