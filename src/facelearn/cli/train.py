"""``facelearn demo``, ``train``, ``teacher-embed`` and ``clean``: parse, then call the library."""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

from ..config import load_config
from .bulk import add_engine_options, engine_options
from .options import DETECTOR_HELP


def recipe_path(name: str) -> Path:
    """A recipe shipped with the package (``configs/<name>.yaml``)."""
    return Path(str(resources.files("facelearn") / "configs" / f"{name}.yaml"))


def run_training(config_path: Path, overrides: list[str]) -> tuple[dict, object]:
    """(the run's summary, the resolved config)."""
    from ..train.build import build_trainer

    config = load_config(config_path, overrides)
    return build_trainer(config).fit(), config


def command_train(args: argparse.Namespace) -> None:
    summary, config = run_training(Path(args.config), args.overrides)
    print_summary(summary, run_directory_line(config.train.output_dir))


def run_directory_line(run_dir: str) -> str:
    return f"run directory: {run_dir} (config.yaml, checkpoints, metrics.json, eval/*.png, tensorboard/)"


def command_demo(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    overrides = [f"train.output_dir={args.output}", *args.overrides]
    summary, config = run_training(recipe_path("demo"), overrides)
    print_summary(summary, run_directory_line(config.train.output_dir), time.perf_counter() - start)
    from ..distributed import rank

    if rank() == 0:
        from ..deploy.demo import print_recognition, recognition_demo

        print_recognition(recognition_demo(config.train.output_dir, config.data.image_size))


def print_summary(summary: dict, written: str, seconds: float | None = None) -> None:
    from ..distributed import rank

    if rank() != 0:  # under torchrun the first process speaks for all
        return
    if summary["step"] is not None:
        print(f"\nfacelearn: trained {summary['step']} steps" + (f" in {seconds / 60:.1f} min" if seconds else ""))
    if summary["skipped_images"]:
        print(f"  skipped {summary['skipped_images']} unreadable images (see the log)")
    for name, result in summary["verification"].items():
        tars = ", ".join(f"TAR@FAR={far} {100 * tar:.1f}%" for far, tar in result["tar_at_far"].items())
        print(
            f"  {name:<24} accuracy {100 * result['accuracy']:.2f} ± {100 * result['accuracy_std']:.2f}%  "
            + (f"AUC {result['auc']:.4f}  EER {100 * result['eer']:.2f}%  " if result["auc"] is not None else "")
            + f"{tars}  "
            f"threshold cos>{result['threshold_cosine']:.3f}  "
            f"{len(result['fold_accuracies'])} {result['fold_split']} folds"
        )
    print(f"  {written}")


def command_teacher_embed(args: argparse.Namespace) -> None:
    from ..bulk.teacher import teacher_embed

    engine = engine_options(args)
    result = teacher_embed(
        args.teacher, args.photos, args.output, detector=args.detector, weights=args.weights, engine=engine
    )
    print(
        f"facelearn: wrote {args.output}: {len(result.keys):,} embeddings ({result.embedding_size}-d) from "
        f"{result.meta['teacher']}; no face in {len(result.missing):,} photos"
    )


def command_clean(args: argparse.Namespace) -> None:
    from ..eval.clean import find_noisy_images

    found = find_noisy_images(args.checkpoint, args.root, args.threshold)
    Path(args.output).write_text("".join(f"{path}\n" for path in found["outliers"]))
    print(
        f"facelearn: {len(found['outliers'])} of {found['images']} images lie more than {args.threshold}° from "
        f"their class's dominant sub-centre; listed in {args.output} (train with data.exclude={args.output})"
    )
    for path in found["unreadable"]:
        print(f"  unreadable, not judged: {path}")


def add_commands(commands) -> None:
    demo = commands.add_parser("demo", help="train a small model on synthetic faces and verify unseen ones")
    demo.add_argument("--output", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=100")
    demo.set_defaults(func=command_demo)

    train = commands.add_parser("train", help="train from a YAML recipe")
    train.add_argument("config", help="recipe, e.g. configs/demo.yaml")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. head.margin=0.4 optim.lr=0.05")
    train.set_defaults(func=command_train)

    teacher = commands.add_parser("teacher-embed", help="a black-box teacher's embedding of every photo, for distill")
    teacher.add_argument("photos", help="the original photos, <photos>/<identity>/<image>")
    teacher.add_argument("output", help="the .npz to write (distill.teacher_embeddings)")
    teacher.add_argument("--teacher", required=True, help="dlib, onnx:PATH or checkpoint:PATH")
    teacher.add_argument("--detector", default="retinaface", help="for model teachers: " + DETECTOR_HELP)
    teacher.add_argument("--weights", help="the detector's weights folder (model teachers)")
    add_engine_options(teacher, batch_size=8)
    teacher.set_defaults(func=command_teacher_embed)

    clean = commands.add_parser("clean", help="Sub-center ArcFace: list training images far from their class")
    clean.add_argument("checkpoint", help="a checkpoint trained with head.name=subcenter_arcface")
    clean.add_argument("--root", required=True, help="the identity folders it was trained on")
    clean.add_argument("--output", default="outliers.txt", help="where to list them (for data.exclude)")
    clean.add_argument("--threshold", type=float, default=75.0, help="degrees from the dominant sub-centre")
    clean.set_defaults(func=command_clean)
