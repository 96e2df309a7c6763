"""``facelearn enroll GALLERY --from-embeddings OUT``: a ``facelearn embed`` output into a gallery, in batches.

    facelearn enroll people.db --from-embeddings faces/                   # SQLite; subject: the photo's folder
    facelearn enroll people.milvus.db --from-embeddings faces/ --store milvus --subject-column person

Each photo gives its largest face (``--faces all``: every face) to its subject: the ``subject`` column
(the folder that holds the photo, or the PHOTOS Parquet's ``subject``), or another column. Every face
is stored with its source, ``<photo key>#<face index>``, and faces whose source the gallery already
holds are skipped: a rerun, or a run after a kill mid-way, adds nothing twice. Faces go in batches of
``batch`` (one transaction, or one insert request, each). Embeddings of another model are refused:
the gallery names the model it holds, and ``model_id`` (from ``--model``) must be the Parquet's.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..deploy.gallery import open_gallery
from ..deploy.subject_ids import subject_id
from ..errors import DataError
from .output import model_ids, shards
from .sources import filesystem

log = logging.getLogger(__name__)
BATCH = 10_000
FACES = ("largest", "all")


def choose_model(embeddings: str, model_id: str | None) -> str:
    found = model_ids(embeddings)
    if not found:
        raise DataError(f"{embeddings} holds no output of facelearn embed (part-<model>-<digest>.parquet files)")
    if model_id is not None and model_id not in found:
        raise DataError(
            f"{embeddings} holds embeddings of model {', '.join(found)}, not of model {model_id}: embeddings of "
            "different models cannot be compared; embed the photos with this model first"
        )
    if model_id is None and len(found) > 1:
        raise DataError(f"{embeddings} holds embeddings of several models ({', '.join(found)}): name one with --model")
    return model_id or found[0]


def chosen_faces(table: pa.Table, faces: str) -> pa.Table:
    """The face rows of a shard: all, or the largest box of each photo (a shard holds whole photos)."""
    table = table.filter(pc.is_valid(table["face_index"]))
    if faces == "all" or len(table) == 0:
        return table
    boxes = table["box"].combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    best: dict[str, int] = {}
    for row, key in enumerate(table["photo_key"].to_pylist()):
        if key not in best or areas[row] > areas[best[key]]:
            best[key] = row
    return table.take(sorted(best.values()))


def enroll_from_embeddings(
    embeddings: str,
    gallery: str,
    store: str | None = None,
    model_id: str | None = None,
    subject_column: str = "subject",
    faces: str = "largest",
    batch: int = BATCH,
) -> dict:
    """Enroll the faces of ``embeddings`` (a facelearn embed output) into ``gallery``; returns the counts."""
    if faces not in FACES:
        raise DataError(f"unknown --faces {faces!r}; valid: {', '.join(FACES)}")
    model_id = choose_model(embeddings, model_id)
    files = shards(embeddings, model_id)
    system, _ = filesystem(embeddings)
    with system.open_input_file(files[0]) as handle:
        schema = pq.read_schema(handle)
    if subject_column not in schema.names:
        raise DataError(f"{embeddings} has no column {subject_column!r}; its columns: {', '.join(schema.names)}")
    target = open_gallery(gallery, model_id, schema.field("embedding").type.list_size, store)
    try:
        enrolled = target.sources()
        counts = {"model_id": model_id, "faces_enrolled": 0, "already_enrolled": 0, "without_subject": 0}
        pending: list[pa.Table] = []
        columns = list(dict.fromkeys(["photo_key", "face_index", "box", "quality", "embedding", subject_column]))
        for path in files:
            with system.open_input_file(path) as handle:
                table = chosen_faces(pq.read_table(handle, columns=columns), faces)
            table = unseen(table, subject_column, enrolled, counts)
            if len(table):
                pending.append(table)
            if sum(len(t) for t in pending) >= batch:
                counts["faces_enrolled"] += add(target, pa.concat_tables(pending), subject_column, enrolled)
                pending = []
        if pending:
            counts["faces_enrolled"] += add(target, pa.concat_tables(pending), subject_column, enrolled)
        target.checkpoint()
        counts["subjects"] = len(target)
    finally:
        target.close()
    return counts


def unseen(table: pa.Table, subject_column: str, enrolled: set[str], counts: dict) -> pa.Table:
    """The faces not enrolled yet that have a subject, with their ``source`` column; counts the others."""
    keys, indices = table["photo_key"].to_pylist(), table["face_index"].to_pylist()
    sources = [f"{key}#{index}" for key, index in zip(keys, indices, strict=True)]
    new = np.array([source not in enrolled for source in sources], bool)
    named = np.array([bool(subject) for subject in table[subject_column].to_pylist()], bool)
    counts["already_enrolled"] += int((~new).sum())
    counts["without_subject"] += int((new & ~named).sum())
    keep = pa.array(new & named)
    return table.append_column("source", pa.array(sources, pa.string())).filter(keep)


def add(target, table: pa.Table, subject_column: str, enrolled: set[str]) -> int:
    """One batch into the gallery (one write); its sources join the skip list."""
    vectors = table["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    sources = table["source"].to_pylist()
    target.add_faces(
        [subject_id(str(s)) for s in table[subject_column].to_pylist()],  # the one rule for subject ids
        vectors.reshape(len(table), -1).astype(np.float32),
        None,  # the Parquet's "quality" is the raw embedding norm, not a quality in [0, 1] (deploy/quality.py)
        sources,
    )
    enrolled.update(sources)
    log.info("enrolled %d faces", len(table))
    return len(table)
