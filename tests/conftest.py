"""Shared test helpers: where ../shared is, and a skip when it is absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACELEARN_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A file under ../shared (or $FACELEARN_SHARED); the test is skipped if it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: set FACELEARN_SHARED to the shared data folder")
    return path


def load_json(*parts: str) -> dict:
    return json.loads(shared_path(*parts).read_text())
