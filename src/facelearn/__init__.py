"""facelearn: train, distill, evaluate and deploy face-recognition models with PyTorch.

    from facelearn import Recognizer

    recognizer = Recognizer.load("runs/demo/best.pt", gallery="people.db")
    recognizer.enroll("ada", ["ada_1.jpg", "ada_2.jpg"])
    print(recognizer.identify("visitor.jpg"))

The public names are imported when first used, so ``import facelearn`` stays light (no torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

PUBLIC = {
    "Recognizer": "facelearn.deploy.recognizer",
    "Calibration": "facelearn.deploy.calibration",
    "read_image": "facelearn.data.images",
    "FacelearnError": "facelearn.errors",
}


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'facelearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC])


__all__ = ["__version__", *PUBLIC]
