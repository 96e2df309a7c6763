"""Partial FC: memory and step time against the number of classes and the sampling rate.

    python benchmarks/partial_fc_scaling.py [--classes 10000 100000 1000000] [--rates 1 0.3 0.1]

Each (classes, rate) runs in a fresh process: an ArcFace head under Partial FC, a global batch of
128 embeddings of 512-d, SGD with momentum, one warm-up step and three timed ones (forward,
backward, optimizer step). It records the process's peak resident memory (VmHWM) and the head's
state (centres + gradient + momentum, 12 bytes per value) — what one rank holds when the classes
are sharded over W processes is that state divided by W plus the logits of the sampled classes,
given in the table for W = 1 and W = 8 (computed, this machine has one CPU process group). Writes
benchmarks/results/partial_fc_scaling.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import torch
from common import RESULTS, write_result

from facelearn.heads import ArcFaceHead, PartialFC

BATCH, DIM = 128, 512


def peak_memory_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


def measure(classes: int, rate: float, queue) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    head = PartialFC(ArcFaceHead(DIM, classes, scale=64.0, margin=0.5), classes, sample_rate=rate)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    times = []
    for step in range(4):
        embeddings = torch.randn(BATCH, DIM, requires_grad=True)
        labels = torch.randint(0, classes, (BATCH,))
        start = time.perf_counter()
        loss = head(embeddings, labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            times.append(time.perf_counter() - start)
    queue.put({"step_ms": round(1000 * sum(times) / len(times), 1), "peak_rss_mb": round(peak_memory_mb())})


def per_rank_mb(classes: int, rate: float, world: int) -> float:
    state = 12 * classes * DIM / world  # centres, gradient, momentum (fp32)
    logits = 3 * 4 * BATCH * world * rate * classes / world  # logits, probabilities, their gradient
    return round((state + logits) / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rates", nargs="+", type=float, default=[1.0, 0.3, 0.1])
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    rows = []
    for classes in args.classes:
        for rate in args.rates:
            queue = context.Queue()
            process = context.Process(target=measure, args=(classes, rate, queue))
            process.start()
            row = {"classes": classes, "sample_rate": rate, **queue.get()}
            process.join()
            row.update({f"per_rank_mb_w{w}": per_rank_mb(classes, rate, w) for w in (1, 8)})
            rows.append(row)
            print(row, flush=True)
    print(f"{'classes':>10}{'rate':>6}{'step ms':>10}{'peak RSS MB':>13}{'MB/rank W=1':>13}{'MB/rank W=8':>13}")
    for r in rows:
        print(
            f"{r['classes']:>10}{r['sample_rate']:>6}{r['step_ms']:>10}{r['peak_rss_mb']:>13}"
            f"{r['per_rank_mb_w1']:>13}{r['per_rank_mb_w8']:>13}"
        )
    write_result(RESULTS / "partial_fc_scaling.json", {"batch": BATCH, "embedding_size": DIM, "rows": rows})


if __name__ == "__main__":
    main()
