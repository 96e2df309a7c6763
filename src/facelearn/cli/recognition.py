"""What the recognition commands share: the model options, opening the model (and a gallery for it), reading
photos, and answering each photo on its own."""

from __future__ import annotations

import argparse

import numpy as np

from ..deploy.gallery import STORES
from ..errors import DataError
from .options import BACKEND_HELP, DETECTOR_HELP

MODEL_HELP = (
    "a named model (dlib), a facelearn checkpoint, a plain state_dict (arcface_torch model.pt) or an .onnx "
    "(facelearn's export, or an insightface-style recognition model)"
)
ARCHITECTURE_HELP = (
    "architecture of a plain state_dict: a facelearn backbone (iresnet50) or an arcface_torch name (r50, mbf); "
    "default: read from its keys"
)


def add_model_options(parser: argparse.ArgumentParser, fmr: bool = True, model_required: bool = True) -> None:
    parser.add_argument("--model", required=model_required, help=MODEL_HELP)
    parser.add_argument("--architecture", help=ARCHITECTURE_HELP)
    parser.add_argument("--detector", default="retinaface", help=DETECTOR_HELP)
    parser.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    parser.add_argument("--aligned", action="store_true", help="the images are aligned faces: no detection")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--store", choices=STORES.names(), help="gallery store (default: Milvus for a URI)")
    parser.add_argument("--index", default="exact", help="SQLite gallery index: exact, hnsw, ivf, SQfp16, HNSW32")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP + " (auto's choice is remembered per model)")
    if fmr:
        parser.add_argument("--fmr", type=float, default=1e-3, help="false-match rate of the decision (default 1e-3)")
        parser.add_argument(
            "--threshold",
            type=float,
            help="a cosine threshold for a model without calibration (answers say: uncalibrated threshold)",
        )


def open_recognizer(args: argparse.Namespace, gallery: bool = True):
    from ..deploy.quality import QualityGate
    from ..deploy.recognizer import Recognizer

    gate = QualityGate(args.min_quality, args.min_eye_distance) if hasattr(args, "min_quality") else None
    return Recognizer.load(
        args.model,
        args.architecture,
        gallery=args.gallery if gallery else None,
        store=getattr(args, "store", None),
        index=getattr(args, "index", "exact"),
        detector=None if args.aligned else args.detector,
        weights=args.weights,
        backend=args.backend,
        threshold=getattr(args, "threshold", None),
        quality=getattr(args, "quality", "auto"),
        gate=gate,
    )


def open_gallery_recognizer(args: argparse.Namespace, fmr: float | None = None):
    """The model, and the gallery opened for it (never creating one: an empty gallery answers unknown to all).
    ``fmr``: a model without a 1:1 calibration says so first."""
    from ..deploy.gallery_files import check_gallery_exists

    recognizer = open_recognizer(args, gallery=False)
    if fmr is not None:
        recognizer.threshold(fmr)
    check_gallery_exists(args.gallery)
    recognizer.open_gallery(args.gallery, args.store, args.index)
    return recognizer


def read_photos(paths: list) -> list[np.ndarray]:
    """Every photo through the decoding gate, with one pixel budget for the whole command."""
    from ..data.images import PixelBudget, read_image
    from ..deploy.photo_folders import check_photo

    budget = PixelBudget()
    return [read_image(check_photo(path), budget=budget) for path in paths]


def answer_for(photo, question, **options) -> dict:
    """The answer about one photo, or the reason there is none (a photo without a face, or unreadable): one
    photo of many that cannot be answered does not stop the others."""
    from ..data.images import ImageError, read_image
    from ..deploy.recognizer import NoFaceFound

    try:
        return {"answer": question(read_image(photo), **options)}
    except (NoFaceFound, ImageError) as error:
        return {"error": str(error).removeprefix(f"{photo}: ")}


def check_answered(unanswered: int, photos: int) -> None:
    """Exit 2 when a photo had no answer (each said where its answer would be); the others were answered."""
    if unanswered:
        raise DataError(f"{unanswered} of {photos} photos had no answer (each said above)")


def audit(args: argparse.Namespace, action: str, subject: str, faces: int, **details) -> None:
    """One record of a gallery change in the audit log (deploy/audit.py): the local user, via the CLI."""
    from ..deploy.audit import AuditLog, default_audit_path, local_user

    path = args.audit_log or default_audit_path(args.gallery)
    AuditLog(path).record(action, subject, faces, local_user(), args.gallery, via="cli", **details)
