"""Search a million realistic faces: exact, the 8-bit scan, IVF settings, Milvus, and a gallery reopened.

    python benchmarks/realistic_search.py [--faces 1000000] [--per-identity 5] [--queries 400]
        [--ef-search 64 128 256 512] [--lists 1024] [--probes 16 64 128] [--milvus-faces 200000] [--gallery]

Faces: :func:`facelearn.eval.synthetic_faces.generate_faces` with the model fitted to dlib on LFW-a
(results/face_statistics.json, made by benchmarks/face_statistics.py), ``--per-identity`` faces per
identity, 512-d. Probes: half held-out faces of enrolled identities (another stream of the same
identities), half faces of identities never enrolled. The truth is the exact float32 search (one
batched product); recall@1 is the share of probes whose best subject is the exact search's, per
kind of probe. Per index: build time, memory per face (its own bytes: float32 rows, codes, lists,
row → subject), p50/p99 of one top-5 subject search per query (2 threads). ``--gallery``: a SQLite
gallery of all faces opened with ``hnsw`` (build and save) and again (the saved index). Writes
benchmarks/results/realistic_search.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, write_result

import facelearn.deploy.gallery.index as index_module
from facelearn.deploy.gallery.index import ApproximateIndex, ExactIndex, FaissIndex
from facelearn.eval.synthetic_faces import FaceModel, generate_faces

DIM = 512


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dataset(model: FaceModel, faces: int, per_identity: int, queries: int, seed: int):
    identities = faces // per_identity
    gallery, identity = generate_faces(model, identities, per_identity, DIM, seed=seed)
    rng = np.random.default_rng(seed)
    mated_ids = rng.choice(identities, queries // 2, replace=False)
    mated, _ = generate_faces(model, mated_ids, 1, DIM, seed=seed, stream=1)
    strangers, _ = generate_faces(model, identities + np.arange(queries - queries // 2), 1, DIM, seed=seed, stream=1)
    probes = np.empty((queries, DIM), np.float32)  # mated and non-mated in turn: any prefix holds both
    probes[0::2], probes[1::2] = mated, strangers
    truth = [None] * queries
    truth[0::2] = [f"s{i}" for i in mated_ids]
    return gallery, [f"s{i}" for i in identity], probes, truth


def exact_answers(gallery: np.ndarray, subjects: list[str], probes: np.ndarray) -> list[str]:
    """The best subject per probe = the subject of the best face: one batched float32 product."""
    best = np.argmax(probes @ gallery.T, axis=1)
    return [subjects[row] for row in best]


def timed_search(index, probes: np.ndarray, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    answers, times = [], []
    for probe in probes[:limit]:
        start = time.perf_counter()
        found = index.search(probe[None], 5)
        times.append(time.perf_counter() - start)
        answers.append(found[0][0][0])
    return answers, 1000 * np.array(times)


def row(name: str, build: float | None, index, answers, ms, exact, truth, settings: dict) -> dict:
    agree = np.array([a == e for a, e in zip(answers, exact, strict=False)])
    mated = np.array([t is not None for t in truth[: len(answers)]])
    record = {
        "index": name,
        **settings,
        "build_seconds": None if build is None else round(build, 1),
        "bytes_per_face": round(index.memory_bytes() / index.rows, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "queries": len(ms),
        "recall_at_1": round(float(agree.mean()), 4),
        "recall_at_1_mated": round(float(agree[mated].mean()), 4),
        "recall_at_1_non_mated": round(float(agree[~mated].mean()), 4),
        "load_average": load(),
    }
    print(
        f"{name:<34} build {record['build_seconds'] or 0:>7.1f} s  {record['bytes_per_face']:>7.1f} B/face  "
        f"p50 {record['p50_ms']:>7.2f} ms  p99 {record['p99_ms']:>7.2f} ms  recall@1 {record['recall_at_1']:.4f} "
        f"(mated {record['recall_at_1_mated']:.4f}, non-mated {record['recall_at_1_non_mated']:.4f})  "
        f"load {record['load_average']}",
        flush=True,
    )
    return record


def measure_exact(gallery, subjects, probes, exact, truth, limit: int) -> list[dict]:
    rows = []
    for name, scan_from in (("exact float32", 10**12), ("exact, 8-bit scan + float32 re-score", 1)):
        index_module.SCAN_FROM = scan_from
        start = time.perf_counter()
        index = ExactIndex(DIM)
        index.add(subjects, gallery)
        build = time.perf_counter() - start
        answers, ms = timed_search(index, probes, limit)
        rows.append(row(name, build, index, answers, ms, exact, truth, {}))
        del index
        gc.collect()
    index_module.SCAN_FROM = 50_000
    return rows


def measure_approximate(gallery, subjects, probes, exact, truth, kind: str, depths, lists=None) -> list[dict]:
    """One build (timed in the first row), searched at several depths (HNSW efSearch, IVF nprobe)."""
    start = time.perf_counter()
    index = ApproximateIndex(DIM, kind)
    index.lists = lists
    index.add(subjects, gallery)
    build = time.perf_counter() - start
    rows = []
    for number, depth in enumerate(depths):
        index.depth = depth
        answers, ms = timed_search(index, probes)
        if kind == "hnsw":
            name, settings = "hnsw (PCA64 + HNSW32, re-score 64)", {"ef_search": depth}
        else:
            name, settings = f"ivf (IVF{lists},SQ8, re-score 64)", {"lists": lists, "probes": depth}
        rows.append(row(name, build if number == 0 else None, index, answers, ms, exact, truth, settings))
    del index
    gc.collect()
    return rows


def measure_ivf_flat(gallery, subjects, probes, exact, truth, lists: int, probe_counts) -> list[dict]:
    """faiss IVF-Flat: float32 in the lists, no re-scoring needed (and no second copy)."""
    import faiss

    start = time.perf_counter()
    index = FaissIndex(DIM, f"IVF{lists},Flat")
    index.index = faiss.index_factory(DIM, f"IVF{lists},Flat", faiss.METRIC_L2)  # as ivf: nearest lists
    picked = np.sort(np.random.default_rng(0).choice(len(gallery), 64 * lists, replace=False))
    index.train(gallery[picked])
    index.add(subjects, gallery)
    build = time.perf_counter() - start
    rows = []
    for number, probes_scanned in enumerate(probe_counts):
        index.search_depth = probes_scanned
        answers, ms = timed_search(index, probes)
        settings = {"lists": lists, "probes": probes_scanned}
        build_seconds = build if number == 0 else None
        rows.append(row(f"faiss IVF{lists},Flat", build_seconds, index, answers, ms, exact, truth, settings))
    del index, faiss
    gc.collect()
    return rows


def measure_milvus(gallery, subjects, probes, exact_all, truth, size: int, lists: int, probe_counts, folder: Path):
    """milvus-lite on the first ``size`` faces (their own exact answers), IVF_SQ8 and IVF_FLAT at the same lists."""
    from pymilvus import DataType, MilvusClient

    exact = exact_answers(gallery[:size], subjects[:size], probes)
    rows = []
    for kind in ("IVF_SQ8", "IVF_FLAT"):
        client = MilvusClient(str(folder / f"milvus_{kind}.db"))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
        start = time.perf_counter()
        client.create_collection("faces", schema=schema)
        for first in range(0, size, 10_000):
            block = gallery[first : min(size, first + 10_000)]
            client.insert("faces", [{"id": first + i, "embedding": v.tolist()} for i, v in enumerate(block)])
        client.flush("faces")
        params = client.prepare_index_params()
        params.add_index("embedding", index_type=kind, metric_type="IP", params={"nlist": lists})
        client.create_index("faces", params)
        client.load_collection("faces")
        build = time.perf_counter() - start
        described = client.describe_index("faces", "embedding")
        for number, probes_scanned in enumerate(probe_counts):
            answers, times = [], []
            for probe in probes:
                began = time.perf_counter()
                search = {"metric_type": "IP", "params": {"nprobe": probes_scanned}}
                hits = client.search("faces", [probe.tolist()], limit=5, search_params=search)
                times.append(time.perf_counter() - began)
                answers.append(subjects[hits[0][0]["id"]])
            agree = np.array([a == e for a, e in zip(answers, exact, strict=True)])
            mated = np.array([t is not None for t in truth])
            record = {
                "index": f"milvus-lite {kind}",
                "faces": size,
                "lists": lists,
                "probes": probes_scanned,
                "index_as_described": {k: described.get(k) for k in ("index_type", "nlist", "metric_type")},
                "build_seconds": round(build, 1) if number == 0 else None,
                "p50_ms": round(float(np.percentile(1000 * np.array(times), 50)), 2),
                "p99_ms": round(float(np.percentile(1000 * np.array(times), 99)), 2),
                "queries": len(times),
                "recall_at_1": round(float(agree.mean()), 4),
                "recall_at_1_mated": round(float(agree[mated].mean()), 4),
                "recall_at_1_non_mated": round(float(agree[~mated].mean()), 4),
                "load_average": load(),
            }
            print(json.dumps(record), flush=True)
            rows.append(record)
        client.close()
    return rows


def measure_gallery(gallery, subjects, folder: Path) -> dict:
    """A SQLite gallery of every face: open with ``hnsw`` (builds and saves), then open again (reads the file)."""
    from facelearn.deploy.gallery import open_gallery

    path = folder / "gallery.db"
    store = open_gallery(path, "synthetic", DIM)
    start = time.perf_counter()
    for first in range(0, len(gallery), 50_000):
        store.add_faces(subjects[first : first + 50_000], gallery[first : first + 50_000])
    enroll = time.perf_counter() - start
    store.close()
    timings = {"faces": len(gallery), "enroll_seconds": round(enroll, 1)}
    for step in ("first_open_seconds", "reopen_seconds"):
        start = time.perf_counter()
        store = open_gallery(path, "synthetic", DIM, index="hnsw")
        timings[step] = round(time.perf_counter() - start, 1)
        store.close()
        gc.collect()
    saved = path.with_name(f"{path.name}.hnsw.index")
    timings["index_file_mib"] = round(saved.stat().st_size / 2**20, 1)
    timings["load_average"] = load()
    print(f"gallery: {timings}", flush=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--per-identity", type=int, default=5)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--exact-queries", type=int, default=100, help="single-query timings of the exact indexes")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--lists", type=int, nargs="*", default=[1024], help="IVF lists (none: no IVF rows)")
    parser.add_argument("--probes", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--ivf-flat", action="store_true")
    parser.add_argument("--milvus-faces", type=int, default=0)
    parser.add_argument("--milvus-lists", type=int, default=1024)
    parser.add_argument("--gallery", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="a folder for the gallery and milvus-lite files")
    parser.add_argument("--output", default=str(RESULTS / "realistic_search.json"))
    args = parser.parse_args()
    fitted = json.loads((RESULTS / "face_statistics.json").read_text())
    model = FaceModel.from_dict(fitted["face_model"])
    started, load_start = time.perf_counter(), load()
    gallery, subjects, probes, truth = dataset(model, args.faces, args.per_identity, args.queries, args.seed)
    generate_seconds = time.perf_counter() - started
    identities = args.faces // args.per_identity
    print(f"{args.faces:,} faces of {identities:,} identities in {generate_seconds:.1f} s", flush=True)
    exact = exact_answers(gallery, subjects, probes)
    mated = [t for t in truth if t is not None]
    rank1 = float(np.mean([e == t for e, t in zip(exact, truth, strict=True) if t is not None]))
    rows = measure_exact(gallery, subjects, probes, exact, truth, args.exact_queries)
    rows += measure_approximate(gallery, subjects, probes, exact, truth, "hnsw", args.ef_search)
    for lists in args.lists:
        rows += measure_approximate(gallery, subjects, probes, exact, truth, "ivf", args.probes, lists)
        if args.ivf_flat:
            rows += measure_ivf_flat(gallery, subjects, probes, exact, truth, lists, args.probes)
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        milvus = []
        if args.milvus_faces:
            milvus = measure_milvus(
                gallery, subjects, probes, exact, truth, args.milvus_faces, args.milvus_lists, args.probes, Path(folder)
            )
        reopen = measure_gallery(gallery, subjects, Path(folder)) if args.gallery else None
    record = {
        "faces": args.faces,
        "identities": args.faces // args.per_identity,
        "faces_per_identity": args.per_identity,
        "dimension": DIM,
        "face_model": model.to_dict(),
        "face_model_from": "results/face_statistics.json (dlib on LFW-a)",
        "generate_seconds": round(generate_seconds, 1),
        "probes": {"mated": len(mated), "non_mated": len(truth) - len(mated)},
        "exact_rank1_of_mated": round(rank1, 4),
        "threads": 2,
        "load_average_start": load_start,
        "load_average_end": load(),
        "shared_machine": "other jobs ran on the same 2 cores: timings are medians over the queries",
        "rows": rows,
        "milvus": milvus,
        "gallery_reopen": reopen,
    }
    write_result(args.output, record)


if __name__ == "__main__":
    main()
