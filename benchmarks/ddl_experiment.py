"""DDL against plain ArcFace fine-tuning, on identity-disjoint LFW pairs at easy–easy, hard–hard
and easy–hard.

    python benchmarks/ddl_experiment.py [--work runs/lfw] [overrides ...]

Needs the base model of benchmarks/lfw_recipe.py (runs/lfw/mbf_detect). From it, fine-tunes with
configs/lfw_mbf_ddl.yaml for the same number of steps on the same batches:
(a) ArcFace alone (the DDL weights set to 0) and (b) ArcFace + DDL, for two hard degradations:
4× down-sampling (64 → 16 px) and a stronger one (64 → 12 px, blurred and noisy). The base model
is evaluated too, and the variants in VARIANTS (larger DDL weights). Reports accuracy (mean ± std
over the 3 folds), the easy–hard gap, and per set d = E[S⁺] − E[S⁻] (mean genuine minus mean
impostor cosine), the distance DDL is meant to keep for hard samples.
Writes benchmarks/results/ddl_experiment.json (or --output).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RESULTS, needs, shell_command, train_unless_done, write_result

from facelearn.cli import recipe_path

DEGRADATIONS = {
    "down4x": "{downsample_prob: 1.0, downsample_sizes: [16]}",
    "down5x_blur_noise": "{downsample_prob: 1.0, downsample_sizes: [12], blur_prob: 1.0, blur_sigma: [0.8, 1.6], "
    "noise_prob: 1.0, noise_std: [4.0, 10.0]}",
}
NO_DDL = ["ddl.pos_weight=0", "ddl.neg_weight=0", "ddl.order_weight=0"]
# What else was tried on the 4x down-sampled students (run folder suffix: overrides).
VARIANTS = {"_lambda5": ["ddl.pos_weight=0.5", "ddl.neg_weight=0.1", "ddl.order_weight=2.5"]}
SETS = ("lfw_easy_easy", "lfw_hard_hard", "lfw_easy_hard")
BASE = "mbf_detect/step_0000600.pt"


def set_overrides(work: Path, degradation: str) -> list[str]:
    return [
        *[f"eval.sets.{i}.path={work / 'pairs_folds_8_10.txt'}" for i in range(3)],
        *[f"eval.sets.{i}.root={work / 'detect' / 'test'}" for i in range(3)],
        *[f"eval.sets.{i}.degrade={DEGRADATIONS[degradation]}" for i in (1, 2)],
    ]


def run(name: str, work: Path, degradation: str, overrides: list[str]) -> dict:
    run_dir = work / name
    command = [
        "train",
        str(recipe_path("lfw_mbf_ddl")),
        f"train.output_dir={run_dir}",
        f"train.init_backbone={work / BASE}",
        f"data.root={work / 'detect' / 'train'}",
        f"ddl.students=[{{name: {degradation}, degrade: {DEGRADATIONS[degradation]}}}]",
        *set_overrides(work, degradation),
        *overrides,
    ]
    metrics = train_unless_done(command, run_dir, name)
    return summarise(name, degradation, metrics["verification"], shell_command(command))


def summarise(name: str, degradation: str, verification: dict, command: str) -> dict:
    row = {"run": name, "hard": degradation, "command": command}
    for key in SETS:
        result = verification[key]
        row[key.removeprefix("lfw_")] = {
            "accuracy": result["accuracy"],
            "accuracy_std": result["accuracy_std"],
            "fold_accuracies": result["fold_accuracies"],
            "d": result["mean_cosine_genuine"] - result["mean_cosine_impostor"],
            "mean_cosine_genuine": result["mean_cosine_genuine"],
            "mean_cosine_impostor": result["mean_cosine_impostor"],
        }
    row["accuracy_gap_easy_minus_hard"] = row["easy_easy"]["accuracy"] - row["hard_hard"]["accuracy"]
    row["d_gap_easy_minus_hard"] = row["easy_easy"]["d"] - row["hard_hard"]["d"]
    return row


def evaluate_base(work: Path, degradation: str) -> dict:
    """The base model before fine-tuning, on the same three sets."""
    output = work / f"base_eval_{degradation}"
    if not (output / "metrics.json").is_file():
        from facelearn.config import load_config
        from facelearn.data.pairs import pair_set_from_config
        from facelearn.eval.embed import evaluate_pair_set
        from facelearn.models.checkpoint import backbone_from_checkpoint

        config = load_config(recipe_path("lfw_mbf_ddl"), set_overrides(work, degradation))
        backbone, size = backbone_from_checkpoint(work / BASE)
        results = {}
        for set_config in config.eval.sets:
            pairs = pair_set_from_config(set_config, config.train.seed, size)
            results[pairs.name] = evaluate_pair_set(backbone, pairs, output).to_dict()
        (output / "metrics.json").write_text(json.dumps({"verification": results}, indent=2))
    verification = json.loads((output / "metrics.json").read_text())["verification"]
    return summarise("base (no fine-tuning)", degradation, verification, f"the checkpoint {work / BASE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/lfw")
    parser.add_argument("--degradations", nargs="+", choices=list(DEGRADATIONS), default=list(DEGRADATIONS))
    parser.add_argument("--tag", default="", help="suffix of the run folders, for variants with other overrides")
    parser.add_argument("--output", default=str(RESULTS / "ddl_experiment.json"))
    parser.add_argument("overrides", nargs="*", help="extra overrides for both fine-tunings, e.g. ddl.sigma=0.05")
    args = parser.parse_args()
    work = needs(args.work, "benchmarks/lfw_recipe.py")
    rows = []
    for degradation in args.degradations:
        rows.append(evaluate_base(work, degradation))
        rows.append(run(f"arcface_{degradation}{args.tag}", work, degradation, [*NO_DDL, *args.overrides]))
        rows.append(run(f"ddl_{degradation}{args.tag}", work, degradation, args.overrides))
        if degradation == "down4x" and not args.tag:
            for suffix, overrides in VARIANTS.items():
                rows.append(run(f"ddl_{degradation}{suffix}", work, degradation, [*overrides, *args.overrides]))
    header = f"{'run':<28}{'hard':<20}" + "".join(f"{s:>17}" for s in ("easy-easy", "hard-hard", "easy-hard"))
    print(header + f"{'acc gap':>9}{'d EE':>7}{'d HH':>7}{'d EH':>7}{'d gap':>7}")
    for r in rows:
        cells = "".join(
            f"{100 * r[s]['accuracy']:>10.2f} ± {100 * r[s]['accuracy_std']:.2f}"
            for s in ("easy_easy", "hard_hard", "easy_hard")
        )
        ds = "".join(f"{r[s]['d']:>7.3f}" for s in ("easy_easy", "hard_hard", "easy_hard"))
        print(
            f"{r['run']:<28}{r['hard']:<20}{cells}{100 * r['accuracy_gap_easy_minus_hard']:>8.2f}%{ds}"
            f"{r['d_gap_easy_minus_hard']:>7.3f}"
        )
    write_result(args.output, {"rows": rows, "overrides": args.overrides})


if __name__ == "__main__":
    main()
