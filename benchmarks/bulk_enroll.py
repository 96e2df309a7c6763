"""Bulk enroll at scale: N faces of a ``facelearn embed`` output into milvus-lite (and SQLite), then the rerun.

    python benchmarks/bulk_enroll.py [--faces 1000000] [--dim 512] [--stores milvus sqlite] [--work DIR]

The faces are synthetic unit vectors (a gallery does not look inside them), one a photo, ten photos a
subject, written as the Parquet shards ``facelearn embed`` writes (1,000 photos a shard). Measured per
store: the first ``enroll --from-embeddings`` (faces/s, in batches of 10,000), the rerun that adds
nothing (it reads the sources the gallery holds and skips them all), the gallery's size on disk and the
peak resident memory of this process and its children (milvus-lite runs as one). Writes
benchmarks/results/bulk_enroll.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import RESULTS, ProcessTreeUsage, write_result

from facelearn.bulk.enroll import enroll_from_embeddings
from facelearn.bulk.output import schema, shard_name

MODEL_ID = "benchmark0000001"
PER_SHARD = 1000


def write_embeddings(folder: Path, faces: int, dim: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for start in range(0, faces, PER_SHARD):
        count = min(PER_SHARD, faces - start)
        keys = [f"person{(start + i) // 10:07d}/{(start + i) % 10}.jpg" for i in range(count)]
        vectors = rng.standard_normal((count, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        columns = {
            "photo_key": pa.array(keys),
            "subject": pa.array([key.split("/")[0] for key in keys]),
            "model_id": pa.array([MODEL_ID] * count),
            "status": pa.array(["ok"] * count),
            "reason": pa.nulls(count, pa.string()),
            "faces": pa.array(np.ones(count, np.int32)),
            "face_index": pa.array(np.zeros(count, np.int32)),
            "box": pa.FixedSizeListArray.from_arrays(pa.array(np.tile([0, 0, 90, 110], count).astype(np.float32)), 4),
            "landmarks": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(10 * count, np.float32)), 10),
            "score": pa.array(np.ones(count, np.float32)),
            "quality": pa.array(np.full(count, 20.0, np.float32)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
        table = pa.Table.from_pydict(columns, schema=schema(dim))
        pq.write_table(table, folder / shard_name(MODEL_ID, keys))


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def measure(embeddings: Path, gallery: Path, store: str) -> dict:
    with ProcessTreeUsage() as usage:
        start = time.perf_counter()
        first = enroll_from_embeddings(str(embeddings), str(gallery), store)
        seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = enroll_from_embeddings(str(embeddings), str(gallery), store)
    rerun = time.perf_counter() - start
    assert again["faces_enrolled"] == 0 and again["already_enrolled"] == first["faces_enrolled"]
    return {
        "faces": first["faces_enrolled"],
        "subjects": first["subjects"],
        "seconds": round(seconds, 1),
        "faces_per_second": round(first["faces_enrolled"] / seconds),
        "rerun_seconds": round(rerun, 1),
        "rerun_added": again["faces_enrolled"],
        "gallery_mib": round(size_of(gallery) / 2**20),
        "peak_memory_mib": round(usage.peak / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--stores", nargs="+", default=["milvus", "sqlite"])
    parser.add_argument("--work", help="folder for the Parquet and the galleries (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bulk_enroll_"))
    embeddings = work / "embeddings"
    if not embeddings.is_dir():
        write_embeddings(embeddings, args.faces, args.dim)
    rows = {}
    for store in args.stores:
        gallery = work / ("gallery.milvus.db" if store == "milvus" else "gallery.db")
        for stale in work.glob(gallery.name + "*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        rows[store] = measure(embeddings, gallery, store)
        print(f"{store}: {rows[store]}", flush=True)
    write_result(RESULTS / "bulk_enroll.json", {"faces": args.faces, "dim": args.dim, "stores": rows})


if __name__ == "__main__":
    main()
