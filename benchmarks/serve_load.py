"""Throughput and latency of ``facelearn serve`` at concurrency 1, 4, 16 and 64, batching on and off.

    python benchmarks/serve_load.py [--model runs/lfw/mbf_detect/best.pt] [--requests 256] [--max-seconds 30]

The server runs as its own process on 127.0.0.1 (its decoding/detection pool and the model thread
share this machine's cores with the load generator, an asyncio httpx client). Two workloads through
``POST /v1/embed``:

* ``aligned``: 112×112 aligned LFW-a faces (``aligned=true``): the model is the work — where
  batching can help;
* ``photo``: 250×250 LFW-a photos: decoding, RetinaFace detection and alignment, then the model.

Batching off is ``--no-batching`` (one model call per request); on is ``--max-batch 32`` with
``--max-wait-ms`` 0 (take what queued while the model ran) or 5 (also wait up to 5 ms for
company). Each cell sends at most ``--requests`` requests and stops after ``--max-seconds``;
latency is per request, client-side. Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from common import RESULTS, needs, write_result

from facelearn.serve.process import Served

SHARED = Path(__file__).resolve().parents[2] / "shared"
BATCHING = {
    "off": ("--no-batching",),
    "on, wait 0 ms": ("--max-batch", "32", "--max-wait-ms", "0"),
    "on, wait 5 ms": ("--max-batch", "32", "--max-wait-ms", "5"),
}


async def load(url: str, bodies: list[tuple[dict, dict]], concurrency: int, requests: int, seconds: float) -> dict:
    latencies, statuses, sent = [], [], 0
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
        await client.post("/v1/embed", files=bodies[0][0], data=bodies[0][1])  # warm up
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
    return {
        "aligned": [({"image": (f.name, f.read_bytes())}, {"aligned": "true"}) for f in faces[:count]],
        "photo": [({"image": (p.name, p.read_bytes())}, {}) for p in photos],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="runs/lfw/mbf_detect/best.pt")
    parser.add_argument("--aligned", default="runs/lfw/detect/test", help="aligned faces (identity folders)")
    parser.add_argument("--shared", default=str(SHARED))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args()
    needs(args.model, "benchmarks/lfw_recipe.py")
    needs(args.aligned, "benchmarks/lfw_recipe.py")
    shared = Path(args.shared)
    bodies = workloads(shared, Path(args.aligned))
    weights = shared / "weights" / "retinaface"
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for batching, options in BATCHING.items():
            served = Served(Path(args.model), Path(work) / "g.db", weights, Path(work), *options).start()
            try:
                for workload, requests in bodies.items():
                    for concurrency in args.concurrency:
                        row = asyncio.run(load(served.url, requests, concurrency, args.requests, args.max_seconds))
                        rows.append({"workload": workload, "batching": batching, **row})
                        print(f"{workload:8s} batching {batching:14s} " + describe(row), flush=True)
            finally:
                served.stop()
    write_result(
        RESULTS / "serve_load.json",
        {"model": args.model, "batching": {k: " ".join(v) for k, v in BATCHING.items()}, "rows": rows},
    )


if __name__ == "__main__":
    main()
