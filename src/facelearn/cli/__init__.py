"""The ``facelearn`` command: one module per command group, each parsing its arguments and calling the
library. Nothing below this package takes an argparse Namespace."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import FacelearnError, describe_os_error
from . import bulk, deploy, eval, prepare, serve, train
from .train import recipe_path

GROUPS = (train, eval, prepare, bulk, deploy, serve)


class NotRaised(Exception):
    """Stands for the training engine's exceptions until the engine is imported (a command that never trains
    does not pay the seconds its import costs)."""


def training_ends() -> tuple[type[BaseException], ...]:
    engine = sys.modules.get("facelearn.train.engine")
    return (engine.TrainingStopped, engine.TrainingDiverged) if engine else (NotRaised,)


def training_ended(ended: BaseException) -> int:
    if hasattr(ended, "exit_code"):  # TrainingStopped: a signal or a deadline
        print(f"facelearn: {ended}", file=sys.stderr)
        return ended.exit_code
    print(f"facelearn: training stopped: {ended}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facelearn", description="Train, evaluate and deploy face recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step to the console")
    parser.add_argument("--version", action="version", version=f"facelearn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if args.verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        args.func(args)
    except training_ends() as ended:  # the engine's exceptions, once training has run
        return training_ended(ended)
    except FacelearnError as error:
        print(f"facelearn: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `facelearn ... | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 0
    except OSError as error:  # a read-only folder, a full disk, a file where a folder should be
        print(f"facelearn: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facelearn: interrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["build_parser", "main", "recipe_path"]
