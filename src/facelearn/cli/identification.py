"""``facelearn identify`` (at an FMR, or at an FPIR for the gallery's size) and ``facelearn calibrate-gallery``."""

from __future__ import annotations

import argparse

from .answer_text import print_gallery_calibration, print_identified
from .options import progress_bar
from .recognition import add_model_options, answer_for, check_answered, open_gallery_recognizer, read_photos


def command_identify(args: argparse.Namespace) -> None:
    """Each photo answered on its own (one model load), or all of them as one person (``--as-one-person``)."""
    from ..deploy.gallery_files import gallery_errors
    from ..deploy.photo_folders import check_photo

    photos = [check_photo(photo) for photo in args.photos]  # before the model loads: a bad path fails at once
    fmr = None if args.fpir is not None else args.fmr
    options = {"k": args.k, "fmr": fmr, "aligned": args.aligned, "fpir": args.fpir, "fusion": args.fusion}
    with gallery_errors(args.gallery):
        recognizer = open_gallery_recognizer(args, fmr)
        recognizer.identification_rule(fmr, args.fpir, args.fusion)  # no calibration: said before any photo is embedded
        if args.as_one_person:
            answer = recognizer.identify(read_photos(args.photos), as_one_person=True, **options)
            return print_identified(args, f"{len(photos)} photos as one person", {"answer": answer})
        unanswered = 0
        with progress_bar(len(photos), "identify") as bar:
            for photo in photos:
                answer = answer_for(photo, recognizer.identify, **options)
                print_identified(args, photo, answer)
                unanswered += "error" in answer
                bar.update(1)
    check_answered(unanswered, len(photos))


def command_calibrate_gallery(args: argparse.Namespace) -> None:
    from ..deploy.gallery_files import check_gallery_writable, gallery_errors
    from ..deploy.open_set import FPIRS
    from ..eval.recognition import identity_images

    strangers = identity_images(args.strangers, "strangers")
    check_gallery_writable(args.gallery)
    with gallery_errors(args.gallery):
        recognizer = open_gallery_recognizer(args)
        calibration = recognizer.calibrate_identification(
            strangers, args.fpir or FPIRS, args.fusion, args.aligned, source=f"every photo in {args.strangers}"
        )
    print_gallery_calibration(args, calibration)


def add_commands(commands) -> None:
    from ..deploy.fusion import DEFAULT_FUSION, FUSIONS
    from .options import add_quality_options

    identify = commands.add_parser("identify", help="who is in these photos (open set: unknown below the threshold)")
    identify.add_argument("gallery")
    identify.add_argument("photos", nargs="+", metavar="photo", help="one or more photos (one model load)")
    identify.add_argument("-k", type=int, default=5, help="candidates per face (default 5)")
    identify.add_argument(
        "--fpir",
        type=float,
        help="decide at this false-positive identification rate, from the gallery's calibration for its size "
        "(facelearn calibrate-gallery) instead of --fmr",
    )
    identify.add_argument("--fusion", choices=FUSIONS, help="best face or template (default: the calibration's)")
    identify.add_argument("--as-one-person", action="store_true", help="the photos are one person: one fused probe")
    add_model_options(identify)
    add_quality_options(identify, gate=False)
    identify.set_defaults(func=command_identify)

    calibrate = commands.add_parser(
        "calibrate-gallery", help="the gallery's identification thresholds at FPIR 1e-2/1e-3 for its size"
    )
    calibrate.add_argument("gallery")
    calibrate.add_argument(
        "--strangers",
        required=True,
        metavar="DIR",
        help="photos of people who are NOT enrolled, in identity folders: one non-mated search each",
    )
    calibrate.add_argument(
        "--fpir", type=float, nargs="+", help="rates in (0, 1), each needing 10/FPIR searches (default 1e-2 1e-3)"
    )
    calibrate.add_argument("--fusion", choices=FUSIONS, default=DEFAULT_FUSION, help=f"default {DEFAULT_FUSION}")
    add_model_options(calibrate, fmr=False)
    calibrate.set_defaults(func=command_calibrate_gallery)
