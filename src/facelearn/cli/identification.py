"""``facelearn identify`` (at an FMR, or at an FPIR for the gallery's size) and ``facelearn calibrate-gallery``."""

from __future__ import annotations

import argparse
import json


def open_gallery_recognizer(args: argparse.Namespace, fmr: float | None = None):
    """The model, and the gallery opened for it (never creating one: an empty gallery answers unknown to all).
    ``fmr``: a model without a 1:1 calibration says so first."""
    from ..deploy.gallery_files import check_gallery_exists
    from .deploy import open_recognizer

    recognizer = open_recognizer(args, gallery=False)
    if fmr is not None:
        recognizer.threshold(fmr)
    check_gallery_exists(args.gallery)
    recognizer.open_gallery(args.gallery, args.store, args.index)
    return recognizer


def command_identify(args: argparse.Namespace) -> None:
    """Each photo answered on its own (one model load), or all of them as one person (``--as-one-person``)."""
    from ..deploy.gallery_files import gallery_errors
    from ..deploy.photo_folders import check_photo
    from .deploy import answer_for, check_answered, progress_bar, read_photos

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


def print_identified(args: argparse.Namespace, photo, result: dict) -> None:
    from .deploy import decided_at, describe_box

    if args.json:
        body = {"faces": result["answer"]} if "answer" in result else {"error": result["error"]}
        print(json.dumps({"photo": str(photo), **body}))
        return
    if "error" in result:
        print(f"{photo}: {result['error']}")
        return
    print(f"{photo}:")
    for number, face in enumerate(result["answer"], start=1):
        decision = face["subject"] if face["subject"] is not None else "unknown"
        rate = f"threshold {face['threshold']:.4f} at FPIR {face['fpir']:g}" if face["fpir"] else decided_at(face)
        size = f"gallery of {face['gallery_size']:,}" + (
            f", calibrated for {face['calibrated_gallery_size']:,}" if face["calibrated_gallery_size"] else ""
        )
        where = describe_box(face) if "images" not in face else f"{face['images']} faces fused"
        print(f"  face {number}: {decision}  {where}; {rate}, {face['fusion']} scores, {size}")
        if face["warning"]:
            print(f"    warning: {face['warning']}")
        for candidate in face["candidates"]:
            print(f"    {candidate['subject']:<30} {candidate['score']:.4f}")


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
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=2))
        return
    print(
        f"facelearn: calibrated {args.gallery} ({calibration.gallery_size:,} subjects, {calibration.fusion} scores) on "
        f"{calibration.num_searches:,} non-mated searches of {calibration.num_people:,} people (stored in the gallery)"
    )
    for point in calibration.points:
        low, high = point["fpir_interval"]
        print(
            f"  FPIR {point['fpir']:g}: threshold {point['threshold']:.4f}  realised FPIR {point['realised_fpir']:.2e} "
            f"(95 % {low:.1e}–{high:.1e})"
        )


def add_commands(commands, add_model_options) -> None:
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
