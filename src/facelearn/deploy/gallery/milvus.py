"""The scale-out gallery: Milvus through ``pymilvus``, the same client for milvus-lite and a cluster.

``MilvusGallery("people.milvus.db", …)`` runs the embedded engine (``milvus-lite``) on a local
file; ``MilvusGallery("http://milvus:19530", …)`` talks to a Milvus server or cluster. One
collection per model, named after the model's identity (``facelearn_<model id>``): a gallery
that holds another model's collection is refused, naming it. A subject's faces go in one insert
(all or none); search groups faces by subject (a subject scores its best face); delete removes
every face of the subject. Same interface as :class:`SQLiteGallery`.

A new collection's index follows the SQLite store's option: ``exact`` → FLAT; ``hnsw`` → HNSW with
the SQLite ``hnsw`` graph's settings (M 32, efConstruction 40, ef 512; over the full rows: Milvus has
no PCA step); ``ivf`` → IVF_SQ8 (1,024 lists, 32 probed). An existing collection keeps its own.
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np

from . import STORES
from .base import DuplicateSubject, GalleryError, GalleryStore, UnknownSubject
from .index import ExactIndex  # only its input check

MAX_SUBJECT = 512
MAX_SOURCE = 2048
# index option → (Milvus index type, build parameters, search parameters)
MILVUS_INDEXES = {
    "exact": ("FLAT", {}, {}),
    "hnsw": ("HNSW", {"M": 32, "efConstruction": 40}, {"ef": 512}),
    "ivf": ("IVF_SQ8", {"nlist": 1024}, {"nprobe": 32}),
}


def quoted(value: str) -> str:
    return json.dumps(value)  # a Milvus filter string literal: double quotes, escapes as JSON


@STORES.register("milvus")
class MilvusGallery(GalleryStore):
    def __init__(self, uri: str, model_id: str | None, dim: int | None, index: str = "exact", timeout: float = 10.0):
        """``index``: ``exact``, ``hnsw`` or ``ivf`` (see :data:`MILVUS_INDEXES`), for a new collection."""
        if index not in MILVUS_INDEXES:
            raise GalleryError(f"the Milvus gallery's index is one of {', '.join(MILVUS_INDEXES)}, not {index!r}")
        try:
            from pymilvus import DataType, MilvusClient, MilvusException
        except ImportError:
            raise GalleryError(
                "the Milvus gallery needs pymilvus (and milvus-lite for a local file): pip install -e '.[milvus]'"
            ) from None
        self.uri = str(uri)
        self.lock = threading.RLock()
        try:
            self.client = MilvusClient(self.uri, timeout=timeout)
            existing = [c for c in self.client.list_collections() if c.startswith("facelearn_")]
        except MilvusException as error:
            raise GalleryError(f"cannot reach the Milvus gallery at {self.uri}: {error.message}") from None
        if model_id is None:  # an existing gallery, opened for listing and deleting
            if not existing:
                raise GalleryError(f"{self.uri} holds no gallery yet: enroll someone first")
            model_id = existing[0][len("facelearn_") :]
            fields = self.client.describe_collection(existing[0])["fields"]
            dim = int(next(f["params"]["dim"] for f in fields if f["name"] == "embedding"))
        self.model_id, self.dim = model_id, dim
        self.collection = f"facelearn_{re.sub(r'[^0-9A-Za-z_]', '_', model_id)}"
        self.checker = ExactIndex(dim)
        others = [c for c in existing if c != self.collection]
        if others and self.collection not in existing:
            raise GalleryError(
                f"{self.uri} holds embeddings of model {others[0][len('facelearn_') :]!r}; it was opened with model "
                f"{self.model_id!r}. Embeddings of different models cannot be compared"
            )
        if self.collection not in existing:
            schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("subject", DataType.VARCHAR, max_length=MAX_SUBJECT)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE)  # where the face came from
            index_type, build, _ = MILVUS_INDEXES[index]
            params = self.client.prepare_index_params()
            params.add_index("embedding", index_type=index_type, metric_type="IP", params=build)
            self.client.create_collection(self.collection, schema=schema, index_params=params)
        else:
            fields = self.client.describe_collection(self.collection)["fields"]
            stored = next(f["params"]["dim"] for f in fields if f["name"] == "embedding")
            if int(stored) != dim:
                raise GalleryError(f"{self.uri} holds {stored}-d embeddings; this model makes {dim}-d ones")
            self.client.load_collection(self.collection)  # after an unclean stop it is left released
        fields = self.client.describe_collection(self.collection)["fields"]
        self.has_sources = any(f["name"] == "source" for f in fields)  # collections made before sources lack it
        built = self.client.describe_index(self.collection, "embedding").get("index_type", "FLAT")
        self.search_params = next((p for t, _, p in MILVUS_INDEXES.values() if t == built), {})

    def _row(self, subject: str, embedding: np.ndarray, metadata: dict | None, source: str | None) -> dict:
        row = {"subject": subject, "embedding": embedding.tolist(), "metadata": metadata or {}}
        if self.has_sources:
            row["source"] = (source or "")[:MAX_SOURCE]
        return row

    def _faces(self, subject: str) -> list[dict]:
        return self.client.query(self.collection, filter=f"subject == {quoted(subject)}", output_fields=["id"])

    def enroll(self, subject, embeddings, qualities=None, sources=None, metadata=None, append=False) -> int:
        embeddings = self.checker.check(embeddings)
        if len(embeddings) == 0:
            raise GalleryError(f"nothing to enroll for {subject!r}: no faces")
        if len(subject.encode()) > MAX_SUBJECT:
            raise GalleryError(f"subject names are at most {MAX_SUBJECT} bytes")
        with self.lock:
            existing = self._faces(subject)
            if existing and not append:
                raise DuplicateSubject(f"subject {subject!r} is already enrolled (add faces with append, or delete it)")
            sources = sources or [None] * len(embeddings)
            rows = [self._row(subject, e, metadata, s) for e, s in zip(embeddings, sources, strict=True)]
            self.client.insert(self.collection, rows)  # one request: all faces or none
            return len(existing) + len(rows)

    def add_faces(self, subjects, embeddings, qualities=None, sources=None) -> int:
        """Faces of many subjects in one insert request (all or none)."""
        embeddings = self.checker.check(embeddings)
        if any(len(subject.encode()) > MAX_SUBJECT for subject in subjects):
            raise GalleryError(f"subject names are at most {MAX_SUBJECT} bytes")
        sources = sources or [None] * len(embeddings)
        rows = [self._row(n, e, None, s) for n, e, s in zip(subjects, embeddings, sources, strict=True)]
        with self.lock:
            self.client.insert(self.collection, rows)
        return len(rows)

    def sources(self) -> set[str]:
        if not self.has_sources:
            raise GalleryError(
                f"{self.uri} was made before galleries recorded where faces came from: bulk enroll into a new gallery"
            )
        found: set[str] = set()
        with self.lock:
            pages = self.client.query_iterator(
                self.collection, batch_size=10_000, filter='source != ""', output_fields=["source"]
            )
            while rows := pages.next():
                found.update(row["source"] for row in rows)
            pages.close()
        return found

    def delete(self, subject: str) -> int:
        with self.lock:
            faces = self._faces(subject)
            if not faces:
                raise UnknownSubject(f"subject {subject!r} is not enrolled in {self.uri}")
            self.client.delete(self.collection, filter=f"subject == {quoted(subject)}")
            return len(faces)

    def checkpoint(self) -> bool:
        """Flush what was written; Milvus drops deleted rows from its segments when it compacts them, on
        its own schedule, so the erasure is never known to be done here."""
        with self.lock:
            self.client.flush(self.collection)
        return False

    @property
    def erasure(self) -> str:
        return "pending: Milvus removes deleted rows from its storage when it next compacts the segments"

    def subjects(self) -> list[dict]:
        with self.lock:
            rows = self.client.query(self.collection, filter="id >= 0", output_fields=["subject", "metadata"])
        found: dict[str, dict] = {}
        for row in rows:
            name = row["subject"]
            found.setdefault(name, {"subject": name, "metadata": row["metadata"], "faces": 0})["faces"] += 1
        return [found[name] for name in sorted(found)]

    def search(
        self, queries: np.ndarray, k: int = 5, where: dict | None = None, subject: str | None = None
    ) -> list[list[tuple[str, float]]]:
        queries = self.checker.check(queries)
        terms = [f"metadata[{quoted(key)}] == {json.dumps(value)}" for key, value in (where or {}).items()]
        if subject is not None:
            terms.append(f"subject == {quoted(subject)}")
        condition = " and ".join(terms)
        with self.lock:
            hits = self.client.search(
                self.collection,
                data=queries.tolist(),
                limit=k,
                output_fields=["subject"],
                group_by_field="subject",
                filter=condition,
                search_params={"metric_type": "IP", "params": self.search_params},
            )
        return [[(hit["entity"]["subject"], float(hit["distance"])) for hit in row] for row in hits]

    def __len__(self) -> int:
        return len(self.subjects())

    def close(self) -> None:
        with self.lock:
            self.client.close()
