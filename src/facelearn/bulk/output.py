"""The output of ``facelearn embed``: a folder of Parquet shards, one per batch, and a report.

    OUT/part-<model id>-<digest of the batch's photo keys>.parquet
    OUT/embed_report.json

A shard holds one row per face found (``face_index`` 0, 1, …) and one row per photo without a face
(``face_index`` null, ``status`` no_face, missing, unreadable or too_large, with the ``reason``), so
every photo of the batch is in it and a rerun knows it was done. Columns: ``photo_key``, ``subject``,
``model_id``, ``status``, ``reason``, ``faces`` (found in the photo), ``face_index``, ``box`` (x1, y1,
x2, y2), ``landmarks`` (five x, y), ``score`` (detection), ``quality`` (the embedding's raw norm),
``embedding`` (unit length). :func:`face_rows` reads the faces only.

A shard appears at once or not at all: it is written to a hidden temporary name and renamed (on an
object store a put is already all or nothing). Its name is fixed by the photos it holds, so a batch
that runs twice (an actor killed after writing) replaces its shard instead of adding a second; a
rerun skips every photo already in a shard of the same model.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .sources import filesystem, is_uri

FORMAT = "facelearn-face-embeddings/1"
REPORT = "embed_report.json"
SHARD = re.compile(r"^part-(?P<model>[0-9A-Za-z_]+)-(?P<digest>[0-9a-f]{20})\.parquet$")


def schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("photo_key", pa.string()),
            ("subject", pa.string()),
            ("model_id", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
            ("faces", pa.int32()),
            ("face_index", pa.int32()),
            ("box", pa.list_(pa.float32(), 4)),
            ("landmarks", pa.list_(pa.float32(), 10)),
            ("score", pa.float32()),
            ("quality", pa.float32()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ],
        metadata={"facelearn.format": FORMAT},
    )


def shard_name(model_id: str, keys: list[str]) -> str:
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
    return f"part-{model_id}-{digest}.parquet"


def write_shard(output: str, model_id: str, keys: list[str], rows: list[dict], dim: int) -> str:
    """Write the batch's rows as one shard, atomically; returns its name."""
    table = pa.Table.from_pylist(rows, schema=schema(dim))
    name = shard_name(model_id, keys)
    system, folder = filesystem(output)
    if isinstance(system, pafs.LocalFileSystem):
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            pq.write_table(table, temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, os.path.join(folder, name))
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    else:  # an object store: a put is all or nothing
        pq.write_table(table, f"{folder.rstrip('/')}/{name}", filesystem=system)
    return name


def shards(output: str, model_id: str | None = None) -> list[str]:
    """The shard files of ``output`` (of one model), as paths inside its filesystem, sorted."""
    system, folder = filesystem(output)
    try:
        found = system.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except NotADirectoryError:
        return []
    names = []
    for info in found:
        match = SHARD.match(info.base_name)
        if info.type == pafs.FileType.File and match and (model_id is None or match["model"] == model_id):
            names.append(info.path)
    return sorted(names)


def model_ids(output: str) -> list[str]:
    return sorted({SHARD.match(path.rsplit("/", 1)[-1])["model"] for path in shards(output)})


def read_columns(output: str, model_id: str | None, columns: list[str]) -> pa.Table:
    """``columns`` of every shard (of one model); ``__filename`` names each row's shard."""
    import pyarrow.dataset as ds

    files = shards(output, model_id)
    if not files:
        return pa.table({name: pa.array([], pa.string()) for name in columns})
    system, _ = filesystem(output)
    return ds.dataset(files, filesystem=system, format="parquet").to_table(columns=columns)


def done_keys(output: str, model_id: str) -> set[str]:
    """The photos a shard of this model already holds: what a rerun skips."""
    return set(read_columns(output, model_id, ["photo_key"])["photo_key"].to_pylist())


def remove_duplicates(output: str, model_id: str) -> int:
    """Keep each photo in one shard (the first by name): rows of a photo that a later shard holds again are
    removed from it. Fixed batches make this a no-op; it guards the rare race of an actor of a killed driver
    that wrote a shard after the rerun listed what was done. Returns the rows removed."""
    table = read_columns(output, model_id, ["photo_key", "__filename"])
    owner: dict[str, str] = {}
    spoiled: dict[str, set[str]] = {}
    for key, path in zip(table["photo_key"].to_pylist(), table["__filename"].to_pylist(), strict=True):
        first = owner.setdefault(key, path)
        if first != path:
            spoiled.setdefault(path, set()).add(key)
    system, _ = filesystem(output)
    removed = 0
    for path, keys in spoiled.items():
        with system.open_input_file(path) as handle:
            shard = pq.read_table(handle)
        kept = shard.filter(pa.compute.invert(pa.compute.is_in(shard["photo_key"], pa.array(sorted(keys)))))
        removed += len(shard) - len(kept)
        rewrite(system, path, kept)
    return removed


def rewrite(system, path: str, table: pa.Table) -> None:
    if len(table) == 0:
        system.delete_file(path)
        return
    if isinstance(system, pafs.LocalFileSystem):
        temporary = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{os.getpid()}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    else:
        pq.write_table(table, path, filesystem=system)


def remove_temporaries(output: str) -> None:
    """Hidden ``.part-*.tmp`` files a killed worker left behind (never read; removed at the next run)."""
    if is_uri(output) and not output.startswith("file://"):
        return
    _, folder = filesystem(output)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(".part-") and name.endswith(".tmp"):
                os.unlink(os.path.join(folder, name))


def face_batches(output: str, model_id: str, columns: list[str], rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """The face rows (``face_index`` set) of one model, ``columns`` only, in record batches: memory stays
    bounded for millions of faces."""
    import pyarrow.dataset as ds

    files = shards(output, model_id)
    if not files:
        return
    system, _ = filesystem(output)
    dataset = ds.dataset(files, filesystem=system, format="parquet")
    yield from dataset.to_batches(columns=columns, filter=ds.field("face_index").is_valid(), batch_size=rows)


def face_rows(output: str, model_id: str | None = None) -> pa.Table:
    """Every face of ``output`` (of one model, or all) as one table: for tests and small outputs."""
    import pyarrow.dataset as ds

    files = shards(output, model_id)
    if not files:
        return schema(0).empty_table()
    system, _ = filesystem(output)
    return ds.dataset(files, filesystem=system, format="parquet").to_table(filter=ds.field("face_index").is_valid())
