"""What every benchmark records beside its numbers: the machine and the command."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def command() -> str:
    return "python " + " ".join(sys.argv)


def write_result(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), "command": command(), **record}, indent=2))
    print(f"wrote {path}")


def shell_command(arguments: list[str]) -> str:
    """``facelearn …`` as a user types it: the packaged recipes as ``configs/<name>.yaml``."""
    import facelearn

    configs = str(Path(facelearn.__file__).parent / "configs")
    return "facelearn " + " ".join(argument.replace(configs, "configs") for argument in arguments)
