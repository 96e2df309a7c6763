"""The real-data recipe: train on LFW identities, test on identity-disjoint LFW View-2 pairs.

    python benchmarks/lfw_recipe.py [--lfw ../shared/data/lfw_a] [--work runs/lfw]

1. Split (``facelearn.data.lfw_split``): test = View-2 folds 8-10 (1,800 pairs); train = every
   identity with two or more images that none of those pairs uses.
2. Prepare both halves three ways with ``facelearn prepare``: ``detect`` (MTCNN + five-point
   alignment, the most central face), ``center`` (a fixed central crop of 60 % of the image) and
   ``resize`` (LFW-a's own alignment, the whole 250×250 image resized). Test images without a
   detected face keep their central crop, so every pair is scored.
3. Train ``configs/lfw_mbf_arcface.yaml`` on each preprocessing, and ``configs/lfw_r18_arcface.yaml``
   (the iResNet-18 teacher of the distillation task) on ``detect``, all with the same budget.
4. Print a table and write benchmarks/results/lfw_recipe.json.

Finished steps are kept: a run whose metrics.json exists is read, not retrained; a killed
training resumes from its last checkpoint. ``--only`` restricts to some runs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import RESULTS, shell_command, train_unless_done, write_result

from facelearn.align.prepare import PrepareOptions
from facelearn.bulk.prepare import prepare_dataset
from facelearn.cli import recipe_path
from facelearn.data.lfw_split import lfw_split, write_pairs

SHARED = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
PREPROCESSINGS = ("detect", "center", "resize")
RUNS = {  # name: (recipe, preprocessing)
    "mbf_detect": ("lfw_mbf_arcface", "detect"),
    "mbf_center": ("lfw_mbf_arcface", "center"),
    "mbf_resize": ("lfw_mbf_arcface", "resize"),
    "r18_detect": ("lfw_r18_arcface", "detect"),
}


def link_identities(names: set[str] | list[str], lfw: Path, folder: Path) -> None:
    """``folder/<name>`` → the LFW identity folder, so prepare reads only this half of the split."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = folder / name
        if not link.exists():
            link.symlink_to((lfw / name).resolve(), target_is_directory=True)


def make_split(lfw: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    train, test_pairs = lfw_split(lfw / "pairs.txt", lfw / "lfw", test_folds=(8, 9, 10))
    write_pairs(work / "pairs_folds_8_10.txt", test_pairs, folds=3)
    test_names = {name for n1, _, n2, _ in test_pairs for name in (n1, n2)}
    link_identities(train, lfw / "lfw", work / "source" / "train")
    link_identities(test_names, lfw / "lfw", work / "source" / "test")
    split = {
        "test": "LFW View-2 folds 8-10 (pairs.txt lines 4202-6001), 1,800 pairs, 3 folds of 600",
        "test_identities": len(test_names),
        "train_identities": len(train),
        "train_images": sum(len(list((lfw / "lfw" / n).iterdir())) for n in train),
        "train_rule": "every identity with >= 2 images that no test pair uses",
    }
    (work / "split.json").write_text(json.dumps({**split, "train_names": train}, indent=2))
    return split


def prepare(work: Path, weights: Path, workers: int) -> dict:
    reports = {}
    for crop in PREPROCESSINGS:
        for half in ("train", "test"):
            output = work / crop / half
            report_path = output / "prepare_report.json"
            if not report_path.is_file():
                options = PrepareOptions(
                    crop=crop, weights=str(weights), choose="central", no_face="center" if half == "test" else "skip"
                )
                prepare_dataset(work / "source" / half, output, options, workers)
            report = json.loads(report_path.read_text())
            reports[f"{crop}/{half}"] = {
                k: report[k] for k in ("images_read", "faces_found", "no_face", "multi_face", "seconds_this_run")
            } | {"failures": len(report["failures"])}
    return reports


def train(name: str, work: Path) -> dict:
    recipe, crop = RUNS[name]
    run = work / name
    overrides = [
        f"data.root={work / crop / 'train'}",
        f"eval.sets.0.path={work / 'pairs_folds_8_10.txt'}",
        f"eval.sets.0.root={work / crop / 'test'}",
        f"train.output_dir={run}",
    ]
    command = ["train", str(recipe_path(recipe)), *overrides]
    metrics = train_unless_done(command, run, name)
    result = metrics["verification"]["lfw_folds_8_10"]
    return {
        "run": name,
        "recipe": f"configs/{recipe}.yaml",
        "preprocessing": crop,
        "command": shell_command(command),
        "steps": metrics["step"],
        "train_minutes": round(metrics.get("seconds", 0) / 60, 1),
        "accuracy": result["accuracy"],
        "accuracy_std": result["accuracy_std"],
        "fold_accuracies": result.get("fold_accuracies"),
        "auc": result["auc"],
        "eer": result["eer"],
        "threshold_cosine": result["threshold_cosine"],
    }


def lfw_parser(description: str) -> argparse.ArgumentParser:
    """The options every LFW benchmark takes: the data, the detector weights, the work folder."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(SHARED / "data" / "lfw_a"))
    parser.add_argument("--weights", default=str(SHARED / "weights" / "mtcnn"))
    parser.add_argument("--work", default="runs/lfw")
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main() -> None:
    parser = lfw_parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--output", default=str(RESULTS / "lfw_recipe.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    work = Path(args.work)
    split = make_split(Path(args.lfw), work)
    reports = prepare(work, Path(args.weights), args.workers)
    rows = [train(name, work) for name in args.only]
    print(f"\n{'run':<12}{'preprocessing':<15}{'accuracy (3 folds)':>20}{'AUC':>8}{'EER':>8}{'min':>6}")
    for r in rows:
        print(
            f"{r['run']:<12}{r['preprocessing']:<15}{100 * r['accuracy']:>13.2f} ± {100 * r['accuracy_std']:.2f}"
            f"{r['auc']:>8.4f}{100 * r['eer']:>7.2f}%{r['train_minutes']:>6.1f}"
        )
    superseded = {}
    first_teacher = work / "r18_detect_nodropout" / "metrics.json"  # the teacher recipe before dropout
    if first_teacher.is_file():
        result = json.loads(first_teacher.read_text())["verification"]["lfw_folds_8_10"]
        superseded["r18_detect without dropout/augmentation"] = {k: result[k] for k in ("accuracy", "accuracy_std")}
    record = {"split": split, "prepare": reports, "rows": rows, "superseded": superseded}
    write_result(args.output, {**record, "wall_minutes": round((time.perf_counter() - start) / 60, 1)})


if __name__ == "__main__":
    main()
