"""Throughput and latency of ``facelearn serve`` at concurrency 1, 4, 16 and 64, batching on and off,
beside the model's own batch-64 throughput measured in the same run.

    python benchmarks/serve_load.py [--model runs/lfw/mbf_detect/best.pt] [--requests 256] [--max-seconds 30]
                                    [--label after] [--workers 1 2] [--output benchmarks/results/serve_load.json]

The server runs as its own process on 127.0.0.1 (its decoding/detection pool and the model thread
share this machine's cores with the load generator, an asyncio httpx client). Two workloads through
``POST /v1/embed``:

* ``aligned``: 112×112 aligned LFW-a faces (``aligned=true``): the model is the work — where
  batching can help;
* ``aligned x16``: 16 of those faces a request (``images``), default batching;
* ``photo``: 250×250 LFW-a photos: decoding, RetinaFace detection and alignment, then the model.

Batching off is ``--no-batching`` (one model call per request); on is ``--max-batch 32`` with
``--max-wait-ms`` 0 (take what queued while the model ran) or 5 (also wait up to 5 ms for
company). Each cell sends at most ``--requests`` requests and stops after ``--max-seconds``;
latency is per request, client-side.

The service runs with ``--quality`` auto (this model's is the estimate: 3 perturbed views a face go
to the model with it) and, for the aligned workloads, ``--quality none`` (the model's work alone); its
model calls use the cores ``--workers`` leave (``--model-threads``). The model's own throughput
(``model``): the same aligned faces through ``Recognizer.embed_faces`` in batches of 64 in this process
on every core (the model alone), and through ``embed_with_quality`` (the model and the estimate's
views), best of 3 passes, with the backend the server uses. The service's faces/s at concurrency 16
over the model's doing the same work is the ratio reported. Photos are served with the default
batching and ``--workers`` 1 and 2 (a detector per worker thread since the detector pool; before it,
one detector behind a lock: run this script with the older source first on PYTHONPATH,
``--qualities auto`` and ``--label before``). Rows of other labels already in ``--output`` are kept,
so before and after sit in one file. The load generator shares the machine's cores: its CPU time per
request is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from common import RESULTS, needs, write_result

from facelearn.serve.process import Served

SHARED = Path(__file__).resolve().parents[2] / "shared"
BATCHING = {
    "off": ("--no-batching",),
    "on, wait 0 ms": ("--max-batch", "32", "--max-wait-ms", "0"),
    "on, wait 5 ms": ("--max-batch", "32", "--max-wait-ms", "5"),
}
PHOTO_BATCHING = "on, wait 5 ms"  # the service's default
PER_REQUEST = 16  # aligned faces a request in the "aligned x16" workload (``images``)


async def load(url: str, bodies: list[tuple[dict, dict]], concurrency: int, requests: int, seconds: float) -> dict:
    latencies, statuses, sent = [], [], 0
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            files, data = bodies[sent % len(bodies)]
            sent += 1
            start = time.perf_counter()
            answer = await client.post("/v1/embed", files=files, data=data)
            latencies.append(time.perf_counter() - start)
            statuses.append(answer.status_code)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        warm = await client.post("/v1/embed", files=bodies[0][0], data=bodies[0][1])
        if warm.status_code != 200:  # a request this version does not take (``images`` before it existed)
            return {"concurrency": concurrency, "requests": 0, "errors": 1, "unsupported": warm.status_code}
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ms = 1000 * np.array(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": sum(s != 200 for s in statuses),
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "client_cpu_ms_per_request": 1000 * (time.process_time() - cpu) / max(1, len(latencies)),
    }


def describe(row: dict) -> str:
    return (
        f"c={row['concurrency']:3d}  {row['requests_per_s']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms"
        f"  p99 {row['p99_ms']:7.1f} ms  ({row['requests']} requests, {row['errors']} errors)"
    )


def workloads(shared: Path, aligned_root: Path, count: int = 64) -> dict[str, list]:
    people = sorted(p for p in (shared / "data" / "lfw_a" / "lfw").iterdir() if p.is_dir())
    photos = [sorted(p.iterdir())[0] for p in people[:count]]
    faces = sorted(aligned_root.rglob("*.jpg"))[:count] + sorted(aligned_root.rglob("*.png"))[:count]
    aligned = [(f.name, f.read_bytes()) for f in faces[:count]]
    several = [aligned[i : i + PER_REQUEST] for i in range(0, len(aligned) - PER_REQUEST + 1, PER_REQUEST)]
    return {
        "aligned": [({"image": face}, {"aligned": "true"}) for face in aligned],
        f"aligned x{PER_REQUEST}": [([("images", face) for face in group], {"aligned": "true"}) for group in several],
        "photo": [({"image": (p.name, p.read_bytes())}, {}) for p in photos],
    }


def model_throughput(model: Path, faces: list[Path], backend: str, passes: int = 3) -> dict:
    """Faces/s of the model alone and of the model with the quality estimate, batches of 64, best of ``passes``;
    and of the model alone on one thread."""
    from facelearn.data.images import read_image
    from facelearn.deploy.recognizer import Recognizer

    recognizer = Recognizer.load(str(model), detector=None, backend=backend)
    aligned = [recognizer.check_aligned(read_image(f)) for f in faces]
    rates = {}
    rates_of = {
        "model": lambda: recognizer.embed_faces(aligned, 64),
        "model_and_quality": lambda: recognizer.embed_with_quality(aligned, aligned=True, batch_size=64),
    }
    for name, work in rates_of.items():
        work()  # warm up
        best = min(timed(work) for _ in range(passes))
        rates[f"{name}_faces_per_s"] = len(aligned) / best
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the service's model thread gets on 2 cores beside 2 workers
    work = rates_of["model"]
    work()
    rates["model_one_thread_faces_per_s"] = len(aligned) / min(timed(work) for _ in range(passes))
    torch.set_num_threads(threads)
    return {"faces": len(aligned), "backend": backend, "quality": recognizer.quality.method, **rates}


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def serve_rows(args, work, bodies, label, batching, quality, workers, workloads_run) -> list[dict]:
    """Rows of one served process: ``quality`` auto (the estimate, for this model) or none."""
    options = BATCHING[batching] + (("--quality", "none", "--min-quality", "0") if quality == "none" else ())
    if args.max_batch and batching != "off":
        options += ("--max-batch", str(args.max_batch))  # the last one given wins
    weights = Path(args.shared) / "weights" / "retinaface"
    served = Served(
        Path(args.model), Path(work) / f"g{workers}{quality}.db", weights, Path(work), *options,
        "--workers", str(workers), "--backend", args.backend,
        *(("--model-threads", str(args.model_threads)) if args.model_threads else ()),
    ).start()  # fmt: skip
    rows = []
    try:
        for workload in workloads_run:
            for concurrency in args.concurrency:
                row = asyncio.run(load(served.url, bodies[workload], concurrency, args.requests, args.max_seconds))
                if "unsupported" in row:
                    print(f"{label:7s} {workload:11s} not served by this version ({row['unsupported']})", flush=True)
                    break
                per_request = PER_REQUEST if workload.startswith("aligned x") else 1
                row["faces_per_s"] = row["requests_per_s"] * per_request
                setting = {"workload": workload, "batching": batching, "quality": quality, "workers": workers}
                rows.append({"label": label, **setting, **row})
                print(f"{label:7s} {workload:11s} quality {quality:4s} workers {workers} batching {batching:14s} "
                      + describe(row), flush=True)  # fmt: skip
    finally:
        served.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="runs/lfw/mbf_detect/best.pt")
    parser.add_argument("--aligned", default="runs/lfw/detect/test", help="aligned faces (identity folders)")
    parser.add_argument("--shared", default=str(SHARED))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker threads for the photo rows")
    parser.add_argument("--backend", default="auto", help="the server's and the model row's backend")
    parser.add_argument("--batching", nargs="+", default=list(BATCHING), choices=list(BATCHING))
    parser.add_argument("--max-batch", type=int, help="the server's --max-batch when batching (default: 32)")
    parser.add_argument("--model-threads", type=int, help="the server's --model-threads (default: its own)")
    parser.add_argument("--qualities", nargs="+", default=["auto", "none"], help="none: served with --quality none")
    parser.add_argument("--label", default="after", help="names this run's rows (before/after a change)")
    parser.add_argument("--output", default=str(RESULTS / "serve_load.json"))
    args = parser.parse_args()
    needs(args.model, "benchmarks/lfw_recipe.py")
    needs(args.aligned, "benchmarks/lfw_recipe.py")
    shared = Path(args.shared)
    bodies = workloads(shared, Path(args.aligned))
    model = model_throughput(Path(args.model), aligned_faces(Path(args.aligned)), args.backend)
    print(f"{args.label:7s} model alone {model['model_faces_per_s']:.1f} faces/s (one thread: "
          f"{model['model_one_thread_faces_per_s']:.1f}), with the quality estimate "
          f"{model['model_and_quality_faces_per_s']:.1f} faces/s (batches of 64)", flush=True)  # fmt: skip
    rows = []
    several = f"aligned x{PER_REQUEST}"
    with tempfile.TemporaryDirectory() as work:
        for batching in args.batching:
            aligned = ["aligned", several] if batching == PHOTO_BATCHING else ["aligned"]
            rows += serve_rows(args, work, bodies, args.label, batching, "auto", 2, aligned)
        if "none" in args.qualities:  # the model's work alone: no quality estimate
            rows += serve_rows(args, work, bodies, args.label, PHOTO_BATCHING, "none", 2, ["aligned", several])
        for workers in args.workers:  # photos: the default batching, by --workers
            rows += serve_rows(args, work, bodies, args.label, PHOTO_BATCHING, "auto", workers, ["photo"])
    ratio = []
    for r in rows:
        if r["workload"].startswith("aligned") and r["concurrency"] == 16 and not r["errors"]:
            same_work = model["model_faces_per_s" if r["quality"] == "none" else "model_and_quality_faces_per_s"]
            keys = ("workload", "batching", "quality")
            ratio.append({**{k: r[k] for k in keys}, "service_faces_per_s": r["faces_per_s"],
                          "of_the_same_work": r["faces_per_s"] / same_work,
                          "of_model_alone": r["faces_per_s"] / model["model_faces_per_s"]})  # fmt: skip
    for r in ratio:
        print(
            f"{args.label:7s} {r['workload']:11s} c=16 quality {r['quality']:4s} batching {r['batching']:14s} "
            f"{r['service_faces_per_s']:.1f} faces/s = {100 * r['of_the_same_work']:.0f} % of the model doing the "
            f"same work, {100 * r['of_model_alone']:.0f} % of the model alone"
        )
    previous = json.loads(Path(args.output).read_text()) if Path(args.output).is_file() else {}
    runs = {k: v for k, v in previous.get("runs", {}).items() if k != args.label}
    runs[args.label] = {
        "model_threads": args.model_threads,
        "max_batch": args.max_batch,
        "model_throughput": model,
        "service_to_model": ratio,
        "load_average": os.getloadavg(),
        "rows": rows,
        "pythonpath": os.environ.get("PYTHONPATH"),
    }
    record = {"model": args.model, "batching": {k: " ".join(v) for k, v in BATCHING.items()}, "runs": runs}
    write_result(args.output, record)


def aligned_faces(root: Path, count: int = 256) -> list[Path]:
    return sorted(root.rglob("*.jpg"))[:count] + sorted(root.rglob("*.png"))[:count]


if __name__ == "__main__":
    main()
