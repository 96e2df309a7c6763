"""Approximate face indexes over faiss, each a :class:`~.index.SubjectIndex`:

* :class:`ApproximateIndex` (``"hnsw"``, ``"ivf"``) — a faiss index over compressed rows (an HNSW
  graph over 64 PCA dimensions; or IVF lists of 8-bit codes) proposes candidates, re-scored exactly
  in float32. Trained on the rows of its first add (the gallery adds all its rows at once).
* :class:`FaissIndex` — a faiss index by its factory string: ``"SQfp16"`` (exact search over
  float16 codes, 1 KB a 512-d face), ``"HNSW32"`` or ``"IVF1024,Flat"`` (approximate). Deleted
  faces are removed (flat and IVF codes) or masked out of every search (HNSW, which cannot remove;
  the gallery rebuilds it when reopened).
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from .index import ExactIndex, SubjectIndex, faiss_or_none, one_thread, row_selector


class ApproximateIndex(ExactIndex):
    """A faiss index proposes each query's ``candidates`` likeliest rows; they are re-scored exactly in float32.

    * ``hnsw``: the rows projected on their first 64 principal axes (PCA, from a sample of the first add),
      an HNSW graph over them (M 32, efConstruction 40), searched at efSearch ``depth`` (512: recall@1 0.995
      at a million realistic faces).
    * ``ivf``: ``lists`` k-means lists (default ≈ √rows) of 8-bit codes, the ``depth`` nearest scanned.

    Both search by L2, which ranks unit rows as the inner product does. A deleted row's float32 row and
    its codes are zeroed (IVF: removed from its list) and it is masked out of every search; row numbers
    are never reused."""

    def __init__(self, dim: int, kind: str = "hnsw", depth: int | None = None, candidates: int = 64):
        super().__init__(dim)
        self.faiss = faiss_or_none()
        if self.faiss is None:
            raise DataError(f"index {kind!r} needs faiss: pip install -e '.[search]', or use the exact index")
        if kind not in ("hnsw", "ivf"):
            raise DataError(f"approximate index kinds are hnsw and ivf, not {kind!r}")
        self.kind, self.candidates = kind, candidates
        self.depth = depth or (512 if kind == "hnsw" else 32)
        self.lists = None  # ivf: from the rows of the first add unless set
        self.coarse = None

    def _added(self, embeddings: np.ndarray) -> None:
        if not len(embeddings):
            return
        if self.coarse is None:
            self._train(embeddings)
        self.coarse.add(embeddings)  # faiss numbers rows in order: its ids are our row numbers

    def _train(self, sample: np.ndarray) -> None:
        faiss = self.faiss
        picked = np.sort(np.random.default_rng(0).choice(len(sample), min(len(sample), 100_000), replace=False))
        if self.kind == "hnsw":
            reduced = min(64, self.dim)
            factory = f"PCA{reduced},HNSW32" if reduced < self.dim else "HNSW32"
            self.coarse = faiss.index_factory(self.dim, factory, faiss.METRIC_L2)
            self._graph().hnsw.efConstruction = 40
        else:
            lists = self.lists or int(np.clip(round(np.sqrt(len(sample))), 1, 4096))
            self.coarse = faiss.index_factory(self.dim, f"IVF{lists},SQ8", faiss.METRIC_L2)
            picked = picked[: 64 * lists]
        self.coarse.train(sample[picked])

    def _graph(self):
        inner = self.coarse.index if isinstance(self.coarse, self.faiss.IndexPreTransform) else self.coarse
        return self.faiss.downcast_index(inner)

    def _remove_rows(self, rows: np.ndarray) -> None:
        self.vectors[rows] = 0  # no copy of a deleted face stays in memory
        graph = self._graph()
        if self.kind == "ivf":
            graph.remove_ids(self.faiss.IDSelectorBatch(rows.astype(np.int64)))
        else:  # a graph cannot drop a node: its stored (projected) vector is zeroed, the node masked
            storage = self.faiss.downcast_index(graph.storage)
            stored = self.faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d)
            stored = stored.reshape(storage.ntotal, storage.d)
            stored[rows] = 0
        self.alive[rows] = False  # row numbers are faiss's ids: masked, never reused

    def memory_bytes(self) -> int:
        own = self.rows * (self.dim * 4 + 8 + 8 + 1)
        return own + (len(self.faiss.serialize_index(self.coarse)) if self.coarse is not None else 0)

    def state(self) -> dict[str, np.ndarray]:
        if not self.alive[: self.rows].all():
            raise DataError("an index with deleted rows is not saved: build it anew from the gallery")
        return {"vectors": self.vectors[: self.rows], "coarse": self.faiss.serialize_index(self.coarse)}

    def restore(self, subjects: list[str], state: dict[str, np.ndarray], face_ids=None) -> None:
        if state["vectors"].shape != (len(subjects), self.dim):
            raise ValueError(f"{state['vectors'].shape[0]} saved rows for {len(subjects)} faces")
        self.coarse = self.faiss.deserialize_index(np.asarray(state["coarse"], np.uint8))
        if self.coarse.ntotal != len(subjects):
            raise ValueError(f"a saved index of {self.coarse.ntotal} rows for {len(subjects)} faces")
        self.vectors = np.array(state["vectors"], np.float32)  # a copy: the file's buffer is let go
        self._append_subjects(subjects, face_ids)

    def _best_faces(self, queries, m, usable):
        faiss = self.faiss
        selector, _bitmap = row_selector(faiss, usable)
        wanted = max(self.candidates, m)
        if self.kind == "hnsw":
            inner = faiss.SearchParametersHNSW(efSearch=max(self.depth, wanted), sel=selector)
        else:
            inner = faiss.SearchParametersIVF(nprobe=self.depth, sel=selector)
        transformed = isinstance(self.coarse, faiss.IndexPreTransform)
        params = faiss.SearchParametersPreTransform(index_params=inner) if transformed else inner
        with one_thread(faiss, queries):
            _, candidates = self.coarse.search(queries, wanted, params=params)
        best = [self._rescored(query, rows, m) for query, rows in zip(queries, candidates, strict=True)]
        return np.stack([b[0] for b in best]), np.stack([b[1] for b in best])


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

    def state(self) -> dict[str, np.ndarray]:
        if not self.alive[: self.rows].all():
            raise DataError("an index with deleted rows is not saved: build it anew from the gallery")
        return {"faiss": self.faiss.serialize_index(self.index)}

    def restore(self, subjects: list[str], state: dict[str, np.ndarray], face_ids=None) -> None:
        self.index = self.faiss.deserialize_index(np.asarray(state["faiss"], np.uint8))
        self._append_subjects(subjects, face_ids)

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
