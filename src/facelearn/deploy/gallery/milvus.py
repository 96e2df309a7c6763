"""The scale-out gallery: Milvus through ``pymilvus``, the same client for milvus-lite and a cluster.

``MilvusGallery("people.milvus.db", …)`` runs the embedded engine (``milvus-lite``) on a local
file; ``MilvusGallery("http://milvus:19530", …)`` talks to a Milvus server or cluster. One
collection per model, named after the model's identity (``facelearn_<model id>``): a gallery
that holds another model's collection is refused, naming it. A subject's faces go in one insert
(all or none); search groups faces by subject (a subject scores its best face); delete removes
every face of the subject. A face's id is its row's primary key (Milvus makes it, unique for the
collection's life, in every collection since the first); a subject exists while it has a face.
Each face keeps its quality (a nullable ``quality`` field: None where the enroll gave none); a
collection made before qualities were kept lacks the field and lists None for every face. Same
interface as :class:`SQLiteGallery`.

Two small collections sit beside the faces: ``<collection>__templates``, one row per subject (its
template and the running sums it comes from, :mod:`facelearn.deploy.fusion`), upserted after each
insert of its faces and deleted *before* them (a kill in between leaves faces without a template,
never a template of a deleted subject; deleting one face deletes the template, then the face, then
makes the template again from the faces kept); and ``<collection>__settings``, which keeps the
gallery's identification calibration (a server has no folder to put a file beside). A gallery made
before templates gets them built from its faces, with equal weights, when it is first opened.

A new collection's index follows the SQLite store's option: ``exact`` → FLAT; ``hnsw`` → HNSW with
the SQLite ``hnsw`` graph's settings (M 32, efConstruction 40, ef 512; over the full rows: Milvus has
no PCA step); ``ivf`` → IVF_SQ8 (1,024 lists, 32 probed). An existing collection keeps its own.
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np

from ..fusion import Template, check_fusion
from . import STORES
from .base import DuplicateSubject, GalleryError, GalleryStore, UnknownFace, UnknownSubject, face_number
from .index import ExactIndex  # only its input check

MAX_SUBJECT = 512
MAX_SOURCE = 2048
MAX_SETTING = 65_535
TEMPLATES, SETTINGS = "__templates", "__settings"  # suffixes of the collections beside the faces
CALIBRATION_KEY = "identification_calibration"
UPSERT_ROWS = 500

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
            existing = [
                c
                for c in self.client.list_collections()
                if c.startswith("facelearn_") and not c.endswith((TEMPLATES, SETTINGS))
            ]
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
            schema.add_field("quality", DataType.DOUBLE, nullable=True)  # as SQLite's REAL: None where none was given
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
        self.has_qualities = any(f["name"] == "quality" for f in fields)  # and those made before qualities
        built = self.client.describe_index(self.collection, "embedding").get("index_type", "FLAT")
        self.search_params = next((p for t, _, p in MILVUS_INDEXES.values() if t == built), {})
        self.templates, self.settings = self.collection + TEMPLATES, self.collection + SETTINGS
        self._open_side_collections(DataType, MilvusClient)

    def _open_side_collections(self, DataType, MilvusClient) -> None:
        existing = set(self.client.list_collections())
        if self.settings not in existing:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
            schema.add_field("value", DataType.VARCHAR, max_length=MAX_SETTING)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector in every collection
            index = self.client.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            self.client.create_collection(self.settings, schema=schema, index_params=index)
        if self.templates in existing:
            self.client.load_collection(self.settings)
            self.client.load_collection(self.templates)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("subject", DataType.VARCHAR, max_length=MAX_SUBJECT, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("state", DataType.JSON)  # Template.to_dict(): the sums an append extends
        index = self.client.prepare_index_params()
        index.add_index("embedding", index_type="FLAT", metric_type="IP")
        self.client.create_collection(self.templates, schema=schema, index_params=index)
        self._build_templates()

    def _build_templates(self) -> None:
        """Templates of a gallery made before them, from its faces (weighted by their qualities where it kept
        them, else equally)."""
        faces: dict[str, list] = {}
        qualities: dict[str, list] = {}
        metadata: dict[str, dict] = {}
        fields = ["subject", "embedding", "metadata", *self.quality_field]
        pages = self.client.query_iterator(self.collection, batch_size=10_000, filter="id >= 0", output_fields=fields)
        while rows := pages.next():
            for row in rows:
                faces.setdefault(row["subject"], []).append(row["embedding"])
                qualities.setdefault(row["subject"], []).append(row.get("quality"))
                metadata.setdefault(row["subject"], row["metadata"])
        pages.close()
        templates = {
            subject: Template.of(np.asarray(rows, np.float32), qualities[subject]) for subject, rows in faces.items()
        }
        self._put_templates(templates, metadata)

    def _put_templates(self, templates: dict[str, Template], metadata: dict[str, dict]) -> None:
        """Upserted in requests of :data:`UPSERT_ROWS`."""
        rows = [
            {
                "subject": subject,
                "embedding": template.vector.tolist(),
                "metadata": metadata.get(subject) or {},
                "state": template.to_dict(),
            }
            for subject, template in templates.items()
        ]
        for start in range(0, len(rows), UPSERT_ROWS):  # a template's state is two vectors of JSON: keep requests small
            self.client.upsert(self.templates, rows[start : start + UPSERT_ROWS])

    def _extend_templates(self, subjects: list[str], embeddings: np.ndarray, qualities, metadata=None) -> None:
        rows: dict[str, list[int]] = {}
        for row, name in enumerate(subjects):
            rows.setdefault(name, []).append(row)
        names = ", ".join(quoted(name) for name in rows)
        stored = self.client.query(
            self.templates, filter=f"subject in [{names}]", output_fields=["subject", "state", "metadata"]
        )
        known = {row["subject"]: row for row in stored}
        templates, metadatas = {}, {}
        for name, taken in rows.items():
            faces, weights = embeddings[taken], [qualities[i] for i in taken] if qualities else None
            if name in known:
                templates[name] = Template.from_dict(known[name]["state"]).extended(faces, weights)
                metadatas[name] = known[name]["metadata"]
            else:
                templates[name], metadatas[name] = Template.of(faces, weights), metadata
        self._put_templates(templates, metadatas)

    @property
    def quality_field(self) -> list[str]:
        """``["quality"]`` where the collection keeps qualities: the output field to ask for."""
        return ["quality"] if self.has_qualities else []

    def _row(self, subject: str, embedding: np.ndarray, metadata: dict | None, source: str | None, quality) -> dict:
        row = {"subject": subject, "embedding": embedding.tolist(), "metadata": metadata or {}}
        if self.has_sources:
            row["source"] = (source or "")[:MAX_SOURCE]
        if self.has_qualities:
            row["quality"] = None if quality is None or not np.isfinite(quality) else float(quality)
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
            rows = [
                self._row(subject, e, metadata, s, q)
                for e, s, q in zip(embeddings, sources, qualities or [None] * len(embeddings), strict=True)
            ]
            self.client.insert(self.collection, rows)  # one request: all faces or none
            self._extend_templates([subject] * len(embeddings), embeddings, qualities, metadata)
            return len(existing) + len(rows)

    def add_faces(self, subjects, embeddings, qualities=None, sources=None) -> int:
        """Faces of many subjects in one insert request (all or none)."""
        embeddings = self.checker.check(embeddings)
        if any(len(subject.encode()) > MAX_SUBJECT for subject in subjects):
            raise GalleryError(f"subject names are at most {MAX_SUBJECT} bytes")
        sources = sources or [None] * len(embeddings)
        qualities_or_none = qualities or [None] * len(embeddings)
        rows = [
            self._row(n, e, None, s, q)
            for n, e, s, q in zip(subjects, embeddings, sources, qualities_or_none, strict=True)
        ]
        with self.lock:
            self.client.insert(self.collection, rows)
            self._extend_templates(list(subjects), embeddings, qualities)
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
            self.client.delete(self.templates, filter=f"subject == {quoted(subject)}")  # first: never left over
            self.client.delete(self.collection, filter=f"subject == {quoted(subject)}")
            return len(faces)

    def faces(self, subject: str) -> list[dict]:
        fields = ["id"] + (["source"] if self.has_sources else []) + self.quality_field
        with self.lock:
            rows = self.client.query(self.collection, filter=f"subject == {quoted(subject)}", output_fields=fields)
        if not rows:
            raise UnknownSubject(f"subject {subject!r} is not enrolled in {self.uri}")
        return [
            {"face_id": str(row["id"]), "quality": row.get("quality"), "source": row.get("source") or None}
            for row in sorted(rows, key=lambda row: row["id"])
        ]

    def delete_face(self, subject: str, face_id: str) -> int:
        face = face_number(face_id)
        with self.lock:
            faces = [row["id"] for row in self._faces(subject)]
            if not faces:
                raise UnknownSubject(f"subject {subject!r} is not enrolled in {self.uri}")
            if face not in faces:
                raise UnknownFace(f"face {face} is not one of the faces of {subject!r} in {self.uri}")
            self.client.delete(self.templates, filter=f"subject == {quoted(subject)}")  # first: never left over
            self.client.delete(self.collection, ids=[face])
            kept = self.client.query(
                self.collection,
                filter=f"subject == {quoted(subject)}",
                output_fields=["embedding", "metadata", *self.quality_field],
            )
            if kept:  # made again from the faces kept, weighted by their qualities as at enroll
                embeddings = np.asarray([row["embedding"] for row in kept], np.float32)
                template = Template.of(embeddings, [row.get("quality") for row in kept])
                self._put_templates({subject: template}, {subject: kept[0]["metadata"]})
            return len(faces) - 1

    def checkpoint(self) -> bool:
        """Flush what was written; Milvus drops deleted rows from its segments when it compacts them, on
        its own schedule, so the erasure is never known to be done here."""
        with self.lock:
            self.client.flush(self.collection)
            self.client.flush(self.templates)
        return False

    @property
    def erasure(self) -> str:
        return "pending: Milvus removes deleted rows from its storage when it next compacts the segments"

    def subjects(self) -> list[dict]:
        with self.lock:
            rows = self.client.query(
                self.collection, filter="id >= 0", output_fields=["id", "subject", "metadata", *self.quality_field]
            )
        found: dict[str, dict] = {}
        for row in sorted(rows, key=lambda row: row["id"]):  # each subject's qualities in the order enrolled
            name, quality = row["subject"], row.get("quality")
            entry = found.setdefault(name, {"subject": name, "metadata": row["metadata"], "faces": 0, "qualities": []})
            entry["faces"] += 1
            entry["qualities"].append(quality if quality is None or 0 <= quality <= 1 else None)  # as SQLite lists
        return [found[name] for name in sorted(found)]

    def search(
        self,
        queries: np.ndarray,
        k: int = 5,
        where: dict | None = None,
        subject: str | None = None,
        fusion: str = "best",
    ) -> list[list[tuple[str, float]]]:
        queries = self.checker.check(queries)
        fused = check_fusion(fusion) == "mean"
        terms = [f"metadata[{quoted(key)}] == {json.dumps(value)}" for key, value in (where or {}).items()]
        if subject is not None:
            terms.append(f"subject == {quoted(subject)}")
        condition = " and ".join(terms)
        with self.lock:
            grouping = {} if fused else {"group_by_field": "subject"}  # one template per subject already
            hits = self.client.search(
                self.templates if fused else self.collection,
                data=queries.tolist(),
                limit=k,
                output_fields=["subject"],
                filter=condition,
                **grouping,
                search_params={"metric_type": "IP", "params": {} if fused else self.search_params},  # templates: FLAT
            )
        return [[(hit["entity"]["subject"], float(hit["distance"])) for hit in row] for row in hits]

    def __len__(self) -> int:
        return len(self.subjects())

    def identification_calibration(self) -> dict | None:
        with self.lock:
            rows = self.client.query(self.settings, filter=f"key == {quoted(CALIBRATION_KEY)}", output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def store_identification_calibration(self, calibration: dict) -> None:
        value = json.dumps(calibration)
        if len(value) > MAX_SETTING:
            raise GalleryError(f"the identification calibration is {len(value):,} bytes; Milvus keeps {MAX_SETTING:,}")
        with self.lock:
            self.client.upsert(self.settings, [{"key": CALIBRATION_KEY, "value": value, "unused": [0.0, 0.0]}])

    def close(self) -> None:
        with self.lock:
            self.client.close()
