"""The embedded gallery: SQLite is the source of truth, an exact in-memory index answers searches.

* One file (WAL journal, ``secure_delete`` on, foreign keys on): subjects, their faces and
  embeddings, and the identity of the model that made them. A gallery opened with another model
  (or embedding size) is refused with both names.
* Enroll is one transaction: all faces of a call or none (a kill mid-enroll leaves no half subject).
* A face's id is its row number (``faces.id``), which galleries made before ids were shown already
  have. New faces get numbers past both the largest in the table and the last one given (kept in
  ``meta`` as ``last_face_id``), so a deleted face's id is never given to another face; a gallery
  made before that key existed may have given out again the ids of faces deleted then.
* Delete removes the subject (or one face) and its embeddings in one transaction; ``secure_delete`` overwrites
  the freed pages, and :meth:`checkpoint` folds the WAL into the file and truncates it, after which
  the vectors' bytes are nowhere in the database files.
* The commit and the erasure are separate steps, and the erasure never waits on a reader: when one
  is in the way it is *pending*, and finished later (:mod:`.erasure`).
* The index (rows grouped by subject) is rebuilt whenever another connection has changed the file
  (``PRAGMA data_version``), so several processes can share one gallery without searching stale
  data. Searches never re-read the database.
* A built index is saved beside the gallery (``people.db.<kind>.index``, written atomically:
  :class:`.index_file.SavedIndex`) with the model, embedding size, kind and the faces' *generation* — a counter
  that SQLite triggers raise on every insert, delete or update of a face, whoever writes — and each
  row's face id. Opening reuses it when all of them match (a million faces in seconds) and builds
  anew otherwise. A delete removes the saved files first, inside its transaction: no copy of a
  deleted face outlives the delete on disk.
* Beside it, one template per subject (:class:`.templates.SubjectTemplates`), derived from the faces and
  updated with them, in memory only: a deleted subject's template goes with its faces.
* The identification calibration is a row of the ``meta`` table: in the gallery's own file, so it is
  written in one transaction, copied and backed up with the people it was measured on, and never
  read for a gallery it was not measured on.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from ..fusion import check_fusion
from . import STORES, build_index
from .base import DuplicateSubject, GalleryError, GalleryStore, UnknownFace, UnknownSubject, face_number
from .erasure import ERASURE_PENDING, WalErasure
from .index_file import SavedIndex
from .templates import SubjectTemplates

CALIBRATION_KEY = "identification_calibration"
BUSY_TIMEOUT_S = 30  # how long a write waits for another connection's write

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL, quality REAL, source TEXT
);
CREATE INDEX IF NOT EXISTS faces_by_subject ON faces(subject_id);
CREATE TRIGGER IF NOT EXISTS faces_generation_insert AFTER INSERT ON faces BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS faces_generation_delete AFTER DELETE ON faces BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS faces_generation_update AFTER UPDATE ON faces BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
"""


@STORES.register("sqlite")
class SQLiteGallery(GalleryStore):
    def __init__(self, path: str | Path, model_id: str | None, dim: int | None, index: str = "exact"):
        """``model_id`` / ``dim`` None: an existing gallery, opened for listing and deleting only;
        ``index``: ``exact`` (float32), ``SQfp16`` (exact, half the memory) or ``HNSW32`` (approximate)."""
        self.path = Path(path)
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder; a gallery is one SQLite file (e.g. gallery.db)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA secure_delete=ON")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise GalleryError(f"{self.path} is not a facelearn gallery (SQLite says: {error})") from None
        self.lock = threading.RLock()
        self.model_id, self.dim, self.index_kind = model_id, dim, index
        self.eraser = WalErasure(self.db, self.lock, self.path, BUSY_TIMEOUT_S)
        self._claim_model()
        self.index = build_index(self.dim, index)
        self.saved_index = SavedIndex(self.path, index)
        self.templates = SubjectTemplates(self.dim)
        self.version = None
        self._refresh()
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size:  # a previous process may have ended with an erasure pending
            self.eraser.attempt()

    def _claim_model(self) -> None:
        with self.lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")
            # a gallery made before the counter existed starts one now (its saved indexes, none, cannot match)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('faces_generation', '0')")
            stored = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            if self.model_id is None and "model_id" in stored:
                self.model_id, self.dim = stored["model_id"], int(stored["dim"])
            if self.model_id is None:
                raise GalleryError(f"{self.path} holds no gallery yet: enroll someone first")
            if "model_id" not in stored:
                self.db.executemany(
                    "INSERT INTO meta VALUES (?, ?)", [("model_id", self.model_id), ("dim", str(self.dim))]
                )
                return
        if stored["model_id"] != self.model_id or int(stored["dim"]) != self.dim:
            raise GalleryError(
                f"{self.path} holds {stored['dim']}-d embeddings of model {stored['model_id']!r}; it was opened with "
                f"{self.dim}-d model {self.model_id!r}. Embeddings of different models cannot be compared: use the "
                "model it was enrolled with, or enroll everyone again into a new gallery"
            )

    def _refresh(self) -> None:
        """Rebuild the index when the file changed under another connection (or on open): from the saved
        index file when it matches the gallery, else from the embeddings (and save it)."""
        version = self._data_version()
        if version == self.version:
            return
        with self.db:
            self.db.execute("BEGIN")  # one snapshot for every read below
            generation = self.db.execute("SELECT value FROM meta WHERE key = 'faces_generation'").fetchone()[0]
            rows = self.db.execute(
                "SELECT f.id, s.name, f.quality FROM faces f JOIN subjects s ON s.id = f.subject_id ORDER BY s.id, f.id"
            ).fetchall()
            subjects = self.db.execute("SELECT name, metadata FROM subjects").fetchall()
            face_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            names = [r[1] for r in rows]
            identity = {"model_id": self.model_id, "dim": self.dim, "kind": self.index_kind, "generation": generation}
            self.index = self._saved_index(identity, face_ids, names)
            if self.index is None or not hasattr(self.index, "vectors"):  # the templates need the rows
                embeddings = self.db.execute(
                    "SELECT f.embedding FROM faces f JOIN subjects s ON s.id = f.subject_id ORDER BY s.id, f.id"
                ).fetchall()
        self.metadata = {name: json.loads(meta) for name, meta in subjects}
        if self.index is None or not hasattr(self.index, "vectors"):
            vectors = np.frombuffer(b"".join(r[0] for r in embeddings), np.float32).reshape(len(rows), self.dim)
            del embeddings
        else:
            vectors = self.index.vectors[: len(rows)]
        if self.index is None:
            self.index = build_index(self.dim, self.index_kind)
            self.index.add(names, vectors, face_ids)
            self._save_index(identity, face_ids)
        self.templates.rebuild(names, vectors, [r[2] for r in rows])
        self.version = version

    def _saved_index(self, identity: dict, face_ids: np.ndarray, names: list[str]):
        index = build_index(self.dim, self.index_kind)
        return index if self.saved_index.restore(index, identity, face_ids, names) else None

    def _save_index(self, identity: dict, face_ids: np.ndarray) -> None:
        if not len(face_ids) or not self.saved_index.save(self.index, identity, face_ids):
            return
        generation = self.db.execute("SELECT value FROM meta WHERE key = 'faces_generation'").fetchone()[0]
        if generation != identity["generation"]:  # written while someone changed the faces (maybe a delete)
            self.saved_index.remove_all()

    def _data_version(self) -> int:
        """Changes when *another* connection commits (never for this one's own commits)."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def _new_face_ids(self, count: int) -> list[int]:
        """Ids for ``count`` new faces (inside a write transaction): past every id in the table and every id
        given before, so that a deleted face's id never names another face."""
        largest = self.db.execute("SELECT coalesce(max(id), 0) FROM faces").fetchone()[0]
        given = self.db.execute("SELECT value FROM meta WHERE key = 'last_face_id'").fetchone()
        first = max(largest, int(given[0]) if given else 0) + 1
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('last_face_id', ?)", (str(first + count - 1),))
        return list(range(first, first + count))

    @contextlib.contextmanager
    def _write_transaction(self):
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception (an interrupt too): all or nothing."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _insert_faces(self, numbers: list[int], embeddings: np.ndarray, qualities: list, sources: list) -> list[int]:
        """New faces (row ``i`` of subject number ``numbers[i]``), inside a write transaction; returns their ids."""
        ids = self._new_face_ids(len(embeddings))
        self.db.executemany(
            "INSERT INTO faces (id, subject_id, embedding, quality, source) VALUES (?, ?, ?, ?, ?)",
            [
                (i, number, e.astype(np.float32).tobytes(), q, s)
                for i, number, e, q, s in zip(ids, numbers, embeddings, qualities, sources, strict=True)
            ],
        )
        return ids

    def _after_write(self, update) -> None:
        """Apply this connection's own change to the index, or rebuild if someone else also wrote."""
        if self._data_version() == self.version:
            update()
        else:
            self._refresh()

    def enroll(
        self,
        subject: str,
        embeddings: np.ndarray,
        qualities: list[float] | None = None,
        sources: list[str] | None = None,
        metadata: dict | None = None,
        append: bool = False,
    ) -> int:
        """Add a subject's faces (all or none); ``append`` adds to an existing subject. Returns its face count."""
        embeddings = self.index.check(embeddings)
        if len(embeddings) == 0:
            raise GalleryError(f"nothing to enroll for {subject!r}: no faces")
        qualities = qualities or [None] * len(embeddings)
        sources = sources or [None] * len(embeddings)
        with self.lock:
            self._refresh()
            with self._write_transaction():
                row = self.db.execute("SELECT id FROM subjects WHERE name = ?", (subject,)).fetchone()
                if row and not append:
                    raise DuplicateSubject(
                        f"subject {subject!r} is already enrolled (add faces with append, or delete it)"
                    )
                if row is None:
                    cursor = self.db.execute(
                        "INSERT INTO subjects (name, metadata) VALUES (?, ?)", (subject, json.dumps(metadata or {}))
                    )
                    row = (cursor.lastrowid,)
                ids = self._insert_faces([row[0]] * len(embeddings), embeddings, qualities, sources)

            def update():
                self.index.add([subject] * len(embeddings), embeddings, ids)
                self.templates.extend([subject] * len(embeddings), embeddings, qualities)
                self.metadata.setdefault(subject, metadata or {})

            self._after_write(update)
            if self.eraser.pending:
                self.eraser.attempt()
            return self.index.count(subject)

    def add_faces(
        self,
        subjects: list[str],
        embeddings: np.ndarray,
        qualities: list[float] | None = None,
        sources: list[str] | None = None,
    ) -> int:
        """Faces of many subjects in one transaction (a new subject is created with no metadata)."""
        embeddings = self.index.check(embeddings)
        qualities = qualities or [None] * len(embeddings)
        sources = sources or [None] * len(embeddings)
        with self.lock:
            self._refresh()
            with self._write_transaction():
                numbers = {}
                for name in dict.fromkeys(subjects):
                    row = self.db.execute("SELECT id FROM subjects WHERE name = ?", (name,)).fetchone()
                    numbers[name] = (
                        row[0]
                        if row
                        else self.db.execute(
                            "INSERT INTO subjects (name, metadata) VALUES (?, '{}')", (name,)
                        ).lastrowid
                    )
                ids = self._insert_faces([numbers[n] for n in subjects], embeddings, qualities, sources)

            def update():
                self.index.add(list(subjects), embeddings, ids)
                self.templates.extend(list(subjects), embeddings, qualities)
                for name in numbers:
                    self.metadata.setdefault(name, {})

            self._after_write(update)
        return len(subjects)

    def sources(self) -> set[str]:
        with self.lock:
            return {row[0] for row in self.db.execute("SELECT source FROM faces WHERE source IS NOT NULL")}

    def delete(self, subject: str) -> int:
        """Remove a subject and every embedding of it; returns how many faces were removed."""
        with self.lock:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                row = self.db.execute("SELECT id FROM subjects WHERE name = ?", (subject,)).fetchone()
                if row is None:
                    raise UnknownSubject(f"subject {subject!r} is not enrolled in {self.path}")
                removed = self.db.execute("DELETE FROM faces WHERE subject_id = ?", row).rowcount
                self.db.execute("DELETE FROM subjects WHERE id = ?", row)
                self.saved_index.remove_all()  # before the commit: a saved index never outlives a delete

            def update():
                self.index.remove(subject)
                self.templates.remove(subject)
                self.metadata.pop(subject, None)

            self._after_write(update)
            return removed

    def faces(self, subject: str) -> list[dict]:
        with self.lock:
            number = self._subject_number(subject)
            rows = self.db.execute(
                "SELECT id, quality, source FROM faces WHERE subject_id = ? ORDER BY id", (number,)
            ).fetchall()
        return [{"face_id": str(i), "quality": quality, "source": source} for i, quality, source in rows]

    def _subject_number(self, subject: str) -> int:
        row = self.db.execute("SELECT id FROM subjects WHERE name = ?", (subject,)).fetchone()
        if row is None:
            raise UnknownSubject(f"subject {subject!r} is not enrolled in {self.path}")
        return row[0]

    def delete_face(self, subject: str, face_id: str) -> int:
        """Remove one face (and the subject with its last face) in one transaction; returns the faces left."""
        face = face_number(face_id)
        with self.lock:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                number = self._subject_number(subject)
                if not self.db.execute("DELETE FROM faces WHERE id = ? AND subject_id = ?", (face, number)).rowcount:
                    raise UnknownFace(f"face {face} is not one of the faces of {subject!r} in {self.path}")
                self.saved_index.remove_all()  # before the commit: a saved index never outlives a delete
                kept = self.db.execute(
                    "SELECT embedding, quality FROM faces WHERE subject_id = ? ORDER BY id", (number,)
                ).fetchall()
                left = len(kept)
                if not left:
                    self.db.execute("DELETE FROM subjects WHERE id = ?", (number,))

            def update():
                self.index.remove_face(face)
                if left:  # the template is made again from the faces kept: nothing of the deleted one stays
                    vectors = np.frombuffer(b"".join(r[0] for r in kept), np.float32).reshape(left, self.dim)
                    self.templates.replace(subject, vectors, [r[1] for r in kept])
                else:
                    self.index.remove(subject)
                    self.templates.remove(subject)
                    self.metadata.pop(subject, None)

            self._after_write(update)
            return left

    def checkpoint(self) -> bool:
        """Fold the WAL into the database file and truncate it (after a delete: no copy left behind), without
        waiting for readers. True when done; False when a reader's snapshot is in the way and the erasure
        is pending (finished later: :mod:`.erasure`; :data:`.erasure.ERASURE_PENDING` says so in words)."""
        with self.lock:
            return self.eraser.attempt()

    @property
    def erasure_pending(self) -> bool:
        return self.eraser.pending

    @property
    def erasure(self) -> str:
        return ERASURE_PENDING if self.eraser.pending else super().erasure

    def subjects(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute(
                "SELECT s.name, s.metadata, COUNT(f.id) FROM subjects s LEFT JOIN faces f ON f.subject_id = s.id "
                "GROUP BY s.id ORDER BY s.name"
            ).fetchall()
            qualities: dict[str, list] = {}
            for name, quality in self.db.execute(
                "SELECT s.name, f.quality FROM faces f JOIN subjects s ON s.id = f.subject_id ORDER BY f.id"
            ):
                # before quality scores the column held raw embedding norms: those are no quality, shown as None
                qualities.setdefault(name, []).append(quality if quality is None or 0 <= quality <= 1 else None)
        return [
            {"subject": name, "metadata": json.loads(meta), "faces": count, "qualities": qualities.get(name, [])}
            for name, meta, count in rows
        ]

    def search(
        self,
        queries: np.ndarray,
        k: int = 5,
        where: dict | None = None,
        subject: str | None = None,
        fusion: str = "best",
    ) -> list[list[tuple[str, float]]]:
        """Per query, the ``k`` best subjects (a subject scores its best face, or its template with
        ``fusion="mean"``), optionally only those whose metadata has every ``where`` key with that value,
        or only ``subject``."""
        check_fusion(fusion)
        with self.lock:
            self._refresh()
            allowed = None  # metadata is kept in memory with the index: no database read per search
            if where:
                allowed = {n for n, m in self.metadata.items() if all(m.get(a) == b for a, b in where.items())}
            if subject is not None:
                allowed = {subject} & (allowed if allowed is not None else set(self.metadata))
            index = self.templates.index if fusion == "mean" else self.index
            return index.search(queries, k, allowed)

    def __len__(self) -> int:
        with self.lock:
            self._refresh()
            return len(self.index.subject_names())

    def identification_calibration(self) -> dict | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (CALIBRATION_KEY,)).fetchone()
        return json.loads(row[0]) if row else None

    def store_identification_calibration(self, calibration: dict) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CALIBRATION_KEY, json.dumps(calibration))
            )

    def close(self) -> None:
        with self.lock:
            self.eraser.close()
            self.db.close()
