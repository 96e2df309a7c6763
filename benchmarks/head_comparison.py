"""Every margin head with the same budget on the LFW recipe, identity-disjoint.

    python benchmarks/head_comparison.py [--work runs/lfw] [--only arcface magface ...] [train.steps=200]

Needs the prepared data of benchmarks/lfw_recipe.py (runs/lfw/detect). Trains configs/lfw_mbf_arcface.yaml
(MobileFaceNet, 64×64, batch 128, SGD 0.1 cosine) once per head for the same number of steps, with
each head's own defaults except a common scale s = 32 where the head has one (the recipe's; the
references' s = 64 is tuned for millions of images); triplet and pair-wise Circle Loss get batches
of 32 identities × 4 images. Reports LFW folds 8–10 accuracy (mean ± std), AUC, EER and TAR at
FAR = 1e-3, and writes benchmarks/results/head_comparison.json after every run (runs already
finished are reused).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RESULTS, needs, shell_command, train_unless_done, write_result

from facelearn.cli import recipe_path

NO_OPTIONS = ["head.scale=null", "head.margin=null"]
SCALE = ["head.scale=32", "head.margin=null"]
IDENTITY_BATCHES = ["data.sampler=identity", "data.samples_per_identity=4"]
HEADS = {
    "arcface": SCALE,
    "cosface": SCALE,
    "magface": SCALE,
    "curricularface": SCALE,
    "adaface": SCALE,
    "subcenter_arcface": SCALE,
    "combined": SCALE,
    "circle": NO_OPTIONS,
    "adacos": NO_OPTIONS,
    "sphereface": NO_OPTIONS,
    "softmax": NO_OPTIONS,
    "triplet": NO_OPTIONS + IDENTITY_BATCHES,
    "circle_pair": NO_OPTIONS + IDENTITY_BATCHES,
}


def train(name: str, work: Path, extra: list[str]) -> tuple[Path, str]:
    run = work / f"head_{name}"
    command = [
        "train",
        str(recipe_path("lfw_mbf_arcface")),
        f"train.output_dir={run}",
        f"data.root={work / 'detect' / 'train'}",
        f"eval.sets.0.path={work / 'pairs_folds_8_10.txt'}",
        f"eval.sets.0.root={work / 'detect' / 'test'}",
        f"head.name={name}",
        *HEADS[name],
        *extra,
    ]
    train_unless_done(command, run, name)
    return run, shell_command(command)


def result_of(name: str, run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    result = next(iter(metrics["verification"].values()))
    keys = ("accuracy", "accuracy_std", "auc", "eer", "val", "far")  # val = TAR at FAR ≈ far
    return {"head": name, **{k: result[k] for k in keys if k in result}, "train_seconds": metrics["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/lfw")
    parser.add_argument("--only", nargs="+", choices=list(HEADS), default=list(HEADS))
    parser.add_argument("--output", default=str(RESULTS / "head_comparison.json"))
    parser.add_argument("overrides", nargs="*", default=["train.steps=200"], help="for every run")
    args = parser.parse_args()
    work, rows = needs(args.work, "benchmarks/lfw_recipe.py"), []
    for name in args.only:
        run, command = train(name, work, args.overrides)
        rows.append({**result_of(name, run), "command": command})
        write_result(args.output, {"overrides": args.overrides, "rows": rows})
    print(f"{'head':<20}{'accuracy':>16}{'AUC':>8}")
    for r in sorted(rows, key=lambda r: -r["accuracy"]):
        accuracy = f"{100 * r['accuracy']:>9.2f} ± {100 * r['accuracy_std']:.2f}"
        print(f"{r['head']:<20}{accuracy}{r['auc']:>8.3f}")


if __name__ == "__main__":
    main()
