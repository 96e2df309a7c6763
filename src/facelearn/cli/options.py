"""What several commands share: help texts (the names themselves come from the registries at run time), and
turning parsed arguments into the library's option dataclasses."""

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
