"""Training throughput on this machine: images/s of one optimiser step (forward, ArcFace head,
backward, SGD) at batch 64, 112×112, in fp32 NCHW, fp32 channels_last and bf16 channels_last,
and the margin head's share of the step at 10k and 100k classes.

    python benchmarks/train_throughput.py [--models iresnet50 mobilefacenet] [--steps 3]

The step is timed once per (model, setting) with the first class count; for the other class
counts the head (forward + backward, fp32) is timed alone and substituted, since the backbone
part does not depend on the class count. Prints a table and writes
benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import RESULTS, write_result

from facelearn.config import HeadConfig, ModelConfig
from facelearn.heads import build_head
from facelearn.models import build_backbone

SETTINGS = [
    ("fp32 NCHW", False, None),
    ("fp32 channels_last", True, None),
    ("bf16 channels_last", True, torch.bfloat16),
]


def head_seconds(head, embeddings, labels) -> float:
    embeddings = embeddings.detach().float().requires_grad_(True)
    start = time.perf_counter()
    head(embeddings, labels).loss.backward()
    return time.perf_counter() - start


def time_steps(backbone, head, batch, labels, channels_last, amp_dtype, steps, warmup=1):
    """(seconds per step, seconds of it in the head)."""
    optimizer = torch.optim.SGD(list(backbone.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    start, in_head = time.perf_counter(), 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start, in_head = time.perf_counter(), 0.0
        with torch.autocast("cpu", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            embeddings = backbone(batch)
        detached = embeddings.detach().float().requires_grad_(True)
        head_start = time.perf_counter()
        head(detached, labels).loss.backward()
        in_head += time.perf_counter() - head_start
        embeddings.backward(detached.grad.to(embeddings.dtype))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps, in_head / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["iresnet50", "mobilefacenet"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--classes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--output", default=str(RESULTS / "train_throughput.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = torch.randn(args.batch_size, 3, 112, 112)
    rows = []
    print(f"{'model':<15}{'setting':<21}{'classes':>9}{'images/s':>10}{'head share':>12}")
    for model_name in args.models:
        for setting, channels_last, amp_dtype in SETTINGS:
            backbone = build_backbone(ModelConfig(name=model_name))
            head = build_head(HeadConfig(name="arcface"), 512, args.classes[0])
            labels = torch.randint(0, args.classes[0], (args.batch_size,))
            step, in_head = time_steps(backbone, head, batch, labels, channels_last, amp_dtype, args.steps)
            for num_classes in args.classes:
                if num_classes != args.classes[0]:
                    other = build_head(HeadConfig(name="arcface"), 512, num_classes)
                    embeddings = torch.randn(args.batch_size, 512)
                    labels = torch.randint(0, num_classes, (args.batch_size,))
                    head_seconds(other, embeddings, labels)
                    this_head = min(head_seconds(other, embeddings, labels) for _ in range(args.steps))
                    step, in_head = step - in_head + this_head, this_head
                speed = args.batch_size / step
                rows.append(
                    {
                        "model": model_name,
                        "setting": setting,
                        "classes": num_classes,
                        "images_per_second": round(speed, 2),
                        "head_share_of_step": round(in_head / step, 4),
                    }
                )
                print(f"{model_name:<15}{setting:<21}{num_classes:>9}{speed:>10.1f}{100 * in_head / step:>11.1f}%")
    write_result(
        args.output, {"batch_size": args.batch_size, "image_size": 112, "steps_timed": args.steps, "rows": rows}
    )


if __name__ == "__main__":
    main()
