"""Identify latency, memory per face and build time at 1k, 100k and 1M faces; recall of the approximate index.

    python benchmarks/gallery_search.py [--sizes 1000 100000 1000000] [--queries 200] [--milvus-max 100000]

Synthetic 512-d unit faces, one per subject; each query is a gallery face plus noise (cosine
≈ 0.7 with its mate, as a real second photo), so the right answer is known. Per index: build time,
memory per face, single-query latency p50/p99 of a top-5 subject search, recall@1 against the
exact search. Indexes: exact NumPy float32 (the default), faiss SQfp16 (exact over float16
codes), faiss HNSW32 (approximate, M = 32, efConstruction 40, searched at efSearch 64, 256 and
1024) and Milvus through milvus-lite (FLAT, up to
``--milvus-max`` faces). Enroll throughput: subjects/s into the SQLite and Milvus galleries, one
subject per transaction. Writes benchmarks/results/gallery_search.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, write_result

from facelearn.deploy.gallery import build_index, open_gallery

DIM = 512


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def faces_and_queries(size: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(size)
    faces = np.empty((size, DIM), np.float32)
    for start in range(0, size, 100_000):
        faces[start : start + 100_000] = unit(rng.standard_normal((min(100_000, size - start), DIM), np.float32))
    mates = rng.choice(size, queries, replace=False)
    noise = unit(rng.standard_normal((queries, DIM), np.float32))
    return faces, unit(0.7 * faces[mates] + 0.714 * noise), mates


def latencies(search, queries: np.ndarray) -> tuple[list, np.ndarray]:
    times, answers = [], []
    for query in queries:
        start = time.perf_counter()
        found = search(query[None])
        times.append(time.perf_counter() - start)
        answers.append(found[0][0][0] if found[0] else None)
    return answers, 1000 * np.array(times)


def measure(name: str, size: int, build, faces, queries, mates, exact_answers=None) -> dict:
    start = time.perf_counter()
    index, memory = build(faces)
    build_seconds = time.perf_counter() - start
    answers, ms = latencies(lambda q: index.search(q, 5), queries)
    truth = [f"s{m}" for m in mates]
    row = {
        "faces": size,
        "index": name,
        "build_seconds": round(build_seconds, 2),
        "bytes_per_face": round(memory / size, 1) if memory else None,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "rank1_correct": float(np.mean([a == t for a, t in zip(answers, truth, strict=True)])),
        "recall_at_1_vs_exact": None
        if exact_answers is None
        else float(np.mean([a == e for a, e in zip(answers, exact_answers, strict=True)])),
    }
    print(
        f"{size:>9,} {name:<14} build {row['build_seconds']:>8.2f} s  {row['bytes_per_face'] or 0:>7.1f} B/face  "
        f"p50 {row['p50_ms']:>8.2f} ms  p99 {row['p99_ms']:>8.2f} ms  recall@1 {row['recall_at_1_vs_exact']}",
        flush=True,
    )
    return row, answers


def faiss_builder(kind: str):
    def build(faces):
        index = build_index(DIM, kind)
        index.add([f"s{i}" for i in range(len(faces))], faces)
        return index, index.memory_bytes()

    return build


def exact_builder(faces):
    index = build_index(DIM, "exact")
    index.add([f"s{i}" for i in range(len(faces))], faces)
    return index, index.memory_bytes()


def milvus_builder(folder: Path):
    def build(faces):
        gallery = open_gallery(folder / f"milvus_{len(faces)}.db", "bench", DIM, "milvus")
        rows = [{"subject": f"s{i}", "embedding": f.tolist(), "metadata": {}} for i, f in enumerate(faces)]
        for start in range(0, len(rows), 5000):
            gallery.client.insert(gallery.collection, rows[start : start + 5000])
        gallery.client.flush(gallery.collection)
        return gallery, None

    return build


def hnsw_rows(size, faces, queries, mates, exact_answers, depths=(64, 256, 1024)) -> list[dict]:
    """One HNSW32 build (timed in the first row), searched at several efSearch: recall against latency."""
    built = {}

    def build_once(faces):
        if "index" not in built:
            built["index"], built["memory"] = faiss_builder("HNSW32")(faces)
        built["index"].search_depth = built["depth"]
        return built["index"], built["memory"]

    rows = []
    for depth in depths:
        built["depth"] = depth
        row = measure(f"HNSW32 ef={depth}", size, build_once, faces, queries, mates, exact_answers)[0]
        row["build_seconds"] = row["build_seconds"] if depth == depths[0] else None
        rows.append(row)
    return rows


def enroll_throughput(folder: Path, store: str, count: int = 1000) -> float:
    gallery = open_gallery(folder / f"enroll_{store}.db", "bench", DIM, store)
    faces = unit(np.random.default_rng(1).standard_normal((count, DIM), np.float32))
    start = time.perf_counter()
    for i, face in enumerate(faces):
        gallery.enroll(f"person{i}", face[None])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-max", type=int, default=100_000)
    parser.add_argument("--output", default=str(RESULTS / "gallery_search.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for size in args.sizes:
            faces, queries, mates = faces_and_queries(size, args.queries)
            row, exact_answers = measure("exact float32", size, exact_builder, faces, queries, mates)
            rows.append(row)
            rows.append(measure("faiss SQfp16", size, faiss_builder("SQfp16"), faces, queries, mates, exact_answers)[0])
            rows += hnsw_rows(size, faces, queries, mates, exact_answers)
            if size <= args.milvus_max:
                milvus = measure("milvus-lite", size, milvus_builder(folder), faces, queries, mates, exact_answers)
                rows.append(milvus[0])
        enroll = {store: round(enroll_throughput(folder, store), 1) for store in ("sqlite", "milvus")}
    print(f"enroll, one subject per transaction: {enroll} subjects/s")
    write_result(args.output, {"dimension": DIM, "queries": args.queries, "rows": rows, "enroll_per_second": enroll})


if __name__ == "__main__":
    main()
