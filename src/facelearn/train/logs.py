"""Where a run's messages go: ``train.log`` in the run directory, and TensorBoard on rank 0 only."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


class NullWriter:
    """TensorBoard for the processes other than rank 0: writes nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def run_log(path: Path):
    """The package's messages at INFO into ``path`` while the run lasts; the console keeps its level."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("facelearn")
    package_log.addHandler(handler)
    level = package_log.level
    if package_log.getEffectiveLevel() > logging.INFO:
        package_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(level)
        handler.close()
