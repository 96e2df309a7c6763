"""Search a million realistic faces: exact, the 8-bit scan, hnsw and ivf settings, Milvus, a gallery reopened.

    python benchmarks/realistic_search.py [--faces 1000000] [--per-identity 5] [--queries 400]
        [--ef-search 64 128 256 512] [--lists 1024] [--probes 16 64 128] [--milvus-faces 100000]

Faces: :func:`facelearn.eval.synthetic_faces.generate_faces` with the model fitted to dlib on LFW-a
(results/face_statistics.json, made by benchmarks/face_statistics.py), ``--per-identity`` faces per
identity, 512-d. Probes: half held-out faces of enrolled identities (another stream of the same
identities), half faces of identities never enrolled, in turn. The truth is the exact float32 search
(one batched product); recall@1 is the share of probes whose best subject is the exact search's, per
kind of probe. Per index: build time, memory per face (its own bytes: float32 rows, codes, graph or
lists, row → subject), p50/p99 of one top-5 subject search per query (2 threads) and its CPU time
(the figure a shared machine's load does not inflate). The hnsw index is the one a SQLite gallery of
all the faces builds when first opened with ``index="hnsw"`` (its build time is that open: read the
embeddings, build, save); the gallery is then opened again from the saved index. Writes
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
from facelearn.deploy.gallery import open_gallery
from facelearn.deploy.gallery.approximate_index import ApproximateIndex
from facelearn.deploy.gallery.index import ExactIndex
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


def timed_search(index, probes: np.ndarray, limit: int | None = None):
    """Answers, wall milliseconds and CPU milliseconds (every thread of this process) per query."""
    answers, wall, cpu = [], [], []
    for probe in probes[:limit]:
        start, start_cpu = time.perf_counter(), time.process_time()
        found = index.search(probe[None], 5)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        answers.append(found[0][0][0])
    return answers, 1000 * np.array(wall), 1000 * np.array(cpu)


def agreement(answers, exact, truth) -> dict:
    agree = np.array([a == e for a, e in zip(answers, exact, strict=False)])
    mated = np.array([t is not None for t in truth[: len(answers)]])
    return {
        "recall_at_1": round(float(agree.mean()), 4),
        "recall_at_1_mated": round(float(agree[mated].mean()), 4),
        "recall_at_1_non_mated": round(float(agree[~mated].mean()), 4),
    }


def row(name: str, build: float | None, index, timed, exact, truth, settings: dict) -> dict:
    answers, wall, cpu = timed
    record = {
        "index": name,
        **settings,
        "build_seconds": None if build is None else round(build, 1),
        "bytes_per_face": round(index.memory_bytes() / index.rows, 1),
        "p50_ms": round(float(np.percentile(wall, 50)), 2),
        "p99_ms": round(float(np.percentile(wall, 99)), 2),
        "cpu_ms_p50": round(float(np.percentile(cpu, 50)), 2),
        "queries": len(wall),
        **agreement(answers, exact, truth),
        "load_average": load(),
    }
    print(json.dumps(record), flush=True)
    return record


def measure_exact(gallery, subjects, probes, exact, truth, limit: int) -> list[dict]:
    rows = []
    for name, scan_from in (("exact float32", 10**12), ("exact, 8-bit scan + float32 re-score", 1)):
        index_module.SCAN_FROM = scan_from
        start = time.perf_counter()
        index = ExactIndex(DIM)
        index.add(subjects, gallery)
        build = time.perf_counter() - start
        rows.append(row(name, build, index, timed_search(index, probes, limit), exact, truth, {}))
        del index
        gc.collect()
    index_module.SCAN_FROM = 50_000
    return rows


def sweep(index: ApproximateIndex, build: float, probes, exact, truth, depths) -> list[dict]:
    """One built index (its build time in the first row), searched at several depths (efSearch, nprobe)."""
    rows = []
    for number, depth in enumerate(depths):
        index.depth = depth
        if index.kind == "hnsw":
            name, settings = "hnsw (PCA64 + HNSW32, re-score 64)", {"ef_search": depth}
        else:
            lists = index.coarse.nlist
            name, settings = f"ivf (IVF{lists},SQ8, re-score 64)", {"lists": lists, "probes": depth}
        timed = timed_search(index, probes)
        rows.append(row(name, build if number == 0 else None, index, timed, exact, truth, settings))
    return rows


def measure_ivf(gallery, subjects, probes, exact, truth, lists: int, depths) -> list[dict]:
    start = time.perf_counter()
    index = ApproximateIndex(DIM, "ivf")
    index.lists = lists
    index.add(subjects, gallery)
    rows = sweep(index, time.perf_counter() - start, probes, exact, truth, depths)
    del index
    gc.collect()
    return rows


def measure_milvus(gallery, subjects, probes, truth, size: int, depths: dict, lists: int, folder: Path) -> list[dict]:
    """milvus-lite on the first ``size`` faces (against their own exact answers): HNSW at the hnsw rows' graph
    settings (M 32, efConstruction 40, on the full 512-d rows: Milvus has no PCA step) and IVF_SQ8."""
    from pymilvus import DataType, MilvusClient

    exact = exact_answers(gallery[:size], subjects[:size], probes)
    settings = {
        "HNSW": ({"M": 32, "efConstruction": 40}, "ef", depths["hnsw"]),
        "IVF_SQ8": ({"nlist": lists}, "nprobe", depths["ivf"]),
    }
    rows = []
    for kind, (build_params, depth_name, depth_values) in settings.items():
        client = MilvusClient(str(folder / f"milvus_{kind}.db"))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
        params = client.prepare_index_params()
        params.add_index("embedding", index_type=kind, metric_type="IP", params=build_params)
        start = time.perf_counter()
        client.create_collection("faces", schema=schema, index_params=params)  # as the Milvus gallery does
        for first in range(0, size, 10_000):
            block = gallery[first : min(size, first + 10_000)]
            client.insert("faces", [{"id": first + i, "embedding": v.tolist()} for i, v in enumerate(block)])
        client.flush("faces")
        client.load_collection("faces")
        build = time.perf_counter() - start
        for number, depth in enumerate(depth_values):
            answers, wall = [], []
            search = {"metric_type": "IP", "params": {depth_name: depth}}
            for probe in probes:
                began = time.perf_counter()
                hits = client.search("faces", [probe.tolist()], limit=5, search_params=search)
                wall.append(time.perf_counter() - began)
                answers.append(subjects[hits[0][0]["id"]])
            ms = 1000 * np.array(wall)
            record = {
                "index": f"milvus-lite {kind}",
                "faces": size,
                **build_params,
                depth_name: depth,
                "build_seconds": round(build, 1) if number == 0 else None,
                "bytes_per_face": None,
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p99_ms": round(float(np.percentile(ms, 99)), 2),
                "queries": len(wall),
                **agreement(answers, exact, truth),
                "load_average": load(),
            }
            print(json.dumps(record), flush=True)
            rows.append(record)
        client.close()
    return rows


def enroll_gallery(gallery, subjects, path: Path) -> float:
    store = open_gallery(path, "synthetic", DIM)
    start = time.perf_counter()
    for first in range(0, len(gallery), 50_000):
        store.add_faces(subjects[first : first + 50_000], gallery[first : first + 50_000])
    store.close()
    return time.perf_counter() - start


def measure_gallery(path: Path, probes, exact, truth, depths) -> tuple[dict, list[dict]]:
    """The gallery opened with ``hnsw``: the first open reads the embeddings, builds and saves the index (the hnsw
    rows' build time; their searches run on this index); the second open reads the saved one."""
    start = time.perf_counter()
    store = open_gallery(path, "synthetic", DIM, index="hnsw")
    timings = {"first_open_seconds": round(time.perf_counter() - start, 1)}
    rows = sweep(store.index, timings["first_open_seconds"], probes, exact, truth, depths)
    built = timed_search(store.index, probes)[0]
    faces = store.index.rows
    store.close()
    del store
    gc.collect()
    start = time.perf_counter()
    store = open_gallery(path, "synthetic", DIM, index="hnsw")
    timings["reopen_seconds"] = round(time.perf_counter() - start, 1)
    store.index.depth = depths[-1]
    timings["reopened_answers_as_built"] = timed_search(store.index, probes)[0] == built
    store.close()
    saved = path.with_name(f"{path.name}.hnsw.index")
    timings.update(faces=faces, index_file_mib=round(saved.stat().st_size / 2**20, 1), load_average=load())
    print(f"gallery: {timings}", flush=True)
    return timings, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--per-identity", type=int, default=5)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--exact-queries", type=int, default=100, help="single-query timings of the exact indexes")
    parser.add_argument("--ef-search", type=int, nargs="*", default=[64, 128, 256, 512], help="none: no hnsw rows")
    parser.add_argument("--lists", type=int, nargs="*", default=[1024], help="IVF lists (none: no ivf rows)")
    parser.add_argument("--probes", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--milvus-faces", type=int, default=0)
    parser.add_argument("--milvus-lists", type=int, default=316)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--direct", action="store_true", help="only exact and hnsw, built in memory (no gallery)")
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
    record = {
        "faces": args.faces,
        "identities": identities,
        "faces_per_identity": args.per_identity,
        "dimension": DIM,
        "face_model": model.to_dict(),
        "face_model_from": "results/face_statistics.json (dlib on LFW-a)",
        "generate_seconds": round(generate_seconds, 1),
        "probes": {"mated": len(mated), "non_mated": len(truth) - len(mated)},
        "exact_rank1_of_mated": round(rank1, 4),
        "threads": "2 (faiss and NumPy use both cores; one HNSW query runs on one)",
        "load_average_start": load_start,
        "shared_machine": "other jobs ran on the same 2 cores: p50/p99 are wall times under that load; "
        "cpu_ms_p50 is this process's CPU time per query",
        "rows": [],
        "milvus": [],
    }

    def save() -> None:  # after every stage: a run cut short keeps what it measured
        record["load_average_end"] = load()
        write_result(args.output, record)

    if args.direct:
        if args.ef_search:
            start = time.perf_counter()
            index = ApproximateIndex(DIM, "hnsw")
            index.add(subjects, gallery)
            record["rows"] = sweep(index, time.perf_counter() - start, probes, exact, truth, args.ef_search)
            del index
            gc.collect()
            save()
        if args.exact_queries:
            record["rows"][0:0] = measure_exact(gallery, subjects, probes, exact, truth, args.exact_queries)
            save()
        return
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        path = Path(folder) / "gallery.db"
        enroll_seconds = enroll_gallery(gallery, subjects, path)
        print(f"enrolled into SQLite in {enroll_seconds:.0f} s", flush=True)
        del gallery  # the first open reads the faces back from SQLite
        gc.collect()
        reopen, hnsw_rows = measure_gallery(path, probes, exact, truth, args.ef_search)
        record["gallery_reopen"] = {**reopen, "enroll_seconds": round(enroll_seconds, 1)}
        record["rows"] = hnsw_rows
        save()
    gallery, subjects, _, _ = dataset(model, args.faces, args.per_identity, args.queries, args.seed)
    record["rows"][0:0] = measure_exact(gallery, subjects, probes, exact, truth, args.exact_queries)
    save()
    for lists in args.lists:
        record["rows"] += measure_ivf(gallery, subjects, probes, exact, truth, lists, args.probes)
        save()
    if args.milvus_faces:
        depths = {"hnsw": args.ef_search, "ivf": args.probes}
        with tempfile.TemporaryDirectory(dir=args.work) as folder:
            record["milvus"] = measure_milvus(
                gallery, subjects, probes, truth, args.milvus_faces, depths, args.milvus_lists, Path(folder)
            )
        save()


if __name__ == "__main__":
    main()
