"""In-memory face indexes: unit rows, each with its subject and face id; search returns the best subjects.

A subject scores its best face, so the top-k subjects come from the best faces in descending
order (the first face of each new subject): an index only has to give its m best faces per
query, and m grows (×4) only when those hold fewer than k subjects.

* :class:`SubjectIndex` — which subject and face each row is, and the search by subject on top of an
  index's best faces; the indexes below subclass it.
* :class:`ExactIndex` — float32 rows in NumPy, chunked matrix products (never the whole score
  matrix of a batch of queries against a million faces). No dependency; the default. With faiss
  installed and at least :data:`SCAN_FROM` rows, a query first scans 8-bit codes of the rows (a
  quarter of the bytes) and re-scores its best candidates in float32; the candidates grow until
  no row outside them can beat the m-th best by the codes' error bound, so the answer stays exact.

The approximate ones (``hnsw``, ``ivf``, a faiss factory string) are :mod:`.approximate_index`;
:func:`facelearn.deploy.gallery.build_index` builds either by its kind. A subject is removed with all
its rows (:meth:`~SubjectIndex.remove`), one face by its id (:meth:`~SubjectIndex.remove_face`); the
gallery's face ids are given with the rows (−1: none).
"""

from __future__ import annotations

import contextlib

import numpy as np

from ...errors import DataError

SCORE_ELEMENTS = 2**25  # scores per chunk of queries (128 MB of float32)
SCAN_FROM = 50_000  # rows from which the exact index scans 8-bit codes first (below: float32 is fast enough)


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


def faiss_or_none():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


@contextlib.contextmanager
def one_thread(faiss, queries: np.ndarray):
    """One query runs on this thread alone: faiss's OpenMP regions for a single query (the PCA product, the graph
    walk) cost a second, spinning thread six times the CPU on a busy machine (measured: 7.9 → 1.3 ms a query at
    200,000 faces). OpenMP's thread count is per calling thread, so other threads' searches keep theirs."""
    if len(queries) > 1:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def row_selector(faiss, usable: np.ndarray):
    """A faiss selector of the usable rows (None: all), and the bitmap it reads (keep it alive)."""
    if usable.all():
        return None, None
    bitmap = np.packbits(usable, bitorder="little")
    return faiss.IDSelectorBitmap(len(usable), faiss.swig_ptr(bitmap)), bitmap


class ExactIndex(SubjectIndex):
    def __init__(self, dim: int):
        super().__init__(dim)
        self.vectors = np.empty((0, dim), np.float32)
        self.codes = None  # faiss 8-bit codes of every row (from SCAN_FROM rows, with faiss installed)
        self.code_error = 0.0  # the largest ‖row − decoded code‖: bounds |q·row − q·code| for a unit q

    def add(self, subjects: list[str], embeddings: np.ndarray, face_ids=None) -> None:
        embeddings = self.check(embeddings) if len(subjects) else np.empty((0, self.dim), np.float32)
        start = self.rows
        if start + len(embeddings) > len(self.vectors):  # grow by doubling: amortised O(1) per face
            grown = np.empty((max(2 * len(self.vectors), start + len(embeddings), 1024), self.dim), np.float32)
            grown[:start] = self.vectors[:start]
            self.vectors = grown
        self.vectors[start : start + len(embeddings)] = embeddings
        self._append_subjects(subjects, face_ids)
        self._added(embeddings)

    def _added(self, embeddings: np.ndarray) -> None:
        """Keep the 8-bit codes in step: append when the new rows lie in their range, else encode anew."""
        if self.codes is not None and len(embeddings):
            low, high = self.code_range
            if ((embeddings >= low) & (embeddings <= high)).all():
                self.codes.add(embeddings)
                self.code_error = max(self.code_error, self._code_error(embeddings))
                return
            self.codes = None
        if self.codes is None and self.rows >= SCAN_FROM and (faiss := faiss_or_none()) is not None:
            vectors = self.vectors[: self.rows]
            self.codes = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            self.codes.train(vectors)  # per-dimension min and max over every row
            self.codes.add(vectors)
            trained = faiss.vector_to_array(self.codes.sq.trained)
            low, width = trained[: self.dim], trained[self.dim :]
            self.code_range = (low, low + width)
            self.code_error = self._code_error(vectors)

    def _code_error(self, rows: np.ndarray) -> float:
        """The largest distance between a row and its decoded code (+ float32 rounding of the scores)."""
        largest = 0.0
        for start in range(0, len(rows), 65536):
            block = rows[start : start + 65536]
            decoded = self.codes.sa_decode(self.codes.sa_encode(block))
            largest = max(largest, float(np.linalg.norm(block - decoded, axis=1).max()))
        return largest + 1e-5

    def _remove_rows(self, rows: np.ndarray) -> None:
        keep = np.ones(self.rows, bool)
        keep[rows] = False
        kept, total = int(keep.sum()), self.rows
        self.vectors[:kept] = self.vectors[:total][keep]
        self.vectors[kept:total] = 0  # no copy of a deleted face stays in memory
        if self.codes is not None:
            self.codes.remove_ids(faiss_or_none().IDSelectorBatch(rows.astype(np.int64)))  # shifts like the rows
        self._compact(keep)

    def memory_bytes(self) -> int:
        codes = self.rows * self.dim if self.codes is not None else 0
        return self.rows * (self.dim * 4 + 8 + 8 + 1) + codes  # vector, subject, face id, alive; codes

    def state(self) -> dict[str, np.ndarray]:
        """What :meth:`restore` needs to rebuild this index (the gallery's persisted index file)."""
        state = {"vectors": self.vectors[: self.rows]}
        if self.codes is not None:
            state["codes"] = faiss_or_none().serialize_index(self.codes)
            state["code_error"] = np.array([self.code_error])
        return state

    def restore(self, subjects: list[str], state: dict[str, np.ndarray], face_ids=None) -> None:
        """Rows from :meth:`state` (checked when they were added): no copy, no second check."""
        if state["vectors"].shape != (len(subjects), self.dim):
            raise ValueError(f"{state['vectors'].shape[0]} saved rows for {len(subjects)} faces")
        self.vectors = state["vectors"]
        self._append_subjects(subjects, face_ids)
        if "codes" in state and (faiss := faiss_or_none()) is not None:
            self.codes = faiss.deserialize_index(np.asarray(state["codes"], np.uint8))
            if self.codes.ntotal != len(subjects):
                raise ValueError(f"saved codes of {self.codes.ntotal} rows for {len(subjects)} faces")
            trained = faiss.vector_to_array(self.codes.sq.trained)
            self.code_range = (trained[: self.dim], trained[: self.dim] + trained[self.dim :])
            self.code_error = float(state["code_error"][0])
        else:
            self._added(self.vectors)

    def _best_faces(self, queries, m, usable):
        if self.codes is not None:
            return self._scanned_best_faces(queries, m, usable)
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

    def _rescored(self, query: np.ndarray, rows: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The m best of ``rows`` by their float32 score, descending, padded with (−inf, −1)."""
        rows = rows[rows >= 0]
        exact = self.vectors[rows] @ query
        order = np.argsort(-exact, kind="stable")[:m]
        scores, best = np.full(m, -np.inf, np.float32), np.full(m, -1, np.int64)
        scores[: len(order)], best[: len(order)] = exact[order], rows[order]
        return scores, best

    def _scanned_best_faces(self, queries, m, usable):
        """Exact: the codes' best ``c`` rows re-scored in float32. A row's code score is within ``code_error``
        of its float32 score (Cauchy–Schwarz), so when the c-th code score plus that cannot reach the m-th
        float32 score, no other row can; otherwise every row whose code score can (a range search) is
        re-scored too."""
        faiss = faiss_or_none()
        selector, _bitmap = row_selector(faiss, usable)
        params = faiss.SearchParameters(sel=selector)
        available = int(usable.sum())
        wanted = min(available, max(256, 8 * m))
        all_scores, all_rows = np.empty((len(queries), m), np.float32), np.empty((len(queries), m), np.int64)
        for number, query in enumerate(queries):
            with one_thread(faiss, queries):
                approximate, rows = self.codes.search(query[None], wanted, params=params)
            scores, best = self._rescored(query, rows[0], m)
            if wanted < available and approximate[0, -1] + self.code_error > scores[-1]:
                with one_thread(faiss, queries):
                    radius = float(scores[-1]) - self.code_error
                    _, _, rows = self.codes.range_search(query[None], radius, params=params)
                scores, best = self._rescored(query, np.union1d(rows, best[best >= 0]), m)
            all_scores[number], all_rows[number] = scores, best
        return all_scores, all_rows
