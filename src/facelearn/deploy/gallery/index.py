"""In-memory face indexes: unit rows, each with its subject and face id; search returns the best subjects.

A subject scores its best face, so the top-k subjects come from the best faces in descending
order (the first face of each new subject): an index only has to give its m best faces per
query, and m grows (×4) only when those hold fewer than k subjects.

* :class:`ExactIndex` — float32 rows in NumPy, chunked matrix products (never the whole score
  matrix of a batch of queries against a million faces). No dependency; the default.
* :class:`FaissIndex` — a faiss index by its factory string: ``"SQfp16"`` (exact search over
  float16 codes, 1 KB a 512-d face), ``"HNSW32"`` or ``"IVF1024,Flat"`` (approximate). Deleted
  faces are removed (flat and IVF codes) or masked out of every search (HNSW, which cannot remove;
  the gallery rebuilds it when reopened).

A subject is removed with all its rows (:meth:`~SubjectIndex.remove`), one face by its id
(:meth:`~SubjectIndex.remove_face`); the gallery's face ids are given with the rows (−1: none).
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError

SCORE_ELEMENTS = 2**25  # scores per chunk of queries (128 MB of float32)


class SubjectIndex:
    """Which subject each row belongs to, and the search by subject on top of an index's best faces."""

    def __init__(self, dim: int):
        self.dim = dim
        self.rows = 0
        self.subject_of_row = np.empty(0, np.int64)
        self.face_of_row = np.empty(0, np.int64)  # the gallery's face id of each row, −1 when not given
        self.alive = np.empty(0, bool)
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

    def _append_subjects(self, subjects: list[str], face_ids=None) -> None:
        for name in subjects:
            if name not in self.numbers:
                self.numbers[name] = len(self.names)
                self.names.append(name)
        numbers = np.array([self.numbers[n] for n in subjects], np.int64)
        self.subject_of_row = np.concatenate([self.subject_of_row[: self.rows], numbers])
        ids = np.full(len(subjects), -1, np.int64) if face_ids is None else np.asarray(face_ids, np.int64)
        if len(ids) != len(subjects):
            raise DataError(f"{len(ids)} face ids for {len(subjects)} faces")
        self.face_of_row = np.concatenate([self.face_of_row[: self.rows], ids])
        self.alive = np.concatenate([self.alive[: self.rows], np.ones(len(subjects), bool)])
        self.rows += len(subjects)

    def rows_of(self, subject: str) -> np.ndarray:
        number = self.numbers.get(subject)
        if number is None:
            return np.empty(0, np.int64)
        return np.flatnonzero((self.subject_of_row[: self.rows] == number) & self.alive[: self.rows])

    def count(self, subject: str) -> int:
        return len(self.rows_of(subject))

    def subject_names(self) -> list[str]:
        return list(self.numbers)

    def remove(self, subject: str) -> None:
        """Every row of the subject, and the subject."""
        if subject not in self.numbers:
            return
        self._remove_rows(self.rows_of(subject))
        del self.numbers[subject]

    def remove_face(self, face_id: int) -> None:
        """The row of one face (its subject stays, with its other faces)."""
        rows = np.flatnonzero((self.face_of_row[: self.rows] == face_id) & self.alive[: self.rows])
        if len(rows):
            self._remove_rows(rows)

    def _remove_rows(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _compact(self, keep: np.ndarray) -> None:
        """Keep only the rows ``keep`` marks, in order."""
        kept = int(keep.sum())
        for per_row in (self.subject_of_row, self.face_of_row, self.alive):
            per_row[:kept] = per_row[: self.rows][keep]
        self.rows = kept

    def search(self, queries: np.ndarray, k: int = 5, allowed: set[str] | None = None) -> list[list[tuple[str, float]]]:
        queries = self.check(queries)
        if k < 1:
            raise DataError(f"k must be at least 1, got {k}")
        usable = self.alive[: self.rows].copy()
        if allowed is not None:
            usable &= np.isin(self.subject_of_row[: self.rows], [self.numbers[s] for s in allowed if s in self.numbers])
        available = int(usable.sum())
        results: list[list[tuple[str, float]] | None] = [None] * len(queries)
        pending, wanted = np.arange(len(queries)), min(available, 4 * k)
        while len(pending) and wanted > 0:
            scores, rows = self._best_faces(queries[pending], wanted, usable)
            still = []
            for query, row_scores, row_ids in zip(pending, scores, rows, strict=True):
                found: dict[int, float] = {}
                for score, row in zip(row_scores, row_ids, strict=True):
                    if row >= 0:
                        found.setdefault(int(self.subject_of_row[row]), float(score))
                    if len(found) == k:
                        break
                if len(found) < k and wanted < available:
                    still.append(query)
                else:
                    results[query] = [(self.names[s], score) for s, score in found.items()]
            pending, wanted = np.array(still, np.int64), min(available, 4 * wanted)
        return [r if r is not None else [] for r in results]

    def _best_faces(self, queries: np.ndarray, m: int, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of each query's ``m`` best usable faces, descending; row −1 pads."""
        raise NotImplementedError


class ExactIndex(SubjectIndex):
    def __init__(self, dim: int):
        super().__init__(dim)
        self.vectors = np.empty((0, dim), np.float32)

    def add(self, subjects: list[str], embeddings: np.ndarray, face_ids=None) -> None:
        embeddings = self.check(embeddings) if len(subjects) else np.empty((0, self.dim), np.float32)
        start = self.rows
        if start + len(embeddings) > len(self.vectors):  # grow by doubling: amortised O(1) per face
            grown = np.empty((max(2 * len(self.vectors), start + len(embeddings), 1024), self.dim), np.float32)
            grown[:start] = self.vectors[:start]
            self.vectors = grown
        self.vectors[start : start + len(embeddings)] = embeddings
        self._append_subjects(subjects, face_ids)

    def _remove_rows(self, rows: np.ndarray) -> None:
        keep = np.ones(self.rows, bool)
        keep[rows] = False
        kept, count = int(keep.sum()), self.rows
        self.vectors[:kept] = self.vectors[:count][keep]
        self.vectors[kept:count] = 0  # no copy of a deleted face stays in memory
        self._compact(keep)

    def memory_bytes(self) -> int:
        return self.rows * (self.dim * 4 + 8 + 8 + 1)  # vector, subject, face id, alive

    def _best_faces(self, queries, m, usable):
        vectors = self.vectors[: self.rows]
        chunk = max(1, SCORE_ELEMENTS // max(1, self.rows))
        all_scores, all_rows = [], []
        for start in range(0, len(queries), chunk):
            scores = queries[start : start + chunk] @ vectors.T
            scores[:, ~usable] = -np.inf
            top = np.argpartition(-scores, m - 1, axis=1)[:, :m] if m < scores.shape[1] else np.argsort(-scores, 1)
            top_scores = np.take_along_axis(scores, top, 1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            all_scores.append(np.take_along_axis(top_scores, order, 1))
            all_rows.append(np.take_along_axis(top, order, 1))
        rows = np.concatenate(all_rows)
        scores = np.concatenate(all_scores)
        return scores, np.where(np.isfinite(scores), rows, -1)


class FaissIndex(SubjectIndex):
    def __init__(self, dim: int, kind: str = "SQfp16", search_depth: int = 64):
        super().__init__(dim)
        try:
            import faiss
        except ImportError:
            raise DataError(f"index {kind!r} needs faiss: pip install -e '.[search]', or use the exact index") from None
        self.faiss, self.kind = faiss, kind
        self.index = faiss.index_factory(dim, kind, faiss.METRIC_INNER_PRODUCT)
        self.removable = not kind.startswith("HNSW")
        self.search_depth = search_depth  # HNSW efSearch / IVF nprobe

    def train(self, sample: np.ndarray) -> None:
        """IVF needs its centroids from data before anything is added."""
        if not self.index.is_trained:
            self.index.train(self.check(sample))

    def add(self, subjects: list[str], embeddings: np.ndarray, face_ids=None) -> None:
        if not len(subjects):
            return
        embeddings = self.check(embeddings)
        if not self.index.is_trained:
            raise DataError(f"index {self.kind!r} must be trained on a sample before faces are added")
        self.index.add(embeddings)
        self._append_subjects(subjects, face_ids)

    def _remove_rows(self, rows: np.ndarray) -> None:
        if not self.removable:
            self.alive[rows] = False  # masked out of every search until the gallery is reopened
            return
        self.index.remove_ids(self.faiss.IDSelectorBatch(rows.astype(np.int64)))
        keep = np.ones(self.rows, bool)
        keep[rows] = False
        self._compact(keep)

    def memory_bytes(self) -> int:
        return len(self.faiss.serialize_index(self.index)) + self.rows * 17

    def _best_faces(self, queries, m, usable):
        faiss = self.faiss
        selector = None if usable.all() else faiss.IDSelectorBatch(np.flatnonzero(usable).astype(np.int64))
        if self.kind.startswith("HNSW"):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.search_depth, m))
        elif self.kind.startswith("IVF"):
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.search_depth)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, rows = self.index.search(queries, m, params=params)
        return scores, rows


def build_index(dim: int, kind: str = "exact") -> SubjectIndex:
    """``exact`` (NumPy float32), or a faiss factory string that needs no training (``SQfp16``, ``HNSW32``)."""
    if kind == "exact":
        return ExactIndex(dim)
    if kind.startswith("IVF"):
        raise DataError(f"index {kind!r} must be trained before use; a gallery takes exact, SQfp16 or HNSW32")
    return FaissIndex(dim, kind)
