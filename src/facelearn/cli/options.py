"""What several commands share: help texts (the names themselves come from the registries at run time),
turning parsed arguments into the library's option dataclasses, and a progress bar."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TypeVar

T = TypeVar("T")

DETECTOR_HELP = "face detector, a name in facelearn.align.DETECTORS (an unknown name lists them)"
BACKEND_HELP = "auto (the fastest, measured here) or a name in facelearn.deploy.backends.BACKENDS"


def options_from(kind: type[T], args: argparse.Namespace, **computed) -> T:
    """``kind`` (a dataclass) with each field an argument of the same name has, ``computed`` for the rest."""
    given = {f.name: getattr(args, f.name) for f in fields(kind) if f.name not in computed and hasattr(args, f.name)}
    return kind(**given, **computed)


def add_quality_options(parser: argparse.ArgumentParser, gate: bool = True) -> None:
    """``--quality`` (how a face's quality is scored) and, for enrolling, the gate's two limits."""
    from ..deploy.quality import DEFAULT_MIN_EYE_DISTANCE, DEFAULT_MIN_QUALITY, METHODS

    parser.add_argument(
        "--quality",
        choices=METHODS,
        default="auto",
        help="face quality: the embedding norm of a MagFace/AdaFace model (norm), facelearn's estimate (estimate), "
        "whichever the model has (auto, the default), or none (no score; the estimate costs 3 more model runs a face)",
    )
    if gate:
        parser.add_argument(
            "--min-quality",
            type=float,
            default=DEFAULT_MIN_QUALITY,
            help=f"enroll gate: faces of lower quality are refused (default {DEFAULT_MIN_QUALITY}; 0 turns it off)",
        )
        parser.add_argument(
            "--min-eye-distance",
            type=float,
            default=DEFAULT_MIN_EYE_DISTANCE,
            help="enroll gate: faces with fewer pixels between the eyes in the photo are refused "
            f"(default {DEFAULT_MIN_EYE_DISTANCE:g})",
        )


def progress_bar(total: int, what: str, unit: str = "photo"):
    """A bar on the terminal's stderr (none when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, disable=None, leave=False)
