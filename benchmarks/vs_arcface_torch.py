"""One training step of facelearn against arcface_torch's, same CPU, same backbone, same batch — and both against
what the CPU can do at most.

    git clone https://github.com/deepinsight/insightface   # once, anywhere
    python benchmarks/vs_arcface_torch.py --insightface PATH/TO/insightface [--models mobilefacenet iresnet50]
        [--allocators glibc kept] [--tries]

arcface_torch's side is its own code, imported from the checkout: ``backbones.get_model`` (``mbf`` or ``r50``,
512-d) and ``losses.CombinedMarginLoss(64, 1.0, 0.5, 0.0)`` on the normalised linear logits with cross-entropy,
SGD, gradient clipping at 5 as in its ``train_v2.py``; fp32 NCHW (its fp16 is CUDA-only). facelearn's side is
:meth:`Trainer.train_step` (the engine's real step) with the same backbone (``mobilefacenet`` width 2 = ``mbf``,
``iresnet50`` = ``r50``) and ArcFace(64, 0.5), in its defaults on this machine (channels_last;
``train.amp=auto``), eager and compiled. Random 112×112 batches, 10k classes: MobileFaceNet at batch 64 (5
rounds of 2 steps), iResNet-50 at batch 16 (3 rounds of 1 step: its step costs ~6× MobileFaceNet's per image).
The contenders alternate round by round in one process, so a busy neighbour slows all of them alike; the
median round is reported.

Against the machine (``peak.py``): the bf16 and fp32 peak of a 4096² matrix product on the training thread
count, taken at the start and the end of each process (the best is the machine's); each contender's FLOP per
image counted with ``torch.utils.flop_counter`` on one of its own steps (forward + backward, the head included),
its achieved GFLOP/s (images/s × GFLOP per image) and that as a fraction of each peak. The operators of
facelearn's steps are profiled (``torch.profiler``) to show what holds them below the peak.

``--tries`` adds facelearn variants to the same rounds (NCHW instead of channels_last, ``max-autotune``
compilation, a doubled batch), recorded under ``tries`` (``--output results/vs_arcface_torch_tries.json``): each
default was kept or changed by these numbers.

facelearn's trainer tells glibc to keep freed memory (``keep_freed_memory``), a process-wide setting, so each
allocator runs in a fresh process: ``glibc`` (nobody changes the allocator: arcface_torch as shipped, facelearn
with that setting switched off) and ``kept`` (the setting on for every contender, arcface_torch included).
Prints a table and writes benchmarks/results/vs_arcface_torch_peak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from common import RESULTS, write_result
from peak import PEAK_SIZE, flop_per_image, machine_peak, operator_profile

import facelearn.train.build
from facelearn.config import load_config
from facelearn.hardware import precision_name, resolve_amp
from facelearn.train.build import build_trainer

CLASSES, SIZE = 10_000, 112
COUNT_BATCH = 4  # images in the step whose FLOP are counted (the count is per image; batch norm needs > 1)


@dataclass(frozen=True)
class Model:
    facelearn: str  # model.name
    arcface_torch: str  # backbones.get_model name
    batch: int
    rounds: int
    steps: int  # timed per contender per round


MODELS = {
    "mobilefacenet": Model("mobilefacenet", "mbf", batch=64, rounds=5, steps=2),
    "iresnet50": Model("iresnet50", "r50", batch=16, rounds=3, steps=1),
}


def arcface_torch_step(insightface: Path, model: Model):
    """arcface_torch's step: its backbone and margin, its optimizer and clipping, fp32 NCHW."""
    sys.path.insert(0, str(insightface / "recognition" / "arcface_torch"))
    from backbones import get_model
    from losses import CombinedMarginLoss

    backbone = get_model(model.arcface_torch, fp16=False, num_features=512)
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


def facelearn_step(model: Model, batch: int, compile_mode: str | None, channels_last: bool = True):
    """facelearn's :meth:`Trainer.train_step`; ``compile_mode`` None: eager, ``default`` as ``train.compile``
    does it, or another ``torch.compile`` mode."""
    overrides = [
        f"model.name={model.facelearn}",
        "model.embedding_size=512",
        "head.name=arcface",
        "head.scale=64",
        "head.margin=0.5",
        "data.kind=synthetic",
        f"data.image_size={SIZE}",
        f"data.num_classes={CLASSES}",
        f"train.batch_size={batch}",
        f"train.compile={str(compile_mode == 'default').lower()}",
        f"train.channels_last={str(channels_last).lower()}",
        "train.output_dir=/nonexistent-unused",
    ]
    trainer = build_trainer(load_config(None, overrides))
    if compile_mode not in (None, "default"):
        trainer.task.backbone.compile(mode=compile_mode)
    trainer.task.train()

    def step(images, labels):
        batch = {"images": images, "labels": labels, "indices": torch.arange(len(labels)), "skipped": 0}
        trainer.train_step(iter([batch]))

    return step, trainer


def random_batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(size, 3, SIZE, SIZE), torch.randint(0, CLASSES, (size,))


@dataclass
class Contender:
    step: object
    batch: int
    counted: str | None = None  # the contender whose FLOP count this one shares (compiled = its eager twin)
    is_try: bool = False


def contenders(args, model: Model, precision: str) -> dict[str, Contender]:
    eager, _ = facelearn_step(model, model.batch, None)
    found = {
        "arcface_torch (fp32 NCHW)": Contender(arcface_torch_step(args.insightface, model), model.batch),
        f"facelearn eager ({precision}, channels_last)": Contender(eager, model.batch),
        f"facelearn compiled ({precision}, channels_last)": Contender(
            facelearn_step(model, model.batch, "default")[0],
            model.batch,
            f"facelearn eager ({precision}, channels_last)",
        ),
    }
    if args.tries:
        eager_name = f"facelearn eager ({precision}, channels_last)"
        found[f"try: facelearn eager ({precision}, NCHW)"] = Contender(
            facelearn_step(model, model.batch, None, channels_last=False)[0], model.batch, None, True
        )
        found[f"try: facelearn eager ({precision}, channels_last), batch {2 * model.batch}"] = Contender(
            facelearn_step(model, 2 * model.batch, None)[0], 2 * model.batch, eager_name, True
        )
        found[f"try: facelearn compiled max-autotune ({precision}, channels_last)"] = Contender(
            facelearn_step(model, model.batch, "max-autotune")[0], model.batch, eager_name, True
        )
    return found


def measure_model(args, name: str, model: Model) -> dict:
    """One model's contenders: FLOP per image, warm-up, alternating rounds, and a profile of facelearn's steps."""
    torch.manual_seed(0)
    precision = precision_name(resolve_amp("auto", torch.device("cpu")))
    found = contenders(args, model, precision)
    print(f"{name}: {len(found)} contenders built", flush=True)
    gflop, by_operator = {}, {}
    for contender_name, contender in found.items():
        if contender.counted is None:
            gflop[contender_name], by_operator[contender_name] = flop_per_image(
                contender.step, *random_batch(COUNT_BATCH)
            )
    batches = {size: random_batch(size) for size in {c.batch for c in found.values()}}
    warmup_seconds = {}
    for contender_name, contender in found.items():  # the first step compiles; the second settles the allocator
        start = time.perf_counter()
        for _ in range(2):
            contender.step(*batches[contender.batch])
        warmup_seconds[contender_name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {contender_name} warmed up in {warmup_seconds[contender_name]} s", flush=True)
    speeds = {contender_name: [] for contender_name in found}
    busy = {contender_name: [] for contender_name in found}  # CPU seconds / (wall seconds × threads): < 1 when starved
    for _ in range(model.rounds):
        for contender_name, contender in found.items():
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(model.steps):
                contender.step(*batches[contender.batch])
            seconds = time.perf_counter() - start
            speeds[contender_name].append(model.steps * contender.batch / seconds)
            busy[contender_name].append((time.process_time() - cpu) / seconds / torch.get_num_threads())
    rows = []
    for contender_name, contender in found.items():
        per_image = gflop[contender.counted or contender_name]
        speed = statistics.median(speeds[contender_name])
        rows.append(
            {
                "model": name,
                "contender": contender_name,
                "try": contender.is_try,
                "batch_size": contender.batch,
                "allocator": args.allocator,
                "images_per_second": round(speed, 2),
                "rounds": [round(v, 2) for v in speeds[contender_name]],
                "rounds_cpu_busy": [round(v, 2) for v in busy[contender_name]],
                "first_two_steps_seconds": warmup_seconds[contender_name],
                "gflop_per_image": round(per_image, 3),
                "gflops": round(speed * per_image, 1),
                "gflop_by_operator": {
                    op: round(v, 3) for op, v in by_operator[contender.counted or contender_name].items()
                },
            }
        )
    profiles = {}
    if args.allocator == "kept":  # facelearn as it trains: where its step's time goes
        for contender_name, contender in found.items():
            if contender_name.startswith("facelearn") and not contender.is_try:
                profiles[contender_name] = operator_profile(contender.step, *batches[contender.batch])
    return {"rows": rows, "profiles": profiles}


def chosen(args, name: str) -> Model:
    """The model's settings; ``--smoke``: batch 4, one round of one step (checks the plumbing in seconds)."""
    return replace(MODELS[name], batch=4, rounds=1, steps=1) if args.smoke else MODELS[name]


def measure(args) -> dict:
    """The peak, then every model's contenders, then the peak again, in this process under ``args.allocator``."""
    if args.allocator == "glibc":
        facelearn.train.build.keep_freed_memory = lambda: False
    size = 1024 if args.smoke else PEAK_SIZE
    peaks = [machine_peak(size)]
    models = {name: measure_model(args, name, chosen(args, name)) for name in args.models}
    peaks.append(machine_peak(size))
    return {"allocator": args.allocator, "peaks": peaks, "models": models}


def subprocess_measure(args, allocator: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as part:
        flags = ["--tries"] * args.tries + ["--smoke"] * args.smoke
        forwarded = ["--insightface", str(args.insightface), "--models", *args.models, *flags]
        subprocess.run(
            [sys.executable, __file__, *forwarded, "--allocator", allocator, "--output", part.name], check=True
        )
        return json.loads(Path(part.name).read_text())


def summarise(parts: list[dict]) -> dict:
    """Rows with their fraction of the best peaks and their ratio to arcface_torch; tries apart."""
    peaks = [peak for part in parts for peak in part["peaks"]]
    best = {key: max(p[key] for p in peaks) for key in ("bf16_gflops", "fp32_gflops")}
    rows = [row for part in parts for model in part["models"].values() for row in model["rows"]]
    reference = {
        (r["model"], r["allocator"]): r["images_per_second"] for r in rows if r["contender"].startswith("arcface")
    }
    for row in rows:
        row["fraction_of_bf16_peak"] = round(row["gflops"] / best["bf16_gflops"], 3)
        row["fraction_of_fp32_peak"] = round(row["gflops"] / best["fp32_gflops"], 3)
        shipped = reference.get((row["model"], "glibc"))
        same = reference[row["model"], row["allocator"]]
        row["ratio_to_arcface_torch_same_allocator"] = round(row["images_per_second"] / same, 3)
        if shipped:
            row["ratio_to_arcface_torch_as_shipped"] = round(row["images_per_second"] / shipped, 3)
    return {
        "peak": {**best, "measurements": peaks},
        "rows": [r for r in rows if not r["try"]],
        "tries": [r for r in rows if r["try"]],
        "profiles": {
            name: model["profiles"] for part in parts for name, model in part["models"].items() if model["profiles"]
        },
    }


def print_table(summary: dict) -> None:
    peak = summary["peak"]
    print(f"\npeak: bf16 {peak['bf16_gflops']:.0f} GFLOP/s, fp32 {peak['fp32_gflops']:.0f} GFLOP/s")
    print(
        f"{'model':<15}{'contender':<62}{'alloc':>6}{'img/s':>8}{'GFLOP/s':>9}{'bf16 pk':>9}{'fp32 pk':>9}{'× ref':>7}"
    )
    for row in summary["rows"] + summary["tries"]:
        print(
            f"{row['model']:<15}{row['contender']:<62}{row['allocator']:>6}{row['images_per_second']:>8.1f}"
            f"{row['gflops']:>9.0f}{row['fraction_of_bf16_peak']:>9.1%}{row['fraction_of_fp32_peak']:>9.1%}"
            f"{row['ratio_to_arcface_torch_same_allocator']:>6.2f}×"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--insightface", type=Path, required=True, help="a checkout of deepinsight/insightface")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--allocators", nargs="+", choices=["glibc", "kept"], default=["glibc", "kept"])
    parser.add_argument("--tries", action="store_true", help="add facelearn's variants (layout, batch, compile mode)")
    parser.add_argument("--output", default=str(RESULTS / "vs_arcface_torch_peak.json"))
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tiny batches: the plumbing only
    parser.add_argument("--allocator", choices=["glibc", "kept"], help=argparse.SUPPRESS)  # one process's share
    args = parser.parse_args()
    if not (args.insightface / "recognition" / "arcface_torch" / "losses.py").is_file():
        parser.error(f"{args.insightface} is not an insightface checkout (no recognition/arcface_torch/losses.py)")
    if args.allocator:
        Path(args.output).write_text(json.dumps(measure(args)))
        return
    load_before = [round(x, 2) for x in os.getloadavg()]
    summary = summarise([subprocess_measure(args, allocator) for allocator in args.allocators])
    print_table(summary)
    models = {name: vars(chosen(args, name)) for name in args.models}
    load = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    write_result(
        args.output, {"image_size": SIZE, "classes": CLASSES, "models": models, "load_average": load, **summary}
    )


if __name__ == "__main__":
    main()
