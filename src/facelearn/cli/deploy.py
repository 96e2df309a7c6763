"""The deployment commands: export, calibrate, enroll, identify, verify, gallery. Parse → library call → print."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..deploy.gallery import STORES
from ..errors import ConfigError, DataError
from .options import DETECTOR_HELP

MODEL_HELP = (
    "a named model (dlib), a facelearn checkpoint, a plain state_dict (arcface_torch model.pt) or an .onnx "
    "(facelearn's export, or an insightface-style recognition model)"
)
ARCHITECTURE_HELP = (
    "architecture of a plain state_dict: a facelearn backbone (iresnet50) or an arcface_torch name (r50, mbf); "
    "default: read from its keys"
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
    recognizer = Recognizer.load(args.model, args.architecture, detector=None)
    scores, issame, source = pair_scores_for_calibration(recognizer, args.pairs, args.root, args.bin, args.gallery)
    calibration = calibrate(scores, issame, fmrs, source)  # an FMR the pairs cannot support: an error, nothing written
    if hasattr(recognizer.embedder, "store_calibration"):  # a named model: the user's own file, used from now on
        where = f"stored in {recognizer.embedder.store_calibration(calibration.to_dict())}"
    else:
        store_calibration(args.model, calibration)
        where = "stored in the model"
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=2))
        return
    print(
        f"facelearn: calibrated {args.model} on {source}: {calibration.num_genuine:,} genuine and "
        f"{calibration.num_impostor:,} impostor pairs ({where})"
    )
    for point in calibration.points:
        if point["threshold"] is None:
            print(f"  FMR {point['fmr']:g}: not supported — needs {point['impostors_needed']:,} impostor pairs")
            continue
        low, high = point["fmr_interval"]
        print(
            f"  FMR {point['fmr']:g}: threshold {point['threshold']:.4f}  realised FMR {point['realised_fmr']:.2e} "
            f"(95 % {low:.1e}–{high:.1e})  FNMR {100 * point['fnmr']:.2f} %"
        )


def open_recognizer(args: argparse.Namespace, gallery: bool = True):
    from ..deploy.recognizer import Recognizer

    return Recognizer.load(
        args.model,
        args.architecture,
        gallery=args.gallery if gallery else None,
        store=getattr(args, "store", None),
        index=getattr(args, "index", "exact"),
        detector=None if args.aligned else args.detector,
        weights=args.weights,
    )


def read_photos(paths: list[str]) -> list[np.ndarray]:
    """Every photo through the decoding gate, with one pixel budget for the whole command."""
    from ..data.images import PixelBudget, read_image

    budget = PixelBudget()
    return [read_image(path, budget=budget) for path in paths]


def command_enroll(args: argparse.Namespace) -> None:
    from ..deploy.gallery_files import check_gallery_writable, gallery_errors
    from ..deploy.subject_ids import subject_id

    if args.from_embeddings:
        return enroll_from_embeddings(args)
    if not (args.model and args.subject and args.photos):
        raise ConfigError("facelearn enroll needs GALLERY SUBJECT PHOTOS --model M (or GALLERY --from-embeddings OUT)")
    subject = subject_id(args.subject)
    photos = read_photos(args.photos)  # before the model loads: a bad photo fails at once
    check_gallery_writable(args.gallery)
    recognizer = open_recognizer(args)
    with gallery_errors(args.gallery):
        result = recognizer.enroll(subject, photos, aligned=args.aligned, append=args.append)
    audit(args, "add" if args.append else "enroll", subject, len(photos) - len(result["no_face"]))
    result["no_face"] = [args.photos[i] for i in result["no_face"]]
    if args.json:
        print(json.dumps(result))
        return
    print(f"facelearn: enrolled {subject!r} in {args.gallery}: {result['faces']} faces")
    for path in result["no_face"]:
        print(f"  no face found, not enrolled: {path}")


def audit(args: argparse.Namespace, action: str, subject: str, faces: int) -> None:
    """One record of a gallery change in the audit log (deploy/audit.py): the local user, via the CLI."""
    from ..deploy.audit import AuditLog, default_audit_path, local_user

    path = args.audit_log or default_audit_path(args.gallery)
    AuditLog(path).record(action, subject, faces, local_user(), args.gallery, via="cli")


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


def command_identify(args: argparse.Namespace) -> None:
    from ..deploy.gallery_files import check_gallery_exists, gallery_errors

    photo = read_photos([args.photo])[0]
    recognizer = open_recognizer(args, gallery=False)
    recognizer.threshold(args.fmr)  # a model without calibration says so first
    check_gallery_exists(args.gallery)  # never create an empty gallery that answers "unknown" to everyone
    with gallery_errors(args.gallery):
        recognizer.open_gallery(args.gallery, getattr(args, "store", None), getattr(args, "index", "exact"))
        results = recognizer.identify(photo, k=args.k, fmr=args.fmr, aligned=args.aligned)
    if args.json:
        print(json.dumps(results))
        return
    if not results:
        print(f"facelearn: no face found in {args.photo}")
    for number, face in enumerate(results, start=1):
        decision = face["subject"] if face["subject"] is not None else "unknown"
        print(f"face {number}: {decision}  (threshold {face['threshold']:.4f} at FMR {face['fmr']:g})")
        for candidate in face["candidates"]:
            print(f"  {candidate['subject']:<30} {candidate['score']:.4f}")


def command_verify(args: argparse.Namespace) -> None:
    recognizer = open_recognizer(args, gallery=False)
    first, second = read_photos([args.photo_a, args.photo_b])
    result = recognizer.verify(first, second, fmr=args.fmr, aligned=args.aligned)
    if args.json:
        print(json.dumps(result))
        return
    verdict = "same person" if result["same"] else "different people"
    print(
        f"facelearn: {verdict}: score {result['score']:.4f}, threshold {result['threshold']:.4f} "
        f"at FMR {result['fmr']:g} (model {result['model']})"
    )


def command_gallery(args: argparse.Namespace) -> None:
    from ..deploy.gallery import open_gallery
    from ..deploy.gallery_files import check_gallery_exists, check_gallery_writable, gallery_errors
    from ..deploy.subject_ids import lookup_id

    check_gallery_exists(args.gallery)
    if args.action == "delete":
        check_gallery_writable(args.gallery)
    with gallery_errors(args.gallery):
        gallery_command(args, open_gallery(args.gallery, None, None, args.store), lookup_id)


def gallery_command(args: argparse.Namespace, gallery, lookup_id) -> None:
    if args.action == "list":
        subjects = gallery.subjects()
        print(json.dumps(subjects) if args.json else "\n".join(f"{s['subject']}\t{s['faces']} faces" for s in subjects))
        return
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


def add_model_options(parser: argparse.ArgumentParser, fmr: bool = True, model_required: bool = True) -> None:
    parser.add_argument("--model", required=model_required, help=MODEL_HELP)
    parser.add_argument("--architecture", help=ARCHITECTURE_HELP)
    parser.add_argument("--detector", default="retinaface", help=DETECTOR_HELP)
    parser.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    parser.add_argument("--aligned", action="store_true", help="the images are aligned faces: no detection")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--store", choices=STORES.names(), help="gallery store (default: Milvus for a URI)")
    parser.add_argument("--index", default="exact", help="SQLite gallery index: exact, hnsw, ivf, SQfp16, HNSW32")
    if fmr:
        parser.add_argument("--fmr", type=float, default=1e-3, help="false-match rate of the decision (default 1e-3)")


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

    enroll = commands.add_parser("enroll", help="enroll a person's photos into a gallery")
    enroll.add_argument("gallery", help="the gallery file (SQLite), created if missing")
    enroll.add_argument("subject", nargs="?")
    enroll.add_argument("photos", nargs="*")
    enroll.add_argument("--append", action="store_true", help="add faces to an enrolled subject")
    enroll.add_argument("--audit-log", help="the audit log of gallery changes (default: <gallery>.audit.log)")
    enroll.add_argument(
        "--from-embeddings", metavar="OUT", help="every subject of a facelearn embed output (rerun-safe)"
    )
    enroll.add_argument("--subject-column", default="subject", help="with --from-embeddings (default: subject)")
    enroll.add_argument("--faces", default="largest", choices=["largest", "all"], help="with --from-embeddings")
    enroll.add_argument("--batch", type=int, default=10_000, help="with --from-embeddings: faces per write")
    add_model_options(enroll, fmr=False, model_required=False)
    enroll.set_defaults(func=command_enroll)

    identify = commands.add_parser("identify", help="who is in this photo (open set: unknown below the threshold)")
    identify.add_argument("gallery")
    identify.add_argument("photo")
    identify.add_argument("-k", type=int, default=5, help="candidates per face (default 5)")
    add_model_options(identify)
    identify.set_defaults(func=command_identify)

    verify = commands.add_parser("verify", help="same person or not, at a false-match rate")
    verify.add_argument("photo_a")
    verify.add_argument("photo_b")
    add_model_options(verify)
    verify.set_defaults(func=command_verify)

    gallery = commands.add_parser("gallery", help="list a gallery's subjects, or delete one (every embedding)")
    gallery.add_argument("action", choices=["list", "delete"])
    gallery.add_argument("gallery")
    gallery.add_argument("subject", nargs="?")
    gallery.add_argument("--json", action="store_true")
    gallery.add_argument("--audit-log", help="the audit log of gallery changes (default: <gallery>.audit.log)")
    gallery.add_argument("--store", choices=STORES.names(), help="default: Milvus for a URI, else SQLite")
    gallery.set_defaults(func=command_gallery)
