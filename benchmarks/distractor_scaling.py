"""MegaFace-style search cost: probes against 10k, 100k and 1M distractors, exact blocked vs faiss.

    python benchmarks/distractor_scaling.py [--sizes 10000 100000 1000000] [--queries 1000] [--work runs/distractors]

Distractors are random unit 512-d float32 vectors written once to ``<work>/distractors_<N>.npy``
(1M = 2 GB on disk) and opened as a memmap, as a user's feature file would be. Each measurement
runs in its own process: wall time of :func:`top_distractor_scores` (k = 10) and two memory
figures — the peak of what the search allocates (``tracemalloc``, which sees NumPy's buffers; the
exact path streams the memmap and allocates a block at a time) and the process's peak resident
set (which also counts the memmap pages read and faiss's own copy of the vectors).
Both methods are checked to return the same scores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from common import RESULTS, write_result

DIM = 512


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = rng.standard_normal((count, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def distractor_file(work: Path, size: int) -> Path:
    path = work / f"distractors_{size}.npy"
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", np.float32, (size, DIM))
        rng = np.random.default_rng(size)
        for start in range(0, size, 100_000):
            out[start : start + 100_000] = unit_rows(rng, min(100_000, size - start))
        out.flush()
        del out
        path.with_suffix(".tmp.npy").rename(path)
    return path


def measure(path: Path, queries: int, method: str) -> dict:
    """One measurement, in this (fresh) process."""
    from facelearn.eval.distractors import top_distractor_scores

    probes = unit_rows(np.random.default_rng(0), queries)
    distractors = np.load(path, mmap_mode="r")
    tracemalloc.start()
    start = time.perf_counter()
    best = top_distractor_scores(probes, distractors, 10, method)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    np.save(path.with_name(f"best_{method}_{len(distractors)}.npy"), best)
    return {
        "seconds": round(seconds, 3),
        "allocated_peak_mb": round(peak / 2**20, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--methods", nargs="+", default=["exact", "faiss"])
    parser.add_argument("--work", default="runs/distractors")
    parser.add_argument("--one", nargs=2, metavar=("FILE", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(RESULTS / "distractor_scaling.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), args.queries, args.one[1])))
        return
    rows = []
    for size in args.sizes:
        path = distractor_file(Path(args.work), size)
        results = {}
        for method in args.methods:
            command = [sys.executable, __file__, "--one", str(path), method, "--queries", str(args.queries)]
            results[method] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            row = {"distractors": size, "queries": args.queries, "method": method, **results[method]}
            rows.append(row)
            print(
                f"{size:>9,} distractors  {method:<6} {row['seconds']:>8.2f} s  "
                f"{1000 * row['seconds'] / args.queries:>7.2f} ms/probe  "
                f"allocated {row['allocated_peak_mb']:>8.1f} MB  "
                f"peak RSS {row['rss_peak_mb']:>8.1f} MB",
                flush=True,
            )
        found = [np.load(path.with_name(f"best_{m}_{size}.npy")) for m in args.methods]
        agree = all(np.allclose(found[0], other, atol=1e-5) for other in found[1:])
        rows[-1]["same_scores_as_exact"] = bool(agree)
    write_result(args.output, {"dimension": DIM, "k": 10, "rows": rows})


if __name__ == "__main__":
    main()
