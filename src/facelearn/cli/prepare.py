"""``facelearn prepare`` and ``facelearn weights``: detect and align photos, fetch detector weights."""

from __future__ import annotations

import argparse

from .bulk import add_engine_options, engine_options
from .options import DETECTOR_HELP, options_from


def command_prepare(args: argparse.Namespace) -> None:
    from ..align.prepare import PrepareOptions
    from ..bulk.prepare import prepare_dataset, prepare_pairs_bin

    options = options_from(PrepareOptions, args)
    engine = engine_options(args)
    if args.pairs:
        report = prepare_pairs_bin(args.pairs, args.source, args.output, options, engine=engine)
        print(f"facelearn: wrote {args.output}: {report['pairs']} pairs over {report['images']} images")
        if report["center_crop_fallbacks"]:
            print(f"  no face found in {len(report['center_crop_fallbacks'])} images: centre crop used")
        return
    report = prepare_dataset(args.source, args.output, options, recordio=args.recordio, engine=engine)
    print(
        f"facelearn: {report['images_read']} images read, {report['faces_found']} faces aligned, "
        f"{report['no_face']} without a face, {report['multi_face']} with several faces, "
        f"{len(report['failures'])} failures -> {args.output} (prepare_report.json)"
    )


def command_weights(args: argparse.Namespace) -> None:
    from ..align.weights import download_weights

    for path in download_weights(args.detector, args.base_url, args.folder):
        print(f"facelearn: {path} (sha256 verified)")


def add_commands(commands) -> None:
    prepare = commands.add_parser("prepare", help="detect and align faces: identity folders, or pairs into a .bin")
    prepare.add_argument(
        "source", help="folder of identity folders (<source>/<identity>/<image>), or a flat folder of photos"
    )
    prepare.add_argument("output", help="output folder, or the .bin file with --pairs")
    prepare.add_argument("--pairs", help="LFW-style pairs.txt over <source>: write an insightface .bin")
    prepare.add_argument("--crop", default="detect", choices=["detect", "center", "resize"])
    prepare.add_argument("--detector", default="mtcnn", help=DETECTOR_HELP)
    prepare.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    prepare.add_argument("--size", type=int, default=112, help="aligned face side in pixels (default 112)")
    prepare.add_argument("--choose", default="largest", choices=["largest", "central"], help="face kept of several")
    prepare.add_argument("--min-face-size", type=int, default=20)
    prepare.add_argument("--max-size", type=int, default=1600, help="detect on a downscaled copy above this")
    prepare.add_argument("--center-fraction", type=float, default=0.6, help="centre crop side / shorter side")
    prepare.add_argument("--no-face", default="skip", choices=["skip", "center"], help="image without a face")
    prepare.add_argument("--recordio", action="store_true", help="also pack train.rec/train.idx")
    add_engine_options(prepare)
    prepare.set_defaults(func=command_prepare)

    weights = commands.add_parser("weights", help="download detector weights, verifying their sha256")
    weights.add_argument("detector", help=DETECTOR_HELP)
    weights.add_argument("--base-url", help="folder URL holding the files (http(s):// or file://)")
    weights.add_argument("--folder", help="destination (default: $FACELEARN_HOME/weights/<detector>)")
    weights.set_defaults(func=command_weights)
