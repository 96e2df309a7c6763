"""``facelearn eval``: verification (k-fold), IJB templates and 1:N. Parse, then call the library."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..config import ConfigError
from ..io import write_text_atomic
from .eval_protocols import add_recognition_arguments, run_identification, run_ijb
from .options import DETECTOR_HELP, progress_bar
from .train import print_summary

log = logging.getLogger(__name__)


def architecture(args: argparse.Namespace) -> str | None:
    """``--architecture``, or the deprecated ``--model`` (in every other command ``--model`` is the model file)."""
    if args.deprecated_model is None:
        return args.architecture
    if args.architecture and args.architecture != args.deprecated_model:
        raise ConfigError(f"--model {args.deprecated_model} and --architecture {args.architecture} disagree")
    log.warning("facelearn eval --model is deprecated: name the architecture with --architecture, as everywhere")
    return args.deprecated_model


def counted(pairs, bar):
    """The pair set with each image read moving the bar on."""
    from dataclasses import replace

    def load(index: int):
        image = pairs.load(index)
        bar.update(1)
        return image

    return replace(pairs, load=load)


def command_eval(args: argparse.Namespace) -> None:
    from ..align.prepare import PrepareOptions
    from ..eval.embed import default_device, evaluate_pair_set
    from ..eval.sets import evaluation_sets
    from ..models.checkpoint import backbone_from_checkpoint

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if bool(args.gallery) != bool(args.probes):
        raise ConfigError("--gallery and --probes go together (and --distractors needs both)")
    if args.distractors and not args.gallery:
        raise ConfigError("--distractors needs --gallery and --probes")
    pair_sets_asked = bool(args.bin or args.pairs or args.synthetic is not None)
    if not (pair_sets_asked or args.ijb or args.gallery):
        raise ConfigError("nothing to evaluate: give --bin, --pairs/--root, --synthetic, --ijb or --gallery/--probes")
    backbone, image_size = backbone_from_checkpoint(args.checkpoint, architecture(args), args.embedding_size)
    sets = []
    if pair_sets_asked:
        align = None if args.no_detect else PrepareOptions(detector=args.detector, weights=args.weights)
        sets = evaluation_sets(
            image_size, args.bin, args.pairs, args.root, args.synthetic, args.folds, args.hard_split, args.stratify,
            align,
        )  # fmt: skip
    device = default_device()
    backbone.to(device)
    results = {}
    for pairs in sets:
        with progress_bar(2 * pairs.num_pairs, pairs.name) as bar:
            result = evaluate_pair_set(
                backbone, counted(pairs, bar), args.output, batch_size=args.batch_size, flip=not args.no_flip,
                device=device,
            )  # fmt: skip
        results[pairs.name] = result.to_dict()
    if results:
        write_text_atomic(Path(args.output) / "metrics.json", json.dumps(results, indent=2))
        written = f"metrics.json, score histograms and ROC plots in {args.output}/"
        print_summary({"step": None, "skipped_images": 0, "verification": results}, written)
    if args.ijb:
        run_ijb(args, backbone, image_size, device)
    if args.gallery:
        run_identification(args, backbone, image_size, device)


def add_commands(commands) -> None:
    evaluate = commands.add_parser("eval", help="verification (10-fold, IJB templates) and identification (1:N)")
    evaluate.add_argument("checkpoint", help="a facelearn checkpoint, or a plain state_dict (arcface_torch model.pt)")
    evaluate.add_argument(
        "--architecture",
        help="architecture of a plain state_dict: a facelearn backbone (iresnet50) or an arcface_torch name (r50, "
        "mbf); default: read from its keys",
    )
    evaluate.add_argument("--model", dest="deprecated_model", help="deprecated: --architecture")
    evaluate.add_argument(
        "--embedding-size", type=int, help="of a plain state_dict whose final layer does not say (default 512)"
    )
    evaluate.add_argument("--bin", nargs="+", help="insightface .bin verification files")
    evaluate.add_argument("--pairs", help="LFW-style pairs.txt")
    evaluate.add_argument("--root", help="image root for --pairs: aligned faces, or whole photos (detected)")
    evaluate.add_argument("--detector", default="retinaface", help=DETECTOR_HELP + " (for whole photos under --root)")
    evaluate.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    evaluate.add_argument(
        "--no-detect", action="store_true", help="resize the images under --root as they are, even whole photos"
    )
    evaluate.add_argument("--synthetic", type=int, metavar="N", help="N pairs of unseen synthetic identities")
    evaluate.add_argument("--folds", type=int, help="folds of the protocol (default 10, contiguous)")
    evaluate.add_argument(
        "--stratify",
        action="store_true",
        help="stratified folds: each gets its share of same and of different pairs, in file order (LFW's: unchanged)",
    )
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
