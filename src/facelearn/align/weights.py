"""Detector weights: found by an explicit path or under ``$FACELEARN_HOME``, always sha256-checked.

Weights are never shipped with the package or committed. A user places them (or downloads them
with :func:`download_weights`, which verifies the hash before the file appears) in
``$FACELEARN_HOME/weights/<detector>/`` (default ``~/.facelearn``), or passes a folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import torch

from ..errors import FacelearnError

# name → sha256 of the published files (facenet-pytorch 2.6.0 MTCNN; biubug6 RetinaFace MobileNet-0.25).
KNOWN_WEIGHTS: dict[str, dict[str, str]] = {
    "mtcnn": {
        "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    },
    "retinaface": {
        "mobilenet0.25_Final.pth": "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1",
    },
}

# Where the files are published; RetinaFace's upstream is a Google Drive folder, so it has none.
DEFAULT_URLS: dict[str, str] = {
    "mtcnn": "https://raw.githubusercontent.com/timesler/facenet-pytorch/787da06156087cd6b616fe6608213722bddc30cd/data/",
}


class WeightsError(FacelearnError, ValueError):
    """Missing weights, or weights whose bytes are not the published ones."""


def facelearn_home() -> Path:
    return Path(os.environ.get("FACELEARN_HOME", Path.home() / ".facelearn"))


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_folder(detector: str, folder: str | Path | None = None) -> Path:
    if detector not in KNOWN_WEIGHTS:
        raise WeightsError(f"no weights are known for {detector!r}; known: {', '.join(KNOWN_WEIGHTS)}")
    return Path(folder) if folder else facelearn_home() / "weights" / detector


def verified_path(detector: str, filename: str, folder: str | Path | None = None) -> Path:
    """The path of one weights file after checking that it exists and has the published sha256."""
    expected = KNOWN_WEIGHTS[detector][filename]
    path = weights_folder(detector, folder) / filename
    if not path.is_file():
        raise WeightsError(
            f"{detector} weights {filename} not found at {path}: pass the folder that holds them, put them in "
            f"{facelearn_home() / 'weights' / detector} (FACELEARN_HOME), or run `facelearn weights {detector}`"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(
            f"{path} is not the expected {detector} file {filename}: sha256 {actual}, expected {expected}. "
            "Download it again; a truncated or different file would give wrong detections."
        )
    return path


def load_state_dict(detector: str, filename: str, folder: str | Path | None = None) -> dict[str, torch.Tensor]:
    """A verified state_dict, loaded without executing pickled code (``weights_only=True``)."""
    path = verified_path(detector, filename, folder)
    return torch.load(path, map_location="cpu", weights_only=True)


def download_weights(detector: str, base_url: str | None = None, folder: str | Path | None = None) -> list[Path]:
    """Fetch every file of ``detector`` from ``base_url`` (http(s) or ``file://``), verify, then place it.

    A file is downloaded to a temporary name next to its destination and renamed only once its
    sha256 matches, so an interrupted or tampered download never looks like valid weights.
    Files already present with the right hash are kept.
    """
    target = weights_folder(detector, folder)
    base_url = base_url or DEFAULT_URLS.get(detector)
    if not base_url:
        raise WeightsError(f"{detector} has no public direct-download address: pass base_url (http(s):// or file://)")
    target.mkdir(parents=True, exist_ok=True)
    placed = []
    for filename, expected in KNOWN_WEIGHTS[detector].items():
        destination = target / filename
        if destination.is_file() and sha256_of(destination) == expected:
            placed.append(destination)
            continue
        url = base_url.rstrip("/") + "/" + filename
        handle, temporary = tempfile.mkstemp(dir=target, prefix=f".{filename}.")
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
                shutil.copyfileobj(response, out)
            actual = sha256_of(temporary)
            if actual != expected:
                raise WeightsError(f"{url}: sha256 {actual}, expected {expected} for {detector} {filename}")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it 0600; weights are not secret
            os.replace(temporary, destination)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        placed.append(destination)
    return placed
