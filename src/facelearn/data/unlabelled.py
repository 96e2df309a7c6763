"""Faces without identity labels beside the labelled ones (``data.unlabelled``).

A distillation term needs no label: the student can learn the teacher's embedding of any face —
for LFW, every photo of the thousands of people with a single image. The images are drawn with the
labelled ones (label −1); the margin head sees only the labelled rows. No test identity may be
among them: :func:`refuse_test_identities` names any that is.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .folder import ImageFolder
from .pairs import read_lfw_pairs

UNLABELLED = -1


class WithUnlabelled:
    def __init__(self, labelled: ImageFolder, unlabelled: ImageFolder):
        self.labelled, self.unlabelled = labelled, unlabelled
        self.root = labelled.root
        self.num_classes = labelled.num_classes
        self.labels = labelled.labels + [UNLABELLED] * len(unlabelled)

    def __len__(self) -> int:
        return len(self.labelled) + len(self.unlabelled)

    def label(self, index: int) -> int:
        return self.labels[index]

    def image(self, index: int) -> np.ndarray:
        if index < len(self.labelled):
            return self.labelled.image(index)
        return self.unlabelled.image(index - len(self.labelled))

    def teacher_keys(self) -> list[str]:
        return self.labelled.teacher_keys() + self.unlabelled.teacher_keys()


def refuse_test_identities(config) -> None:
    """An unlabelled folder (or a labelled one) holding people of an evaluation pairs list is refused, naming them."""
    test = set()
    for entry in config.eval.sets:
        if entry.kind == "pairs" and entry.path:
            test |= {name for first, _, second, _ in read_lfw_pairs(entry.path) for name in (first, second)}
    for field in ("unlabelled", "root"):
        folder = getattr(config.data, field)
        if config.data.kind != "folder" or not folder:
            continue
        shared = sorted(test & {identity for identity in ImageFolder(folder).identities})
        if shared:
            raise ConfigError(
                f"data.{field} ({folder}) holds {len(shared)} identities of the evaluation pairs "
                f"(first: {', '.join(shared[:5])}): keep test people out of every training input"
            )
