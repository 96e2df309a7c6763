"""What every benchmark records beside its numbers: the machine and the command."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")


def machine() -> dict:
    from facelearn.hardware import cpu_has_fast_bf16

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "native_bf16": cpu_has_fast_bf16(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def command() -> str:
    return "python " + " ".join(sys.argv)


def write_result(path: str | Path, record: dict, variant: dict | None = None) -> None:
    """``record`` with the machine and the command; ``variant``: what sets this file apart from its siblings
    of the same benchmark (an allocator, a precision), as fields rather than only a file-name suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"machine": machine(), "command": command(), **({"variant": variant} if variant else {})}
    path.write_text(json.dumps({**head, **record}, indent=2))
    print(f"wrote {path}")


def shell_command(arguments: list[str]) -> str:
    """``facelearn …`` as a user types it: the packaged recipes as ``configs/<name>.yaml``."""
    import facelearn

    configs = str(Path(facelearn.__file__).parent / "configs")
    return "facelearn " + " ".join(argument.replace(configs, "configs") for argument in arguments)


def needs(path: str | Path, made_by: str) -> Path:
    """A file or folder another script makes (``made_by``); stops with what to run when it is missing."""
    path = Path(path)
    if not path.exists():
        sys.exit(f"{path} is missing: run {made_by} first (or pass its location)")
    return path


def train_unless_done(command: list[str], run: str | Path, name: str) -> dict:
    """``facelearn <command>`` into ``run`` unless the run finished before (its ``metrics.json`` exists, so a
    killed benchmark resumes where it stopped); returns the run's metrics."""
    from facelearn.cli import main as facelearn

    metrics = Path(run) / "metrics.json"
    if not metrics.is_file():
        print(shell_command(command), flush=True)
        if facelearn(command) != 0:
            sys.exit(f"training {name} failed")
    return json.loads(metrics.read_text())
