"""The deployment commands: export, calibrate, verify, gallery; enroll (enrollment.py) and identify
(identification.py) are registered here too. Parse → library call → print."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..deploy.gallery import STORES
from ..errors import ConfigError, DataError
from . import enrollment, identification
from .answer_text import print_calibration, print_verified, quality_text
from .options import DETECTOR_HELP, add_quality_options, progress_bar
from .recognition import (
    ARCHITECTURE_HELP,
    MODEL_HELP,
    add_model_options,
    answer_for,
    audit,
    check_answered,
    open_recognizer,
    read_photos,
)


def aligned_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    from ..data.images import IMAGE_EXTENSIONS

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return paths[:limit] if limit else paths


def parity_faces(args: argparse.Namespace, size: int) -> tuple[np.ndarray, str]:
    from ..data.images import fit_size, read_image
    from ..data.synthetic import UNSEEN_IDENTITY_OFFSET, SyntheticFaces

    if args.parity:
        paths = aligned_images(args.parity, args.parity_count)
        faces = np.stack([fit_size(read_image(p), size) for p in paths]) if paths else np.empty((0, size, size, 3))
        return faces, f"{len(paths)} faces of {args.parity}"
    synthetic = SyntheticFaces(1, 1, size, seed=7)
    faces = np.stack([synthetic.render(UNSEEN_IDENTITY_OFFSET + i, i) for i in range(64)])
    return faces, "64 synthetic faces (give --parity DIR of aligned faces to check on yours)"


def command_export(args: argparse.Namespace) -> None:
    from ..deploy.export import EmbeddingGraph, export_onnx, model_metadata, parity
    from ..deploy.loading import is_named_model
    from ..io import write_atomic
    from ..models.checkpoint import FORMAT, backbone_from_state, load_checkpoint

    if is_named_model(args.checkpoint):
        raise ConfigError(f"{args.checkpoint} is a named model that runs its own network: it has no ONNX export")
    if args.checkpoint.endswith(".onnx"):
        return export_imported_onnx(args)
    checkpoint = load_checkpoint(args.checkpoint)
    backbone, size = backbone_from_state(checkpoint, args.checkpoint, args.architecture)
    graph = EmbeddingGraph(backbone, flip=not args.no_flip)
    own = checkpoint if checkpoint.get("format") == FORMAT else None
    architecture = args.architecture or json.dumps(asdict(backbone.model_config))
    metadata = model_metadata(own, architecture, backbone, size, not args.no_flip)
    faces, where = parity_faces(args, size)
    output = Path(args.output)
    staging = output.with_name(f".{output.name}.unchecked")
    digest = export_onnx(graph, size, metadata, staging)
    report = parity(graph, staging, faces)
    if report["min_cosine"] < args.min_cosine:
        staging.unlink()
        Path(f"{staging}.sha256").unlink()
        raise DataError(
            f"the exported graph disagrees with PyTorch on {where}: minimum cosine "
            f"{report['min_cosine']:.6f} < {args.min_cosine}; nothing written"
        )
    write_atomic(output, lambda handle: handle.write(staging.read_bytes()))
    Path(f"{output}.sha256").write_text(f"{digest}  {output.name}\n")
    staging.unlink()
    Path(f"{staging}.sha256").unlink()
    print(f"facelearn: wrote {output} (sha256 {digest[:16]}…, {output}.sha256)")
    print(f"  parity with PyTorch on {where}: min cosine {report['min_cosine']:.7f}, mean {report['mean_cosine']:.7f}")
    if args.int8:
        report_int8(graph, output, faces, where)


def export_imported_onnx(args: argparse.Namespace) -> None:
    """An ONNX from elsewhere (insightface's convention) wrapped into facelearn's self-describing graph."""
    import hashlib

    from ..deploy.onnx_import import OnnxPreprocessing, import_parity, read_onnx, wrap_onnx
    from ..io import write_bytes_atomic

    if args.int8:
        raise ConfigError("--int8 quantises a facelearn checkpoint's export: export first, then quantise that file")
    data, source = read_onnx(args.checkpoint)
    preprocessing = OnnxPreprocessing(
        args.mean, args.std, args.channel_order, args.layout, args.input_size, flip=not args.no_flip
    )
    wrapped = wrap_onnx(data, source, preprocessing)
    import onnx

    size = int({p.key: p.value for p in onnx.load_from_string(wrapped).metadata_props}["facelearn.input_size"])
    faces, where = parity_faces(args, size)
    report = import_parity(data, wrapped, faces)
    if report["min_cosine"] < args.min_cosine:
        raise DataError(
            f"the wrapped graph disagrees with {source} on {where}: minimum cosine {report['min_cosine']:.6f} "
            f"< {args.min_cosine}; nothing written"
        )
    output = Path(args.output)
    digest = hashlib.sha256(wrapped).hexdigest()
    write_bytes_atomic(output, wrapped)
    Path(f"{output}.sha256").write_text(f"{digest}  {output.name}\n")
    print(f"facelearn: wrote {output} (sha256 {digest[:16]}…, {output}.sha256), {source} with its preprocessing inside")
    print(f"  parity with the original model on {where}: min cosine {report['min_cosine']:.7f}")


def report_int8(graph, output: Path, faces: np.ndarray, where: str) -> None:
    from ..deploy.backends import OnnxEmbedder, faces_per_second
    from ..deploy.export import parity, quantize_int8

    if len(faces) < 100:
        raise ConfigError("--int8 calibrates on real faces: give --parity DIR with at least 100 aligned faces")
    quantized = output.with_suffix(".int8.onnx")
    quantize_int8(output, quantized, faces)
    report = parity(graph, quantized, faces)
    speeds = [faces_per_second(OnnxEmbedder(path)) for path in (output, quantized)]
    print(f"facelearn: wrote {quantized} (int8, calibrated on {where})")
    print(
        f"  int8 against PyTorch fp32: min cosine {report['min_cosine']:.4f}, mean {report['mean_cosine']:.4f}; "
        f"{speeds[1]:.0f} faces/s against {speeds[0]:.0f} in fp32 (ONNX Runtime, batch 16)"
    )


def command_calibrate(args: argparse.Namespace) -> None:
    from ..deploy.calibration import calibrate, check_fmrs
    from ..deploy.recognizer import Recognizer
    from ..deploy.stored_calibration import pair_scores_for_calibration, store_calibration

    fmrs = None if args.fmr is None else check_fmrs(args.fmr)  # a rate outside (0, 1): refused before any work
    detector = args.detector if args.photos else None  # photos are detected and aligned; aligned faces are not
    recognizer = Recognizer.load(args.model, args.architecture, detector=detector, weights=args.weights)
    scores, issame, source = pair_scores_for_calibration(
        recognizer, args.pairs, args.root, args.bin, args.gallery, args.photos
    )
    calibration = calibrate(scores, issame, fmrs, source)  # an FMR the pairs cannot support: an error, nothing written
    if hasattr(recognizer.embedder, "store_calibration"):  # a named model: the user's own file, used from now on
        where = f"stored in {recognizer.embedder.store_calibration(calibration.to_dict())}"
    else:
        store_calibration(args.model, calibration)
        where = "stored in the model"
    print_calibration(args, calibration, source, where)


def command_verify(args: argparse.Namespace) -> None:
    """Each photo after the first against the first (the reference): one model load, the reference embedded once."""
    from ..deploy.photo_folders import check_photo
    from ..deploy.recognizer import NoFaceFound

    reference, *others = [check_photo(photo) for photo in args.photos]  # before the model loads
    if not others:
        raise ConfigError("facelearn verify needs two photos at least: REFERENCE PHOTO [PHOTO ...]")
    recognizer = open_recognizer(args, gallery=False)
    recognizer.threshold(args.fmr)  # a model without calibration says so first
    try:
        first, first_face = recognizer.largest_face(read_photos([reference])[0], aligned=args.aligned)
    except NoFaceFound:
        raise NoFaceFound(f"no face found in {reference}") from None

    def compare(image, aligned: bool) -> dict:
        embedding, face = recognizer.largest_face(image, aligned=aligned)
        return {**recognizer.compare(first, embedding, args.fmr), "faces": [first_face, face]}

    unanswered = 0
    with progress_bar(len(others), "verify") as bar:
        for photo in others:
            answer = answer_for(photo, compare, aligned=args.aligned)
            print_verified(args, reference, photo, answer)
            unanswered += "error" in answer
            bar.update(1)
    check_answered(unanswered, len(others))


def command_gallery(args: argparse.Namespace) -> None:
    from ..deploy.gallery import open_gallery
    from ..deploy.gallery_files import check_gallery_exists, check_gallery_writable, gallery_errors
    from ..deploy.subject_ids import lookup_id

    check_gallery_exists(args.gallery)
    if args.action in ("delete", "delete-face"):
        check_gallery_writable(args.gallery)
    with gallery_errors(args.gallery):
        gallery_command(args, open_gallery(args.gallery, None, None, args.store), lookup_id)


def gallery_command(args: argparse.Namespace, gallery, lookup_id) -> None:
    if args.action == "list" and args.subject:  # one subject's faces: where each came from, its quality
        subject = lookup_id(args.subject)
        faces = gallery.faces(subject)
        if args.json:
            print(json.dumps({"subject": subject, "faces": faces}))
            return
        print(f"{subject}: {len(faces)} faces")
        for face in faces:  # the id is what facelearn gallery delete-face takes
            quality = "-" if face["quality"] is None else f"{face['quality']:.3f}"
            print(f"  face {face['face_id']}\tquality {quality}\t{face['source'] or '(source not recorded)'}")
        return
    if args.action == "list":
        subjects = gallery.subjects()
        lines = [
            f"{s['subject']}\t{s['faces']} faces\tquality " + " ".join(quality_text(q) for q in s.get("qualities", []))
            for s in subjects
        ]
        print(json.dumps(subjects) if args.json else "\n".join(lines))
        return
    if args.action == "delete-face":
        return delete_face(args, gallery, lookup_id)
    if not args.subject:
        raise ConfigError("facelearn gallery delete needs the SUBJECT to delete")
    subject = lookup_id(args.subject)
    removed = gallery.delete(subject)
    erased = gallery.checkpoint()
    audit(args, "delete", subject, removed)
    answer = {"deleted": subject, "faces": removed, "erased": erased, "erasure": gallery.erasure}
    print(
        json.dumps(answer)
        if args.json
        else f"facelearn: deleted {subject!r} and its {removed} faces from {args.gallery}"
        + ("" if erased else f"; erasure from the files {gallery.erasure}")
    )
    gallery.close()


def delete_face(args: argparse.Namespace, gallery, lookup_id) -> None:
    """``facelearn gallery delete-face GALLERY SUBJECT FACE_ID``: one face out (its last takes the subject)."""
    if not (args.subject and args.face_id):
        raise ConfigError("facelearn gallery delete-face needs the SUBJECT and the FACE_ID of the face to delete")
    answer = gallery.erase_face(lookup_id(args.subject), args.face_id)
    subject, face, left = answer["subject"], answer["deleted_face"], answer["faces"]
    audit(args, "delete_face", subject, 1, face=face, subject_deleted=answer["subject_deleted"])
    what = f"{left} faces left" if left else "it was the last, so the subject is deleted too"
    print(
        json.dumps(answer)
        if args.json
        else f"facelearn: deleted face {face} of {subject!r} from {args.gallery}: {what}"
        + ("" if answer["erased"] else f"; erasure from the files {answer['erasure']}")
    )
    gallery.close()


def add_commands(commands) -> None:
    export = commands.add_parser("export", help="export a checkpoint to ONNX (preprocessing inside, parity-checked)")
    export.add_argument("checkpoint", help="a facelearn checkpoint, a plain state_dict or an insightface-style .onnx")
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--architecture", help=ARCHITECTURE_HELP)
    export.add_argument("--no-flip", action="store_true", help="do not add the mirrored face's embedding")
    export.add_argument("--parity", metavar="DIR", help="aligned faces to check ONNX against PyTorch on")
    export.add_argument("--parity-count", type=int, default=1000)
    export.add_argument("--min-cosine", type=float, default=0.9999)
    export.add_argument("--int8", action="store_true", help="also write <output>.int8.onnx, calibrated on --parity")
    imported = export.add_argument_group("an ONNX from elsewhere (default: insightface's preprocessing)")
    imported.add_argument("--mean", type=float, help="subtracted from every pixel (default 127.5)")
    imported.add_argument("--std", type=float, help="divides every pixel after the mean (default 127.5)")
    imported.add_argument("--channel-order", choices=["rgb", "bgr"], default="rgb", help="the model's input's")
    imported.add_argument("--layout", choices=["nchw", "nhwc"], help="default: read from the graph")
    imported.add_argument("--input-size", type=int, help="for a graph without a fixed face size")
    export.set_defaults(func=command_export)

    calibrate = commands.add_parser("calibrate", help="thresholds at FMR 1e-2/1e-3/1e-4 on your pairs, into the model")
    calibrate.add_argument("model", help=MODEL_HELP)
    calibrate.add_argument("--architecture", help=ARCHITECTURE_HELP)
    calibrate.add_argument(
        "--photos", metavar="DIR", help="identity folders of ordinary photos (DIR/<person>/<photo>): every pair"
    )
    calibrate.add_argument("--detector", default="retinaface", help=DETECTOR_HELP + " (with --photos)")
    calibrate.add_argument("--weights", help="folder of the detector weights (with --photos)")
    calibrate.add_argument("--pairs", help="LFW-style pairs.txt over aligned faces (with --root)")
    calibrate.add_argument("--root")
    calibrate.add_argument("--bin", help="an insightface .bin verification set")
    calibrate.add_argument("--gallery", help="aligned faces in identity folders: every pair of images")
    calibrate.add_argument(
        "--fmr",
        type=float,
        nargs="+",
        help="false-match rates in (0, 1), each needing 10/FMR impostor pairs; default 1e-2 1e-3, and 1e-4 "
        "where the pairs support it",
    )
    calibrate.add_argument("--json", action="store_true")
    calibrate.set_defaults(func=command_calibrate)

    enrollment.add_commands(commands)
    identification.add_commands(commands)

    verify = commands.add_parser("verify", help="same person or not, at a false-match rate")
    verify.add_argument(
        "photos", nargs="+", metavar="photo", help="REFERENCE PHOTO [PHOTO ...]: each against REFERENCE"
    )
    add_model_options(verify)
    add_quality_options(verify, gate=False)
    verify.set_defaults(func=command_verify)

    gallery = commands.add_parser(
        "gallery", help="list a gallery's subjects (or one subject's faces), delete one (every embedding), or one face"
    )
    gallery.add_argument("action", choices=["list", "delete", "delete-face"])
    gallery.add_argument("gallery")
    gallery.add_argument("subject", nargs="?", help="list: this subject's faces; delete: the subject to delete")
    gallery.add_argument("face_id", nargs="?", help="delete-face: the id of the face to delete")
    gallery.add_argument("--json", action="store_true")
    gallery.add_argument("--audit-log", help="the audit log of gallery changes (default: <gallery>.audit.log)")
    gallery.add_argument("--store", choices=STORES.names(), help="default: Milvus for a URI, else SQLite")
    gallery.set_defaults(func=command_gallery)
