"""ShrinkTeaNet on real faces: an iResNet-18 teacher into MobileFaceNet students, same budget each.

    python benchmarks/distill_experiment.py [--work runs/lfw]

Needs the teacher of benchmarks/lfw_recipe.py (runs/lfw/r18_detect). Trains configs/lfw_mbf_distill.yaml
five ways — self-taught, L2 (λ = 0.001), angular on the final embedding with p = 1 and p = 2, and
angular on the final embedding plus all four stages (adapters routed through the teacher's later
stages) — and reports identity-disjoint LFW accuracy (folds 8-10, mean ± std), the gap to the
teacher, parameters, FLOPs and CPU latency at batch 1 and 64, and the loss curves
(benchmarks/results/distill_loss_curves.png). Writes benchmarks/results/distill_experiment.json.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import matplotlib
import torch
from common import RESULTS, needs, train_unless_done, write_result
from torch.utils.flop_counter import FlopCounterMode

from facelearn.cli import recipe_path
from facelearn.models.checkpoint import backbone_from_checkpoint, step_checkpoints

RUNS = {
    "self_taught": ["distill.method=none"],
    "l2": ["distill.method=l2"],
    "angular_final_p1": ["distill.method=angular", "distill.p=1"],
    "angular_final_p2": ["distill.method=angular", "distill.p=2"],
    "angular_all_stages_p1": ["distill.method=angular", "distill.p=1", "distill.stages=[1,2,3,4]"],
}
LOG_LINE = re.compile(r"step (\d+) loss ([0-9.naninf]+)")


def train(name: str, work: Path, extra: list[str]) -> Path:
    run = work / f"distill_{name}"
    command = [
        "train",
        str(recipe_path("lfw_mbf_distill")),
        f"train.output_dir={run}",
        f"distill.teacher={work / 'r18_detect' / 'step_0000600.pt'}",
        f"data.root={work / 'detect' / 'train'}",
        f"eval.sets.0.path={work / 'pairs_folds_8_10.txt'}",
        f"eval.sets.0.root={work / 'detect' / 'test'}",
        *RUNS[name],
        *extra,
    ]
    train_unless_done(command, run, name)
    return run


def cost(backbone: torch.nn.Module, size: int) -> dict:
    """Parameters, forward FLOPs per image and CPU latency (fp32, inference mode) at batch 1 and 64."""
    backbone.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        backbone(torch.zeros(1, 3, size, size))
    latency = {}
    for batch in (1, 64):
        x = torch.randn(batch, 3, size, size)
        with torch.inference_mode():
            for _ in range(3):
                backbone(x)
            repeats = 20 if batch == 1 else 5
            start = time.perf_counter()
            for _ in range(repeats):
                backbone(x)
        latency[f"batch_{batch}_ms"] = round(1000 * (time.perf_counter() - start) / repeats, 2)
    return {
        "parameters_m": round(sum(p.numel() for p in backbone.parameters()) / 1e6, 3),
        "mflops": round(counter.get_total_flops() / 2e6, 1),  # multiply-adds, as papers count them
        **latency,
    }


def result_of(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    result = next(iter(metrics["verification"].values()))
    curve = [(int(m[1]), float(m[2])) for m in LOG_LINE.finditer((run / "train.log").read_text())]
    return {"accuracy": result["accuracy"], "accuracy_std": result["accuracy_std"], "loss_curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/lfw")
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--output", default=str(RESULTS / "distill_experiment.json"))
    parser.add_argument("overrides", nargs="*", help="extra overrides for every student, e.g. train.steps=600")
    args = parser.parse_args()
    work = needs(args.work, "benchmarks/lfw_recipe.py")
    torch.set_num_threads(2)
    teacher_run = work / "r18_detect"
    teacher, size = backbone_from_checkpoint(step_checkpoints(teacher_run)[-1])
    rows = [{"run": "teacher iresnet18", **result_of(teacher_run), **cost(teacher, size)}]
    for name in args.only:
        run = train(name, work, args.overrides)
        student, _ = backbone_from_checkpoint(step_checkpoints(run)[-1])
        rows.append({"run": name, **result_of(run), **cost(student, size)})
    for row in rows[1:]:
        row["gap_to_teacher"] = rows[0]["accuracy"] - row["accuracy"]
    print(f"{'run':<24}{'accuracy':>16}{'gap':>8}{'params M':>10}{'MFLOPs':>9}{'ms @1':>8}{'ms @64':>9}")
    for r in rows:
        gap = f"{100 * r['gap_to_teacher']:>7.2f}" if "gap_to_teacher" in r else f"{'':>7}"
        print(
            f"{r['run']:<24}{100 * r['accuracy']:>9.2f} ± {100 * r['accuracy_std']:.2f}{gap} {r['parameters_m']:>9}"
            f"{r['mflops']:>9}{r['batch_1_ms']:>8}{r['batch_64_ms']:>9}"
        )
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for r in rows[1:]:
        steps, losses = zip(*r["loss_curve"], strict=True)
        axis.plot(steps, losses, label=r["run"])
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (ArcFace + distillation)")
    axis.set_yscale("log")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "distill_loss_curves.png", dpi=100)
    write_result(args.output, {"input_size": size, "rows": rows, "overrides": args.overrides})


if __name__ == "__main__":
    main()
