"""A gallery's subject templates, in memory: one per subject, derived from its faces and kept in step with them.

Each template is a :class:`facelearn.deploy.fusion.Template` (the quality-weighted mean of the subject's
faces); an exact index over them answers ``fusion="mean"`` searches. A deleted subject's template goes with
its faces; after one face is deleted the template is made again from the faces kept, so nothing of the
deleted face stays.
"""

from __future__ import annotations

import numpy as np

from ..fusion import Template
from .index import ExactIndex


class SubjectTemplates:
    def __init__(self, dim: int):
        self.dim = dim
        self.templates: dict[str, Template] = {}
        self.index = ExactIndex(dim)

    def rebuild(self, names: list[str], vectors: np.ndarray, qualities: list) -> None:
        """One template per subject from its faces (rows come grouped by subject)."""
        self.templates, self.index = {}, ExactIndex(self.dim)
        starts = [i for i in range(len(names)) if i == 0 or names[i] != names[i - 1]]
        for start, end in zip(starts, starts[1:] + [len(names)], strict=False):  # none: no rows
            self.templates[names[start]] = Template.of(vectors[start:end], qualities[start:end])
        self._index(list(self.templates))

    def extend(self, subjects: list[str], embeddings: np.ndarray, qualities: list) -> None:
        """New faces (row ``i`` is a face of ``subjects[i]``) folded into their subjects' templates."""
        rows: dict[str, list[int]] = {}
        for row, name in enumerate(subjects):
            rows.setdefault(name, []).append(row)
        for name, taken in rows.items():
            faces, weights = embeddings[taken], [qualities[i] for i in taken]
            known = self.templates.get(name)
            self.templates[name] = known.extended(faces, weights) if known else Template.of(faces, weights)
        self._index(list(rows))

    def replace(self, subject: str, vectors: np.ndarray, qualities: list) -> None:
        """The subject's template made again from the faces it has kept."""
        self.templates[subject] = Template.of(vectors, qualities)
        self._index([subject])

    def remove(self, subject: str) -> None:
        self.index.remove(subject)
        self.templates.pop(subject, None)

    def _index(self, names: list[str]) -> None:
        """Put the templates of ``names`` (new or changed) into the template index."""
        for name in names:
            self.index.remove(name)
        if names:
            self.index.add(names, np.stack([self.templates[n].vector for n in names]))
