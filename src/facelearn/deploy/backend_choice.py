"""The backend ``auto`` chose, remembered per model and machine, so that a command does not spend seconds
timing backends (and exporting the model for ONNX Runtime) every time it starts.

``$FACELEARN_HOME/backends.json`` (default ``~/.facelearn``) maps ``<model digest>/<CPU>`` to the
backend measured fastest and the speeds behind it; where ONNX Runtime won, the in-memory export is
kept as ``$FACELEARN_HOME/exports/<digest>-<size>-<flip>.onnx`` and used only when its weights'
digest is the model's (the eight most recent are kept). A missing, unreadable or damaged file
means "measure (or export) again" and a warning, never an error; an unwritable home is a warning
too. Delete the file, or pass a backend by name (``--backend torch``), to measure again or to
override.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import torch

from ..align.weights import facelearn_home
from ..io import write_text_atomic

log = logging.getLogger(__name__)
CACHE_NAME = "backends.json"
KEPT_EXPORTS = 8  # exports kept under $FACELEARN_HOME/exports: the most recently made


def cache_path() -> Path:
    return facelearn_home() / CACHE_NAME


def cpu_name() -> str:
    """The CPU (model name from /proc/cpuinfo where there is one), with the threads torch uses and its version:
    a choice measured on 2 threads or another torch is not this machine's."""
    name = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}; {torch.get_num_threads()} threads; torch {torch.__version__}"


def machine_key(model_digest: str) -> str:
    return f"{model_digest}/{cpu_name()}"


def read_choices(path: Path | None = None) -> dict:
    path = path or cache_path()
    try:
        choices = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("%s cannot be read (%s): the backends are measured again", path, error)
        return {}
    return choices if isinstance(choices, dict) else {}


def remembered(model_digest: str, names: set[str]) -> str | None:
    """The backend chosen before for this model on this machine, if it is one of ``names``."""
    entry = read_choices().get(machine_key(model_digest))
    backend = entry.get("backend") if isinstance(entry, dict) else None
    return backend if backend in names else None


def remember(model_digest: str, backend: str, speeds: dict[str, float]) -> None:
    path = cache_path()
    choices = read_choices(path)
    choices[machine_key(model_digest)] = {
        "backend": backend,
        "faces_per_second": {name: round(speed, 1) for name, speed in speeds.items()},
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(choices, indent=2))
    except OSError as error:
        log.warning("the backend choice cannot be remembered in %s (%s): it is measured at every load", path, error)


def export_path(model_digest: str, input_size: int, flip: bool) -> Path:
    return facelearn_home() / "exports" / f"{model_digest}-{input_size}-{'flip' if flip else 'noflip'}.onnx"


def keep_export(path: Path, data: bytes) -> None:
    from ..io import write_bytes_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
        kept = sorted(path.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEPT_EXPORTS:]:  # the models used most recently stay; an old one is made again if used
            old.unlink(missing_ok=True)
    except OSError as error:
        log.warning("the ONNX export cannot be kept in %s (%s): it is made again at every load", path, error)
