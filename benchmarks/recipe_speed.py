"""Where the seconds of a real training step go, and images/s end to end, eager and compiled.

    python benchmarks/lfw_recipe.py --only mbf_detect   # once: runs/lfw/ (split, aligned faces)
    python benchmarks/recipe_speed.py [--recipe configs/lfw_mbf_arcface.yaml] [--steps 40]

The recipe as it trains (default: the LFW recipe, MobileFaceNet at 64 px, batch 128, ArcFace, real
aligned faces decoded and augmented by the real loader with its ``data.num_workers`` worker), for
each of eager and ``train.compile=true``:

* **end to end**: ``Trainer.train_step`` — the engine's own step, data included — over
  ``--steps`` steps after the warm-up (the first steps compile);
* **parts**: the same step taken apart with a clock around each part: waiting for the batch,
  the backbone's forward, the margin head's forward, the backward pass, the optimizer (clipping,
  SGD, schedule). The loader's worker decodes in parallel, so "waiting for the batch" is only
  what the model did not hide; ``data alone`` times the loader by itself for comparison;
* **operators**: three more steps under ``torch.profiler``, the operators with the largest share
  of the CPU time (self time: a compiled graph's fused kernels count as one operator).

The trainer tells glibc to keep freed memory (``keep_freed_memory``); ``--allocator glibc``
switches that off for this process, to show what it removes (the page faults and kernel time of
re-mapping every step's activations), and writes recipe_speed_glibc.json instead.

Prints a table and writes benchmarks/results/recipe_speed.json.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from common import RESULTS, write_result

import facelearn.train.build
from facelearn.cli import recipe_path
from facelearn.config import load_config
from facelearn.train.build import build_trainer

PARTS = ("waiting for the batch", "backbone forward", "head forward", "backward", "optimizer")


def build(recipe: str, compiled: bool, steps: int):
    overrides = [f"train.compile={str(compiled).lower()}", f"train.steps={steps}", "train.output_dir=/nonexistent"]
    trainer = build_trainer(load_config(recipe, overrides))
    trainer.task.train()
    return trainer, iter(trainer.task.loader(0))


def end_to_end(trainer, batches, steps: int) -> dict:
    """images/s, and this process's page faults and kernel CPU seconds per step."""
    before, start, images = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    for _ in range(steps):
        images += trainer.train_step(batches)[1]
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "images_per_second": round(images / seconds, 2),
        "page_faults_per_step": round((after.ru_minflt - before.ru_minflt) / steps),
        "kernel_cpu_seconds_per_step": round((after.ru_stime - before.ru_stime) / steps, 3),
        "user_cpu_seconds_per_step": round((after.ru_utime - before.ru_utime) / steps, 3),
    }


def part_seconds(trainer, batches, steps: int) -> dict[str, float]:
    """The engine's step (``train_step``, one micro-batch) with a clock between its parts."""
    task, seconds = trainer.task, dict.fromkeys(PARTS, 0.0)
    for _ in range(steps):
        marks = [time.perf_counter()]
        batch = next(batches)
        images = batch["images"].contiguous(memory_format=torch.channels_last)
        marks.append(time.perf_counter())
        embeddings = task.backbone(images)
        marks.append(time.perf_counter())
        loss = task.head(embeddings, batch["labels"]).loss
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        trainer.parallel.clip_gradients(trainer.train_config.clip_grad_norm)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scheduler.step()
        marks.append(time.perf_counter())
        for part, begin, end in zip(PARTS, marks[:-1], marks[1:], strict=True):
            seconds[part] += (end - begin) / steps
    return seconds


def top_operators(trainer, batches, steps: int = 3, top: int = 8) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            trainer.train_step(batches)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {"operator": e.key[:60], "share": round(e.self_cpu_time_total / total, 4), "calls_per_step": e.count // steps}
        for e in events[:top]
    ]


def data_alone(trainer, steps: int) -> float:
    batches = iter(trainer.task.loader(10_000))  # batches the runs above did not touch
    next(batches)
    start = time.perf_counter()
    images = sum(len(next(batches)["images"]) for _ in range(steps))
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(recipe_path("lfw_mbf_arcface")))
    parser.add_argument("--steps", type=int, default=40, help="timed steps, each measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--allocator", choices=["kept", "glibc"], default="kept")
    parser.add_argument("--output")
    args = parser.parse_args()
    suffix = "" if args.allocator == "kept" else "_glibc"
    args.output = args.output or str(RESULTS / f"recipe_speed{suffix}.json")
    if args.allocator == "glibc":
        facelearn.train.build.keep_freed_memory = lambda: False
    rows = []
    header = f"{'mode':<10}{'images/s':>10}{'faults/step':>12}{'kernel s/step':>14}" + "".join(
        f"{p:>23}" for p in PARTS
    )
    for compiled in (False, True):
        trainer, batches = build(args.recipe, compiled, args.steps)
        start = time.perf_counter()
        for _ in range(args.warmup):
            trainer.train_step(batches)
        warmup = time.perf_counter() - start
        measured = end_to_end(trainer, batches, args.steps)
        parts = part_seconds(trainer, batches, args.steps)
        operators = top_operators(trainer, batches)
        total = sum(parts.values())
        rows.append(
            {
                "mode": "compiled" if compiled else "eager",
                "allocator": args.allocator,
                **measured,
                "warmup_seconds": round(warmup, 1),
                "step_seconds": round(total, 4),
                "parts_seconds": {p: round(s, 4) for p, s in parts.items()},
                "parts_share": {p: round(s / total, 4) for p, s in parts.items()},
                "top_operators": operators,
            }
        )
        if not compiled:
            loader_speed = data_alone(trainer, args.steps)
    print(header)
    for row in rows:
        shares = "".join(f"{100 * row['parts_share'][p]:>22.1f}%" for p in PARTS)
        print(
            f"{row['mode']:<10}{row['images_per_second']:>10.1f}{row['page_faults_per_step']:>12}"
            f"{row['kernel_cpu_seconds_per_step']:>14.3f}{shares}"
        )
    print(f"data alone (the loader without the model): {loader_speed:.0f} images/s")
    for row in rows:
        shares = ", ".join(f"{o['operator']} {100 * o['share']:.1f}%" for o in row["top_operators"][:5])
        print(f"{row['mode']} operators: {shares}")
    config = load_config(args.recipe)
    write_result(
        args.output,
        {
            "recipe": args.recipe,
            "batch_size": config.train.batch_size,
            "image_size": config.data.image_size,
            "num_workers": config.data.num_workers,
            "steps_timed": args.steps,
            "data_alone_images_per_second": round(loader_speed, 1),
            "rows": rows,
        },
        variant={"allocator": args.allocator},
    )


if __name__ == "__main__":
    main()
