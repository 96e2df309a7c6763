"""The deployment commands: export, calibrate, enroll, identify, verify, gallery. Parse → library call → print."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..deploy.gallery import STORES
from ..errors import ConfigError, DataError
from .options import DETECTOR_HELP

MODEL_HELP = "a facelearn checkpoint, an arcface_torch .pth (with --architecture) or an exported .onnx"


def aligned_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    from ..data.images import IMAGE_EXTENSIONS

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return paths[:limit] if limit else paths


def command_export(args: argparse.Namespace) -> None:
    from ..data.images import fit_size, read_image
    from ..data.synthetic import UNSEEN_IDENTITY_OFFSET, SyntheticFaces
    from ..deploy.export import EmbeddingGraph, export_onnx, model_metadata, parity
    from ..io import write_atomic
    from ..models.checkpoint import FORMAT, backbone_from_state, load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    backbone, size = backbone_from_state(checkpoint, args.checkpoint, args.architecture)
    graph = EmbeddingGraph(backbone, flip=not args.no_flip)
    metadata = model_metadata(
        checkpoint if checkpoint.get("format") == FORMAT else None, args.architecture, backbone, size, not args.no_flip
    )
    if args.parity:
        paths = aligned_images(args.parity, args.parity_count)
        faces = np.stack([fit_size(read_image(p), size) for p in paths]) if paths else np.empty((0, size, size, 3))
        where = f"{len(paths)} faces of {args.parity}"
    else:
        synthetic = SyntheticFaces(1, 1, size, seed=7)
        faces = np.stack([synthetic.render(UNSEEN_IDENTITY_OFFSET + i, i) for i in range(64)])
        where = "64 synthetic faces (give --parity DIR of aligned faces to check on yours)"
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
    from ..deploy.calibration import calibrate
    from ..deploy.recognizer import Recognizer
    from ..deploy.stored_calibration import pair_scores_for_calibration, store_calibration

    recognizer = Recognizer.load(args.model, args.architecture, detector=None)
    scores, issame, source = pair_scores_for_calibration(recognizer, args.pairs, args.root, args.bin, args.gallery)
    calibration = calibrate(scores, issame, tuple(args.fmr), source)
    store_calibration(args.model, calibration)
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=2))
        return
    print(
        f"facelearn: calibrated {args.model} on {source}: {calibration.num_genuine:,} genuine and "
        f"{calibration.num_impostor:,} impostor pairs (stored in the model)"
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
    from ..data.images import read_image

    return [read_image(path) for path in paths]


def command_enroll(args: argparse.Namespace) -> None:
    if args.from_embeddings:
        return enroll_from_embeddings(args)
    if not (args.model and args.subject and args.photos):
        raise ConfigError("facelearn enroll needs GALLERY SUBJECT PHOTOS --model M (or GALLERY --from-embeddings OUT)")
    recognizer = open_recognizer(args)
    result = recognizer.enroll(args.subject, read_photos(args.photos), aligned=args.aligned, append=args.append)
    result["no_face"] = [args.photos[i] for i in result["no_face"]]
    if args.json:
        print(json.dumps(result))
        return
    print(f"facelearn: enrolled {args.subject!r} in {args.gallery}: {result['faces']} faces")
    for path in result["no_face"]:
        print(f"  no face found, not enrolled: {path}")


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
    if args.json:
        print(json.dumps(counts))
        return
    print(
        f"facelearn: enrolled {counts['faces_enrolled']:,} faces from {args.from_embeddings} into {args.gallery} "
        f"({counts['subjects']:,} subjects, model {counts['model_id']}); {counts['already_enrolled']:,} were enrolled "
        f"already, {counts['without_subject']:,} have no subject"
    )


def command_identify(args: argparse.Namespace) -> None:
    recognizer = open_recognizer(args)
    results = recognizer.identify(read_photos([args.photo])[0], k=args.k, fmr=args.fmr, aligned=args.aligned)
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

    if "://" not in args.gallery and not Path(args.gallery).is_file():
        raise DataError(f"{args.gallery} does not exist")
    gallery = open_gallery(args.gallery, None, None, args.store)
    if args.action == "list":
        subjects = gallery.subjects()
        print(json.dumps(subjects) if args.json else "\n".join(f"{s['subject']}\t{s['faces']} faces" for s in subjects))
        return
    if not args.subject:
        raise ConfigError("facelearn gallery delete needs the SUBJECT to delete")
    removed = gallery.delete(args.subject)
    gallery.checkpoint()
    print(
        json.dumps({"deleted": args.subject, "faces": removed})
        if args.json
        else f"facelearn: deleted {args.subject!r} and its {removed} faces from {args.gallery}"
    )


def add_model_options(parser: argparse.ArgumentParser, fmr: bool = True, model_required: bool = True) -> None:
    parser.add_argument("--model", required=model_required, help=MODEL_HELP)
    parser.add_argument("--architecture", help="architecture of a plain state_dict (e.g. iresnet50)")
    parser.add_argument("--detector", default="retinaface", help=DETECTOR_HELP)
    parser.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    parser.add_argument("--aligned", action="store_true", help="the images are aligned faces: no detection")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--store", choices=STORES.names(), help="gallery store (default: Milvus for a URI)")
    parser.add_argument("--index", default="exact", help="SQLite gallery index: exact, SQfp16 or HNSW32 (faiss)")
    if fmr:
        parser.add_argument("--fmr", type=float, default=1e-3, help="false-match rate of the decision (default 1e-3)")


def add_commands(commands) -> None:
    export = commands.add_parser("export", help="export a checkpoint to ONNX (preprocessing inside, parity-checked)")
    export.add_argument("checkpoint")
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--architecture", help="architecture of a plain state_dict (e.g. iresnet50)")
    export.add_argument("--no-flip", action="store_true", help="do not add the mirrored face's embedding")
    export.add_argument("--parity", metavar="DIR", help="aligned faces to check ONNX against PyTorch on")
    export.add_argument("--parity-count", type=int, default=1000)
    export.add_argument("--min-cosine", type=float, default=0.9999)
    export.add_argument("--int8", action="store_true", help="also write <output>.int8.onnx, calibrated on --parity")
    export.set_defaults(func=command_export)

    calibrate = commands.add_parser("calibrate", help="thresholds at FMR 1e-2/1e-3/1e-4 on your pairs, into the model")
    calibrate.add_argument("model", help=MODEL_HELP)
    calibrate.add_argument("--architecture")
    calibrate.add_argument("--pairs", help="LFW-style pairs.txt over aligned faces (with --root)")
    calibrate.add_argument("--root")
    calibrate.add_argument("--bin", help="an insightface .bin verification set")
    calibrate.add_argument("--gallery", help="aligned faces in identity folders: every pair of images")
    calibrate.add_argument("--fmr", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    calibrate.add_argument("--json", action="store_true")
    calibrate.set_defaults(func=command_calibrate)

    enroll = commands.add_parser("enroll", help="enroll a person's photos into a gallery")
    enroll.add_argument("gallery", help="the gallery file (SQLite), created if missing")
    enroll.add_argument("subject", nargs="?")
    enroll.add_argument("photos", nargs="*")
    enroll.add_argument("--append", action="store_true", help="add faces to an enrolled subject")
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
    gallery.add_argument("--store", choices=STORES.names(), help="default: Milvus for a URI, else SQLite")
    gallery.set_defaults(func=command_gallery)
