"""Tables of deployment and serving: docs/deploy.md, docs/evaluation.md, docs/service.md."""

from __future__ import annotations

from .format import bold, count, fixed, memory, pct, table

MODELS = {"mobilefacenet": "MobileFaceNet", "iresnet50": "iResNet-50"}
FIRST_MODEL_NOTE = {"mobilefacenet": " (width 2)"}
BACKENDS = {
    "torch fp32 NCHW": "PyTorch fp32 NCHW",
    "torch fp32 channels_last": "PyTorch fp32 channels_last",
    "onnxruntime fp32": "ONNX Runtime fp32",
    "torch bf16 channels_last": "PyTorch bf16 channels_last",
}
BATCHES = (1, 8, 64)


def faces_per_second(result: dict) -> dict[tuple[str, str], dict[int, float]]:
    """(model, backend) → batch → faces/s, in the JSON's order."""
    found: dict[tuple[str, str], dict[int, float]] = {}
    for row in result["rows"]:
        found.setdefault((row["model"], row["backend"]), {})[row["batch"]] = row["faces_per_second"]
    return found


def embed_throughput(result: dict) -> str:
    """results/embed_throughput.json: faces/s by backend and batch; the fastest of each column in bold."""
    rows, named = [], set()
    for (model, backend), by_batch in faces_per_second(result).items():
        label = MODELS[model] + ("" if model in named else FIRST_MODEL_NOTE.get(model, ""))
        named.add(model)
        fastest = {batch: result["fastest"][f"{model}/batch{batch}"] == backend for batch in BATCHES}
        speeds = [bold(fixed(by_batch[batch], 1), fastest[batch]) for batch in BATCHES]
        rows.append([label, BACKENDS[backend], *speeds])
    return table(["model", "backend", *(f"batch {batch}" for batch in BATCHES)], rows)


ALLOCATOR_ROWS = [
    ("mobilefacenet", "torch fp32 NCHW", "MobileFaceNet, PyTorch fp32"),
    ("mobilefacenet", "torch bf16 channels_last", "MobileFaceNet, PyTorch bf16 channels_last"),
    ("iresnet50", "torch fp32 NCHW", "iResNet-50, PyTorch fp32"),
    ("iresnet50", "torch bf16 channels_last", "iResNet-50, PyTorch bf16 channels_last"),
]


def embed_allocator(before: dict, kept: dict) -> str:
    """embed_throughput_bf16_glibc.json (glibc as it comes) → embed_throughput_bf16.json (freed memory kept)."""
    before_speeds, kept_speeds = faces_per_second(before), faces_per_second(kept)
    rows = []
    for model, backend, label in ALLOCATOR_ROWS:
        cells = []
        for batch in (8, 64):
            old, new = before_speeds[model, backend][batch], kept_speeds[model, backend][batch]
            cells.append(f"{fixed(old, 1)} → {fixed(new, 1)} ({fixed(new / old, 2)}×)")
        rows.append([label, *cells])
    return table(["model, backend", "batch 8: before → kept", "batch 64: before → kept"], rows)


INDEXES = {  # index → (its name in the table, the first time)
    "exact float32": ("exact float32", "exact NumPy float32 (default)"),
    "faiss SQfp16": ("faiss SQfp16", "faiss SQfp16 (exact, float16 codes)"),
    "milvus-lite": ("milvus-lite (FLAT)", "milvus-lite (FLAT)"),
    "HNSW32": ("faiss HNSW32, efSearch 64 / 256 / 1024", "faiss HNSW32, efSearch 64 / 256 / 1024"),
}
HNSW_FROM = 100_000  # below it the graph index is exact anyway; the table leaves it out


def seconds(x: float) -> str:
    return fixed(x, 2 if x < 1 else 1 if x < 100 else 0)


def milliseconds(values: list[float]) -> str:
    return " / ".join(fixed(x, 2 if x < 1 else 1 if x < 100 else 0) for x in values) + " ms"


def recall(x: float | None) -> str:
    """Two decimals, three where the JSON has them (0.705)."""
    return "—" if x is None else fixed(x, 2 if round(x, 2) == x else 3)


def gallery_search(result: dict) -> str:
    """results/gallery_search.json: top-5 subject search; the HNSW depths share one row."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for row in result["rows"]:
        index = row["index"].split(" ef=")[0]
        if index == "HNSW32" and row["faces"] < HNSW_FROM:
            continue
        groups.setdefault((row["faces"], index), []).append(row)
    rows, named = [], set()
    for (faces, index), group in groups.items():
        name = INDEXES[index][index not in named]
        named.add(index)
        size = group[0]["bytes_per_face"]
        rows.append(
            [
                count(faces),
                name,
                f"{seconds(group[0]['build_seconds'])} s",
                "—" if size is None else count(size),
                milliseconds([row["p50_ms"] for row in group]),
                milliseconds([row["p99_ms"] for row in group]),
                " / ".join(recall(row["recall_at_1_vs_exact"]) for row in group),
            ]
        )
    return table(["faces", "index", "build", "bytes/face", "p50", "p99", "recall@1 vs exact"], rows)


def distractor_scaling(result: dict) -> str:
    """results/distractor_scaling.json: 1:N among N distractors, exact blocked search against faiss."""
    by_size: dict[int, dict[str, dict]] = {}
    for row in result["rows"]:
        by_size.setdefault(row["distractors"], {})[row["method"]] = row
    largest = max(by_size)
    rows = []
    for size, methods in by_size.items():
        exact, faiss = methods["exact"], methods["faiss"]
        per_probe = f" ({fixed(1000 * exact['seconds'] / exact['queries'], 1)} ms a probe)" if size == largest else ""
        rows.append(
            [
                count(size),
                f"{fixed(exact['seconds'], 2)} s{per_probe}",
                f"{fixed(faiss['seconds'], 2)} s",
                f"{memory(exact['allocated_peak_mb'])} / {memory(exact['rss_peak_mb'])}",
                memory(faiss["rss_peak_mb"]),
            ]
        )
    header = ["distractors", "exact blocked", "faiss flat", "exact: allocated / peak RSS", "faiss: peak RSS"]
    return table(header, rows)


BATCHING = ("off", "on, wait 0 ms", "on, wait 5 ms")
DEFAULT_BATCHING = "on, wait 5 ms"


def latency_cell(row: dict) -> str:
    return f"{fixed(row['requests_per_s'], 1)} req/s · {fixed(row['p50_ms'], 0)} / {fixed(row['p99_ms'], 0)} ms"


def serve_load_aligned(result: dict) -> str:
    """results/serve_load.json, aligned faces (the latest run): req/s and client-side p50 / p99 by concurrency."""
    cells: dict[int, dict[str, str]] = {}
    for row in result["runs"]["after"]["rows"]:
        if row["workload"] == "aligned" and row.get("quality", "auto") == "auto" and not row["errors"]:
            cells.setdefault(row["concurrency"], {})[row["batching"]] = latency_cell(row)
    batchings = [b for b in BATCHING if any(b in by for by in cells.values())]
    rows = [[str(level), *(by.get(b, "") for b in batchings)] for level, by in sorted(cells.items())]
    return table(["aligned faces, concurrency", *(f"batching {b}" for b in batchings)], rows)


def serve_load_photo(result: dict) -> str:
    """results/serve_load.json, photos, default batching: before (one detector behind a lock) and after (a
    detector per worker thread), by concurrency and ``--workers``."""
    columns: dict[tuple[str, int], dict[int, str]] = {}
    for label in ("before", "after"):
        for row in result["runs"].get(label, {}).get("rows", []):
            if row["workload"] == "photo" and row["batching"] == DEFAULT_BATCHING and not row["errors"]:
                columns.setdefault((label, row["workers"]), {})[row["concurrency"]] = latency_cell(row)
    levels = sorted({level for by in columns.values() for level in by})
    header = ["photos, concurrency", *(f"{label}, {workers} worker{'s' * (workers > 1)}" for label, workers in columns)]
    return table(header, [[str(level), *(by.get(level, "") for by in columns.values())] for level in levels])


def serve_to_model(result: dict) -> str:
    """results/serve_load.json: the model's own batch-64 faces/s beside the service's at concurrency 16 doing
    the same work (quality none: the model alone; quality estimate: the model and the perturbed views)."""
    run = result["runs"]["after"]
    model = run["model_throughput"]
    rows = [
        ["the model alone, batches of 64", "", fixed(model["model_faces_per_s"], 0), ""],
        ["the model alone on one thread, batches of 64", "", fixed(model["model_one_thread_faces_per_s"], 0), ""],
        ["the model + the quality estimate's views", "", fixed(model["model_and_quality_faces_per_s"], 0), ""],
    ]
    for r in run["service_to_model"]:
        faces = "16 faces a request" if r["workload"].startswith("aligned x") else "1 face a request"
        label = f"the service, {faces}, batching {r['batching']}"
        quality = "none" if r["quality"] == "none" else "estimate"
        rows.append([label, quality, fixed(r["service_faces_per_s"], 0), bold(pct(r["of_the_same_work"], 0))])
    return table(["aligned faces, concurrency 16", "quality", "faces/s", "of the model doing the same"], rows)


def quality_reject(result: dict) -> str:
    """results/quality_reject.json: FNMR at FMR 1e-3 (fixed threshold) after discarding the lowest-quality 10 / 20 %
    of the pairs, by quality and at random, and the area under each curve (0–50 % discarded); better in bold."""
    rows = []
    for r in result["rows"]:
        cells = []
        for at in (10, 20):
            ours, random = r[f"fnmr_quality_{at}%"], r[f"fnmr_random_{at}%"]
            cells += [bold(pct(ours), ours < random), pct(random)]
        ours, random = r["auc"]["quality"], r["auc_random"]
        rows.append(
            [
                r["model"],
                r["method"],
                r["set"],
                f"{count(r['genuine'])} / {count(r['impostor'])}",
                pct(r["fnmr_all_pairs"]),
                *cells,
                f"{bold(fixed(ours, 4), ours < random)} / {fixed(random, 4)}",
                fixed(r["auc"]["stability"], 4) if r["method"] == "estimate" else "—",
            ]
        )
    header = ["model", "quality", "pairs", "genuine / impostor", "FNMR, all pairs"]
    header += ["10 % by quality", "10 % at random", "20 % by quality", "20 % at random"]
    return table([*header, "area: quality / random", "area: stability alone"], rows)


def _depth(row: dict) -> str:
    if "ef_search" in row:
        return f"efSearch {row['ef_search']}"
    if "ef" in row:
        return f"ef {row['ef']}"
    if "probes" in row or "nprobe" in row:
        return f"nprobe {row.get('probes', row.get('nprobe'))} of {row.get('lists', row.get('nlist'))}"
    return "—"


def realistic_search(result: dict) -> str:
    """results/realistic_search.json: one top-5 subject search per probe, recall@1 against exact float32."""
    rows = []
    build, size = None, None
    for row in result["rows"] + result.get("milvus", []):
        if row["build_seconds"] is not None:
            build, size = row["build_seconds"], row.get("bytes_per_face")
        faces = row.get("faces", result["faces"])
        rows.append(
            [
                count(faces),
                row["index"],
                _depth(row),
                f"{seconds(build)} s" if row["build_seconds"] is not None else "″",
                "—" if size is None else count(size),
                milliseconds([row["p50_ms"]]),
                milliseconds([row["p99_ms"]]),
                milliseconds([row["cpu_ms_p50"]]) if "cpu_ms_p50" in row else "—",
                f"{recall(row['recall_at_1'])} ({recall(row['recall_at_1_mated'])} / "
                f"{recall(row['recall_at_1_non_mated'])})",
            ]
        )
    head = ["faces", "index", "depth", "build", "bytes/face", "p50", "p99", "CPU p50", "recall@1 (mated / non-mated)"]
    text = table(head, rows)
    reopen = result.get("gallery_reopen")
    if reopen:
        text += (
            f"\n\nA SQLite gallery of the {count(reopen['faces'])} faces with the `hnsw` index: first open "
            f"{seconds(reopen['first_open_seconds'])} s (reads the embeddings, builds, saves "
            f"{count(reopen['index_file_mib'])} MiB beside it), reopen {seconds(reopen['reopen_seconds'])} s "
            f"(the saved index, checked). Load average {result['load_average_start']} at the start, "
            f"{result['load_average_end']} at the end (1, 5, 15 min; 2 cores shared with other jobs).\n"
        )
    return text


def face_statistics(result: dict) -> str:
    """results/face_statistics.json: cosine statistics of dlib on LFW-a and of the generator fitted to them."""
    rows = []
    for kind, name in (
        ("measured", f"dlib on {count(result['photos_with_a_face'])} LFW-a photos"),
        ("fitted", "generator, fitted"),
    ):
        s = result[kind]
        rows.append(
            [
                name,
                f"{fixed(s['within_mean'], 3)} ± {fixed(s['within_std'], 3)}",
                f"{fixed(s['between_mean'], 3)} ± {fixed(s['between_std'], 3)}",
            ]
        )
    model = result["face_model"]
    text = table(["cosines", "same person", "different people"], rows)
    return text + (
        f"\n\nFitted: subspace k = {model['subspace']}, mean weight a = {fixed(model['mean_weight'], 2)}, noise "
        f"s = {fixed(model['noise'], 2)}, noise spread σ = {fixed(model['noise_spread'], 2)} "
        f"({count(result['within_pairs'])} same-person and {count(result['between_pairs'])} different-person pairs "
        f"of {count(result['people'])} people).\n"
    )


def search_and_serving_headline(search: dict, exact: dict, serving: dict) -> str:
    """README: the million-face search (the approximate index at recall@1 >= 0.99, and the exact scan) and the
    service's photos/s and its share of the model's throughput."""
    approximate = min((r for r in search["rows"] if r["recall_at_1"] >= 0.99), key=lambda r: r["p50_ms"])
    scan = next(r for r in exact["rows"] if r["index"].startswith("exact, 8-bit"))
    run = serving["runs"]["after"]
    photos = max(r["requests_per_s"] for r in run["rows"] if r["workload"] == "photo" and not r["errors"])
    several = max(r["of_the_same_work"] for r in run["service_to_model"] if r["workload"].startswith("aligned x"))
    return (
        f"Among {count(search['faces'])} realistic faces a search takes {fixed(approximate['p50_ms'], 1)} ms "
        f"(p50, HNSW over PCA-64 codes re-scored exactly, recall@1 {fixed(approximate['recall_at_1'], 4)}) or "
        f"{fixed(scan['p50_ms'], 0)} ms exact; the service answers {fixed(photos, 0)} photos/s on "
        f"{run_cores(serving)} cores and, fed 16 aligned faces a request, reaches {pct(several, 0)} of its "
        f"model's own throughput: [search](docs/deploy.md), [service](docs/service.md)."
    )


def run_cores(result: dict) -> int:
    return result["machine"]["cpu_threads"]
