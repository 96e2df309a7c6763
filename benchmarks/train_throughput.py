"""Training throughput on this machine: images/s for one optimiser step (forward, margin head,
backward, SGD) at batch 64, 112×112, in fp32 NCHW, fp32 channels_last and bf16 channels_last,
and the margin head's share of the step at 10k and 100k classes.

    python benchmarks/train_throughput.py [--models iresnet50 mobilefacenet] [--steps 5]

Prints a table and writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from facelearn.config import HeadConfig, ModelConfig
from facelearn.heads import build_head
from facelearn.models import build_backbone

SETTINGS = [
    ("fp32 NCHW", False, None),
    ("fp32 channels_last", True, None),
    ("bf16 channels_last", True, torch.bfloat16),
]


def time_steps(backbone, head, batch, labels, channels_last, amp_dtype, steps, warmup=2):
    parameters = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9)
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    head_time = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start, head_time = time.perf_counter(), 0.0
        with torch.autocast("cpu", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            embeddings = backbone(batch)
        embeddings_detached = embeddings.detach().float().requires_grad_(True)
        head_start = time.perf_counter()
        loss = head(embeddings_detached, labels).loss
        loss.backward()
        head_time += time.perf_counter() - head_start
        embeddings.backward(embeddings_detached.grad.to(embeddings.dtype))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    return steps * batch.shape[0] / elapsed, head_time / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["iresnet50", "mobilefacenet"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--classes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = torch.randn(args.batch_size, 3, 112, 112)
    rows = []
    print(f"{'model':<16}{'setting':<22}{'classes':>9}{'images/s':>10}{'head share':>12}")
    for model_name in args.models:
        for setting, channels_last, amp_dtype in SETTINGS:
            for num_classes in args.classes:
                backbone = build_backbone(ModelConfig(name=model_name))
                head = build_head(HeadConfig(name="arcface"), 512, num_classes)
                labels = torch.randint(0, num_classes, (args.batch_size,))
                speed, head_share = time_steps(backbone, head, batch, labels, channels_last, amp_dtype, args.steps)
                row = {
                    "model": model_name,
                    "setting": setting,
                    "classes": num_classes,
                    "images_per_second": round(speed, 2),
                    "head_share_of_step": round(head_share, 4),
                }
                rows.append(row)
                print(f"{model_name:<16}{setting:<22}{num_classes:>9}{speed:>10.1f}{100 * head_share:>11.1f}%")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    command = "python " + " ".join(sys.argv)
    Path(args.output).write_text(
        json.dumps(
            {"machine": machine, "command": command, "batch_size": args.batch_size, "steps": args.steps, "rows": rows},
            indent=2,
        )
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
