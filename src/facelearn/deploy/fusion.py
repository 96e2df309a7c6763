"""Several photos of one person as one vector: a subject's template, or a burst of probe frames.

How a subject scores against a probe (``fusion``):

* ``"best"`` — its best face (the highest cosine of any of its faces);
* ``"mean"`` — its *template*: the quality-weighted mean of its unit embeddings, renormalised,
  ``t = Σ qᵢ eᵢ / ‖Σ qᵢ eᵢ‖`` — IJB's pooling with every photo its own media
  (:func:`facelearn.eval.templates.pool_templates`, the code that matches insightface's numbers).

The weights ``qᵢ`` are the qualities stored with the faces when every face of the subject has a
positive one, else equal weights (a weight from one scale mixed with a default would be
arbitrary). The default is ``"mean"``, chosen by measurement: docs/identification.md (on LFW-a
with dlib, from two enrolled photos on the template is ahead on rank-1 and on TPIR at FPIR 1e-2).

A template is kept as its running sums (weighted and unweighted) and face count, so a store
updates it exactly when faces are appended, and drops it with its subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..eval.templates import TemplateOptions, pool_templates

FUSIONS = ("best", "mean")
DEFAULT_FUSION = "mean"
POOLING = TemplateOptions(flip=False, norm_score=True, detector_score=False)  # unit rows, weights applied before


def check_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise ConfigError(f"fusion {fusion!r} is not one of {', '.join(FUSIONS)} (best face, or the mean template)")
    return fusion


def weights_of(qualities, count: int) -> np.ndarray | None:
    """The qualities as weights when every face has a positive, finite one; None (equal weights) otherwise."""
    if qualities is None or len(qualities) != count or any(q is None for q in qualities):
        return None
    weights = np.asarray(qualities, np.float64)
    return weights if np.isfinite(weights).all() and (weights > 0).all() else None


def fuse(embeddings: np.ndarray, qualities=None) -> np.ndarray:
    """One unit vector from (N, D) unit embeddings of one person (see the module docstring)."""
    embeddings = np.asarray(embeddings, np.float32)
    weights = weights_of(qualities, len(embeddings))
    vectors = embeddings if weights is None else embeddings * weights[:, None].astype(np.float32)
    zeros = np.zeros(len(embeddings), np.int64)
    return pool_templates(vectors, zeros, np.arange(len(embeddings)), POOLING)[1][0].astype(np.float32)


@dataclass
class Template:
    """A subject's running sums: Σ qᵢ eᵢ (while every face has a quality), Σ eᵢ, and the face count."""

    weighted: np.ndarray | None
    equal: np.ndarray
    faces: int

    @classmethod
    def of(cls, embeddings: np.ndarray, qualities=None) -> Template:
        embeddings = np.asarray(embeddings, np.float64)
        weights = weights_of(qualities, len(embeddings))
        weighted = None if weights is None else (embeddings * weights[:, None]).sum(0)
        return cls(weighted, embeddings.sum(0), len(embeddings))

    def extended(self, embeddings: np.ndarray, qualities=None) -> Template:
        more = Template.of(embeddings, qualities)
        weighted = None if self.weighted is None or more.weighted is None else self.weighted + more.weighted
        return Template(weighted, self.equal + more.equal, self.faces + more.faces)

    @property
    def vector(self) -> np.ndarray:
        total = self.weighted if self.weighted is not None else self.equal
        return (total / max(np.linalg.norm(total), 1e-12)).astype(np.float32)

    def to_dict(self) -> dict:
        weighted = None if self.weighted is None else self.weighted.tolist()
        return {"weighted": weighted, "equal": self.equal.tolist(), "faces": self.faces}

    @classmethod
    def from_dict(cls, data: dict) -> Template:
        weighted = None if data["weighted"] is None else np.asarray(data["weighted"], np.float64)
        return cls(weighted, np.asarray(data["equal"], np.float64), int(data["faces"]))
