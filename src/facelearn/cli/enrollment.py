"""``facelearn enroll``: a subject's photos, a tree of subject folders, or a bulk embed output, into a gallery.
Every photo is reported: enrolled (with its quality), no face, refused by the enroll gate, or unreadable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .answer_text import print_enrolled, quality_text
from .options import add_quality_options, progress_bar
from .recognition import add_model_options, audit, open_recognizer, read_photos


def command_enroll(args: argparse.Namespace) -> None:
    from ..deploy.gallery_files import check_gallery_writable, gallery_errors
    from ..deploy.photo_folders import one_subject, subject_tree
    from ..deploy.subject_ids import subject_id

    if args.from_embeddings:
        return enroll_from_embeddings(args)
    if not args.model or args.subject is None:
        raise ConfigError(
            "facelearn enroll needs GALLERY SUBJECT PHOTOS|FOLDER --model M, or GALLERY TREE --model M (one subject "
            "per subfolder of TREE), or GALLERY --from-embeddings OUT"
        )
    if args.photos:
        subjects = one_subject(subject_id(args.subject), args.photos)
    elif args.subject and Path(args.subject).is_dir():
        subjects = subject_tree(args.subject)
    else:
        raise ConfigError(f"no photos for {args.subject!r}: facelearn enroll GALLERY SUBJECT PHOTOS (or FOLDER)")
    # photos named one by one are all read before the model loads: a bad one fails at once
    given = None if subjects.from_folders else read_photos(next(iter(subjects.photos.values())))
    check_gallery_writable(args.gallery)
    recognizer = open_recognizer(args)
    enrolled = {s["subject"] for s in recognizer.subjects()}
    results = []
    total = sum(len(photos) for photos in subjects.photos.values())
    with gallery_errors(args.gallery), progress_bar(total, "enroll") as bar:
        for name, photos in subjects.photos.items():
            result = enroll_subject(args, recognizer, name, photos, given, enrolled, bar, subjects.from_folders)
            results.append(result)
    print_enrolled(args, results, subjects)


def enroll_subject(args, recognizer, name: str, photos: list[Path], given, enrolled: set, bar, lenient: bool) -> dict:
    """One subject's photos, each reported: enrolled, no face, or unreadable (``lenient``: photos found in
    folders, reported and passed over; else an error). A subject enrolled already is passed over (a tree:
    rerun-safe) or an error (one subject), unless ``--append``."""
    from ..data.images import ImageError, PixelBudget, read_image
    from ..deploy.gallery import DuplicateSubject
    from ..deploy.subject_ids import subject_id

    result = {"subject": name, "faces": 0, "no_face": [], "refused": [], "enrolled": [], "unreadable": []}
    try:
        subject = result["subject"] = subject_id(name)
        if subject in enrolled and not args.append:
            raise DuplicateSubject(f"subject {subject!r} is already enrolled (--append adds faces)")
    except (ConfigError, DataError, DuplicateSubject) as error:
        if not lenient:
            raise
        bar.update(len(photos))
        return {**result, "skipped": str(error)}
    budget, embeddings, qualities, sources, photo_report = PixelBudget(), [], [], [], []
    for i, path in enumerate(photos):
        try:
            image = given[i] if given is not None else read_image(path, budget=budget)
        except ImageError as error:  # only photos found in folders get here: reported, passed over
            reason = str(error).removeprefix(f"{path}: ")
            result["unreadable"].append({"photo": str(path), "reason": reason})
            photo_report.append((path, f"unreadable, not enrolled: {reason}"))
            bar.update(1)
            continue
        (embedding,), (quality,) = recognizer.embed_with_quality([image], aligned=args.aligned)
        _, refused = recognizer.apply_gate([quality])
        if quality is None:
            result["no_face"].append(str(path))
            photo_report.append((path, "no face found, not enrolled"))
        elif refused:  # below the enroll gate (--min-quality, --min-eye-distance)
            reasons, score = refused[0]["reasons"], refused[0]["quality"]
            result["refused"].append({"photo": str(path), "reasons": reasons, "quality": score})
            photo_report.append((path, f"refused: {', '.join(reasons)} (quality {quality_text(score)})"))
        else:
            embeddings.append(embedding)
            qualities.append(quality.quality)
            sources.append(Path(path).name)  # the file's name, listed by facelearn gallery list GALLERY SUBJECT
            result["enrolled"].append({"photo": str(path), "quality": quality.quality})
            photo_report.append((path, f"enrolled (quality {quality_text(quality.quality)})"))
        bar.update(1)
    result["photo_report"] = photo_report
    if not embeddings:
        what = "no face above the enroll gate" if result["refused"] else "no face found"
        message = f"{what} in any of the {len(photos)} photos of {subject!r}: nothing enrolled"
        if result["refused"]:
            message += "; " + "; ".join(f"{r['photo']}: {', '.join(r['reasons'])}" for r in result["refused"])
        if not lenient:
            raise DataError(message)
        return {**result, "skipped": message}
    result["faces"] = recognizer.add(subject, np.stack(embeddings), qualities, append=args.append, sources=sources)
    audit(args, "add" if args.append else "enroll", subject, len(embeddings))
    return result


def enroll_from_embeddings(args: argparse.Namespace) -> None:
    from ..bulk.enroll import enroll_from_embeddings
    from ..deploy.recognizer import Recognizer

    if args.subject or args.photos:
        raise ConfigError("--from-embeddings takes the subjects and faces from the Parquet: give no SUBJECT or PHOTOS")
    model_id = None
    if args.model:  # the Parquet's embeddings must be this model's
        model_id = Recognizer.load(args.model, args.architecture, detector=None, backend="torch").model_id
    counts = enroll_from_embeddings(
        args.from_embeddings, args.gallery, args.store, model_id, args.subject_column, args.faces, args.batch
    )
    audit(args, "enroll", f"{counts['subjects']} subjects of {args.from_embeddings}", counts["faces_enrolled"])
    if args.json:
        print(json.dumps(counts))
        return
    print(
        f"facelearn: enrolled {counts['faces_enrolled']:,} faces from {args.from_embeddings} into {args.gallery} "
        f"({counts['subjects']:,} subjects, model {counts['model_id']}); {counts['already_enrolled']:,} were enrolled "
        f"already, {counts['without_subject']:,} have no subject"
    )


def add_commands(commands) -> None:
    enroll = commands.add_parser(
        "enroll", help="enroll photos into a gallery: a subject's photos or folder, or a tree of subject folders"
    )
    enroll.add_argument("gallery", help="the gallery file (SQLite), created if missing")
    enroll.add_argument("subject", nargs="?", help="the subject; or a folder with one subfolder per subject")
    enroll.add_argument("photos", nargs="*", help="the subject's photos, or a folder of them")
    enroll.add_argument("--append", action="store_true", help="add faces to an enrolled subject")
    enroll.add_argument("--audit-log", help="the audit log of gallery changes (default: <gallery>.audit.log)")
    enroll.add_argument(
        "--from-embeddings", metavar="OUT", help="every subject of a facelearn embed output (rerun-safe)"
    )
    enroll.add_argument("--subject-column", default="subject", help="with --from-embeddings (default: subject)")
    enroll.add_argument("--faces", default="largest", choices=["largest", "all"], help="with --from-embeddings")
    enroll.add_argument("--batch", type=int, default=10_000, help="with --from-embeddings: faces per write")
    add_model_options(enroll, fmr=False, model_required=False)
    add_quality_options(enroll)
    enroll.set_defaults(func=command_enroll)
