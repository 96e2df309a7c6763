"""One training step of facelearn against arcface_torch's, same CPU, same backbone, same batch.

    git clone https://github.com/deepinsight/insightface   # once, anywhere
    python benchmarks/vs_arcface_torch.py --insightface PATH/TO/insightface [--rounds 5 --steps 4]

arcface_torch's side is its own code, imported from the checkout: ``backbones/mobilefacenet.py``
(``get_mbf``, 512-d) and ``losses.CombinedMarginLoss(64, 1.0, 0.5, 0.0)`` on the normalised
linear logits with cross-entropy, SGD, gradient clipping at 5 as in its ``train_v2.py``; fp32
NCHW (its fp16 is CUDA-only). facelearn's side is :meth:`Trainer.train_step` (the engine's real
step) with the same backbone (``mobilefacenet``, width 2 = ``mbf``) and ArcFace(64, 0.5), in its
defaults on this machine (channels_last; ``train.amp=auto``), eager and compiled. Random 112×112
batches of 64, 10k classes. The contenders alternate round by round in one process, so a busy
neighbour slows all of them alike; the median round is reported.

facelearn's trainer tells glibc to keep freed memory (``keep_freed_memory``), a process-wide
setting, so the comparison runs twice, each in a fresh process: ``glibc`` (nobody changes the
allocator: arcface_torch as shipped, facelearn with that setting switched off) and ``kept`` (the
setting on for every contender, arcface_torch included). The headline is facelearn as it trains
(kept) against arcface_torch as shipped (glibc). Prints a table and writes
benchmarks/results/vs_arcface_torch.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import RESULTS, write_result

import facelearn.train.build
from facelearn.config import load_config
from facelearn.train.build import build_trainer

CLASSES, BATCH, SIZE = 10_000, 64, 112


def arcface_torch_step(insightface: Path):
    """arcface_torch's step: its backbone and margin, its optimizer and clipping, fp32 NCHW."""
    sys.path.insert(0, str(insightface / "recognition" / "arcface_torch"))
    from backbones.mobilefacenet import get_mbf
    from losses import CombinedMarginLoss

    backbone = get_mbf(fp16=False, num_features=512)
    margin = CombinedMarginLoss(64, 1.0, 0.5, 0.0)
    weight = torch.nn.Parameter(torch.normal(0, 0.01, (CLASSES, 512)))
    optimizer = torch.optim.SGD(
        [{"params": backbone.parameters()}, {"params": [weight]}], lr=0.1, momentum=0.9, weight_decay=5e-4
    )
    backbone.train()

    def step(images, labels):
        embeddings = backbone(images)
        logits = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
        loss = F.cross_entropy(margin(logits, labels), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5)
        optimizer.step()
        optimizer.zero_grad()

    return step


def facelearn_step(compile_backbone: bool):
    overrides = [
        "model.name=mobilefacenet",
        "model.embedding_size=512",
        "head.name=arcface",
        "head.scale=64",
        "head.margin=0.5",
        "data.kind=synthetic",
        f"data.image_size={SIZE}",
        f"data.num_classes={CLASSES}",
        f"train.batch_size={BATCH}",
        f"train.compile={str(compile_backbone).lower()}",
        "train.output_dir=/nonexistent-unused",
    ]
    trainer = build_trainer(load_config(None, overrides))
    trainer.task.train()

    def step(images, labels):
        batch = {"images": images, "labels": labels, "indices": torch.arange(len(labels)), "skipped": 0}
        trainer.train_step(iter([batch]))

    return step, trainer


def measure(args) -> list[dict]:
    """The contenders alternating in this process, under ``args.allocator``."""
    if args.allocator == "glibc":
        facelearn.train.build.keep_freed_memory = lambda: False
    torch.manual_seed(0)
    images, labels = torch.randn(BATCH, 3, SIZE, SIZE), torch.randint(0, CLASSES, (BATCH,))
    eager, trainer = facelearn_step(False)
    compiled, _ = facelearn_step(True)
    precision = trainer.amp_dtype or "fp32"
    contenders = {
        "arcface_torch (fp32 NCHW)": arcface_torch_step(args.insightface),
        f"facelearn eager ({precision}, channels_last)": eager,
        f"facelearn compiled ({precision}, channels_last)": compiled,
    }
    warmup_seconds = {}
    for name, step in contenders.items():  # the first step compiles; the second settles the allocator
        start = time.perf_counter()
        step(images, labels)
        step(images, labels)
        warmup_seconds[name] = round(time.perf_counter() - start, 1)
    speeds = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(images, labels)
            speeds[name].append(args.steps * BATCH / (time.perf_counter() - start))
    return [
        {
            "contender": name,
            "allocator": args.allocator,
            "images_per_second": round(statistics.median(values), 2),
            "rounds": [round(v, 2) for v in values],
            "first_two_steps_seconds": warmup_seconds[name],
        }
        for name, values in speeds.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--insightface", type=Path, required=True, help="a checkout of deepinsight/insightface")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps timed per contender per round")
    parser.add_argument("--output", default=str(RESULTS / "vs_arcface_torch.json"))
    parser.add_argument("--allocator", choices=["glibc", "kept"], help=argparse.SUPPRESS)  # one process's share
    args = parser.parse_args()
    if not (args.insightface / "recognition" / "arcface_torch" / "losses.py").is_file():
        parser.error(f"{args.insightface} is not an insightface checkout (no recognition/arcface_torch/losses.py)")
    if args.allocator:
        Path(args.output).write_text(json.dumps(measure(args)))
        return
    rows = []
    for allocator in ("glibc", "kept"):
        with tempfile.NamedTemporaryFile(suffix=".json") as part:
            forwarded = [
                "--insightface",
                str(args.insightface),
                "--rounds",
                str(args.rounds),
                "--steps",
                str(args.steps),
            ]
            subprocess.run(
                [sys.executable, __file__, *forwarded, "--allocator", allocator, "--output", part.name], check=True
            )
            rows += json.loads(Path(part.name).read_text())
    shipped = next(r for r in rows if r["contender"].startswith("arcface_torch") and r["allocator"] == "glibc")
    print(f"\n{'contender':<44}{'allocator':>10}{'images/s':>10}{'× arcface_torch as shipped':>28}")
    for row in rows:
        row["ratio_to_arcface_torch_as_shipped"] = round(row["images_per_second"] / shipped["images_per_second"], 3)
        print(
            f"{row['contender']:<44}{row['allocator']:>10}{row['images_per_second']:>10.1f}"
            f"{row['ratio_to_arcface_torch_as_shipped']:>27.2f}×"
        )
    write_result(
        args.output,
        {"batch_size": BATCH, "image_size": SIZE, "classes": CLASSES, "steps_per_round": args.steps, "rows": rows},
    )


if __name__ == "__main__":
    main()
