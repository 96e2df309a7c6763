"""Identity folders: ``root/<identity>/<image>``, one folder per person, labels by sorted name."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, read_image

log = logging.getLogger(__name__)


class ImageFolder:
    def __init__(self, root: str | Path, exclude: str | Path | None = None):
        """``exclude``: a text file of image paths relative to ``root``, one a line, to leave out
        (what ``facelearn clean`` writes)."""
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset folder {self.root} does not exist: set data.root to a folder of identity folders")
        # one path a line, spaces included (a name may hold them)
        excluded = {line for line in Path(exclude).read_text().splitlines() if line.strip()} if exclude else set()
        self.identities: list[str] = []
        self.paths: list[Path] = []
        self.labels: list[int] = []
        empty = []
        for name in sorted(p.name for p in self.root.iterdir() if p.is_dir()):
            files = [
                path
                for path in sorted((self.root / name).iterdir())
                if path.suffix.lower() in IMAGE_EXTENSIONS and f"{name}/{path.name}" not in excluded
            ]
            if not files:  # an identity without images would be a class that can never be learnt
                empty.append(name)
                continue
            self.paths += files
            self.labels += [len(self.identities)] * len(files)
            self.identities.append(name)
        if empty:
            log.warning(
                "%s: %d identity folders without images left out: %s", self.root, len(empty), ", ".join(empty[:5])
            )
        if not self.paths:
            raise DataError(
                f"dataset folder {self.root} holds no images: expected {self.root}/<identity>/<image> "
                f"with extensions {', '.join(sorted(IMAGE_EXTENSIONS))}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def __len__(self) -> int:
        return len(self.paths)

    def label(self, index: int) -> int:
        return self.labels[index]

    def teacher_keys(self) -> list[str]:
        """``<identity>/<image name without extension>`` per image: how a precomputed teacher names it."""
        return [path.relative_to(self.root).with_suffix("").as_posix() for path in self.paths]

    def image(self, index: int) -> np.ndarray:
        return read_image(self.paths[index])
