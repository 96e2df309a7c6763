"""The ``facelearn`` command: parse → config → library call. No logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from importlib import resources
from pathlib import Path

from .config import ConfigError, load_config
from .deploy.commands import add_commands as add_deploy_commands
from .errors import FacelearnError, describe_os_error
from .eval.commands import add_recognition_arguments
from .io import write_text_atomic
from .serve.commands import add_commands as add_serve_commands


def recipe_path(name: str) -> Path:
    """A recipe shipped with the package (``configs/<name>.yaml``)."""
    return Path(str(resources.files("facelearn") / "configs" / f"{name}.yaml"))


def run_training(config_path: Path, overrides: list[str]) -> dict:
    from .train.build import build_trainer

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
    from .distributed import rank

    if rank() == 0:
        from .deploy.demo import print_recognition, recognition_demo

        print_recognition(recognition_demo(config.train.output_dir, config.data.image_size))


def print_summary(summary: dict, written: str, seconds: float | None = None) -> None:
    from .distributed import rank

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
            f"threshold cos>{result['threshold_cosine']:.3f}"
        )
    print(f"  {written}")


def command_eval(args: argparse.Namespace) -> None:
    from .eval.embed import default_device, evaluate_pair_set
    from .eval.sets import evaluation_sets
    from .train.checkpoint import backbone_from_checkpoint

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if bool(args.gallery) != bool(args.probes):
        raise ConfigError("--gallery and --probes go together (and --distractors needs both)")
    if args.distractors and not args.gallery:
        raise ConfigError("--distractors needs --gallery and --probes")
    pair_sets_asked = bool(args.bin or args.pairs or args.synthetic is not None)
    if not (pair_sets_asked or args.ijb or args.gallery):
        raise ConfigError("nothing to evaluate: give --bin, --pairs/--root, --synthetic, --ijb or --gallery/--probes")
    backbone, image_size = backbone_from_checkpoint(args.checkpoint, args.model, args.embedding_size)
    sets = []
    if pair_sets_asked:
        sets = evaluation_sets(image_size, args.bin, args.pairs, args.root, args.synthetic, args.folds, args.hard_split)
    device = default_device()
    backbone.to(device)
    results = {}
    for pairs in sets:
        result = evaluate_pair_set(
            backbone, pairs, args.output, batch_size=args.batch_size, flip=not args.no_flip, device=device
        )
        results[pairs.name] = result.to_dict()
    if results:
        write_text_atomic(Path(args.output) / "metrics.json", json.dumps(results, indent=2))
        written = f"metrics.json, score histograms and ROC plots in {args.output}/"
        print_summary({"step": None, "skipped_images": 0, "verification": results}, written)
    if args.ijb:
        from .eval.commands import run_ijb

        run_ijb(args, backbone, image_size, device)
    if args.gallery:
        from .eval.commands import run_identification

        run_identification(args, backbone, image_size, device)


def command_teacher_embed(args: argparse.Namespace) -> None:
    from .train.teachers import teacher_embed

    result = teacher_embed(args.teacher, args.photos, args.output, args.workers, args.detector, args.weights)
    print(
        f"facelearn: wrote {args.output}: {len(result.keys):,} embeddings ({result.embedding_size}-d) from "
        f"{result.meta['teacher']}; no face in {len(result.missing):,} photos"
    )


def command_prepare(args: argparse.Namespace) -> None:
    from .align.prepare import PrepareOptions, prepare_dataset, prepare_pairs_bin

    options = PrepareOptions(
        crop=args.crop,
        detector=args.detector,
        weights=args.weights,
        size=args.size,
        choose=args.choose,
        min_face_size=args.min_face_size,
        max_size=args.max_size,
        center_fraction=args.center_fraction,
        no_face=args.no_face,
    )
    if args.pairs:
        report = prepare_pairs_bin(args.pairs, args.source, args.output, options, args.workers)
        print(f"facelearn: wrote {args.output}: {report['pairs']} pairs over {report['images']} images")
        if report["center_crop_fallbacks"]:
            print(f"  no face found in {len(report['center_crop_fallbacks'])} images: centre crop used")
        return
    report = prepare_dataset(args.source, args.output, options, args.workers, args.recordio)
    print(
        f"facelearn: {report['images_read']} images read, {report['faces_found']} faces aligned, "
        f"{report['no_face']} without a face, {report['multi_face']} with several faces, "
        f"{len(report['failures'])} failures -> {args.output} (prepare_report.json)"
    )


def command_clean(args: argparse.Namespace) -> None:
    from .clean import find_noisy_images

    found = find_noisy_images(args.checkpoint, args.root, args.threshold)
    Path(args.output).write_text("".join(f"{path}\n" for path in found["outliers"]))
    print(
        f"facelearn: {len(found['outliers'])} of {found['images']} images lie more than {args.threshold}° from "
        f"their class's dominant sub-centre; listed in {args.output} (train with data.exclude={args.output})"
    )
    for path in found["unreadable"]:
        print(f"  unreadable, not judged: {path}")


def command_weights(args: argparse.Namespace) -> None:
    from .align.weights import download_weights

    for path in download_weights(args.detector, args.base_url, args.folder):
        print(f"facelearn: {path} (sha256 verified)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facelearn", description="Train, evaluate and deploy face recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step to the console")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small model on synthetic faces and verify unseen ones")
    demo.add_argument("--output", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=100")
    demo.set_defaults(func=command_demo)

    train = commands.add_parser("train", help="train from a YAML recipe")
    train.add_argument("config", help="recipe, e.g. configs/demo.yaml")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. head.margin=0.4 optim.lr=0.05")
    train.set_defaults(func=command_train)

    evaluate = commands.add_parser("eval", help="verification (10-fold, IJB templates) and identification (1:N)")
    evaluate.add_argument("checkpoint", help="a facelearn checkpoint, or an arcface_torch model.pt with --model")
    evaluate.add_argument("--model", help="architecture of a plain state_dict (e.g. iresnet50)")
    evaluate.add_argument("--embedding-size", type=int, default=512)
    evaluate.add_argument("--bin", nargs="+", help="insightface .bin verification files")
    evaluate.add_argument("--pairs", help="LFW-style pairs.txt")
    evaluate.add_argument("--root", help="image root for --pairs")
    evaluate.add_argument("--synthetic", type=int, metavar="N", help="N pairs of unseen synthetic identities")
    evaluate.add_argument("--folds", type=int, help="contiguous folds of the protocol (default 10)")
    evaluate.add_argument(
        "--hard-split",
        type=int,
        metavar="FACTOR",
        help="also score every set hard-hard and easy-hard, hard = down-sampled FACTOR times (DDL's evaluation)",
    )
    add_recognition_arguments(evaluate)
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--no-flip", action="store_true", help="embed without flip test-time augmentation")
    evaluate.add_argument("--output", default="eval", help="folder for metrics.json and plots")
    evaluate.set_defaults(func=command_eval)

    prepare = commands.add_parser("prepare", help="detect and align faces: identity folders, or pairs into a .bin")
    prepare.add_argument("source", help="folder of identity folders (<source>/<identity>/<image>)")
    prepare.add_argument("output", help="output folder, or the .bin file with --pairs")
    prepare.add_argument("--pairs", help="LFW-style pairs.txt over <source>: write an insightface .bin")
    prepare.add_argument("--crop", default="detect", choices=["detect", "center", "resize"])
    prepare.add_argument("--detector", default="mtcnn", choices=["mtcnn", "retinaface"])
    prepare.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    prepare.add_argument("--size", type=int, default=112, help="aligned face side in pixels (default 112)")
    prepare.add_argument("--choose", default="largest", choices=["largest", "central"], help="face kept of several")
    prepare.add_argument("--min-face-size", type=int, default=20)
    prepare.add_argument("--max-size", type=int, default=1600, help="detect on a downscaled copy above this")
    prepare.add_argument("--center-fraction", type=float, default=0.6, help="centre crop side / shorter side")
    prepare.add_argument("--no-face", default="skip", choices=["skip", "center"], help="image without a face")
    prepare.add_argument("--workers", type=int, default=2, help="processes (0 = in this process)")
    prepare.add_argument("--recordio", action="store_true", help="also pack train.rec/train.idx")
    prepare.set_defaults(func=command_prepare)

    weights = commands.add_parser("weights", help="download detector weights, verifying their sha256")
    weights.add_argument("detector", choices=["mtcnn", "retinaface"])
    weights.add_argument("--base-url", help="folder URL holding the files (http(s):// or file://)")
    weights.add_argument("--folder", help="destination (default: $FACELEARN_HOME/weights/<detector>)")
    weights.set_defaults(func=command_weights)

    teacher = commands.add_parser("teacher-embed", help="a black-box teacher's embedding of every photo, for distill")
    teacher.add_argument("photos", help="the original photos, <photos>/<identity>/<image>")
    teacher.add_argument("output", help="the .npz to write (distill.teacher_embeddings)")
    teacher.add_argument("--teacher", required=True, help="dlib, onnx:PATH or checkpoint:PATH")
    teacher.add_argument("--workers", type=int, default=2, help="processes")
    teacher.add_argument("--detector", default="retinaface", choices=["retinaface", "mtcnn"], help="for model teachers")
    teacher.add_argument("--weights", help="the detector's weights folder (model teachers)")
    teacher.set_defaults(func=command_teacher_embed)

    clean = commands.add_parser("clean", help="Sub-center ArcFace: list training images far from their class")
    clean.add_argument("checkpoint", help="a checkpoint trained with head.name=subcenter_arcface")
    clean.add_argument("--root", required=True, help="the identity folders it was trained on")
    clean.add_argument("--output", default="outliers.txt", help="where to list them (for data.exclude)")
    clean.add_argument("--threshold", type=float, default=75.0, help="degrees from the dominant sub-centre")
    clean.set_defaults(func=command_clean)
    add_deploy_commands(commands)
    add_serve_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if args.verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    from .train.engine import TrainingDiverged, TrainingStopped

    try:
        args.func(args)
    except TrainingStopped as stopped:
        print(f"facelearn: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except TrainingDiverged as error:
        print(f"facelearn: training stopped: {error}", file=sys.stderr)
        return 1
    except FacelearnError as error:
        print(f"facelearn: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `facelearn ... | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 0
    except OSError as error:  # a read-only folder, a full disk, a file where a folder should be
        print(f"facelearn: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facelearn: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
