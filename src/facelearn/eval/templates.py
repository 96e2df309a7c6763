"""IJB-B/C template features: many images of one subject, grouped into media, pooled into one vector.

Per image, from the model's raw outputs ``f`` (image) and ``g`` (its mirror), in float32 as
insightface's ``eval_ijbc.py`` computes them:

1. ``flip``: ``f + g`` (added, not concatenated), else ``f``;
2. ``norm_score``: keep the raw norm as a quality weight, else divide by it (after the flip sum);
3. ``detector_score``: multiply by the detector's face score (after step 2);
4. mean within each media (frames of one video, one photo), media grouped *inside* a template,
   rows in input order, media in ascending id;
5. sum over the template's media, then (float64) L2-normalise; templates in ascending id.

The flags mean what they mean in ``eval_ijbc.py`` / ``ijb_1n.py`` (``ijb_evals.py``'s
``use_norm_score`` means the opposite: there ``True`` normalises). Defaults are insightface's.

A template whose pooled vector is zero (every face score 0 with ``detector_score``) has no
direction: by default that is an error naming the template; ``zero_template="zero"`` keeps a zero
feature (score 0 against everything, as ``eval_ijbc.py``) and ``"nan"`` gives NaN (``ijb_1n.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class TemplateOptions:
    flip: bool = True  # add the mirrored image's embedding
    norm_score: bool = True  # keep each image's raw norm as its weight (eval_ijbc's use_norm_score)
    detector_score: bool = True  # weight each image by its detector (faceness) score
    zero_template: Literal["error", "zero", "nan"] = "error"

    @property
    def mode(self) -> str:
        """insightface's name of the setting, e.g. ``N1D1F1`` (eval_ijbc's meaning)."""
        return f"N{int(self.norm_score)}D{int(self.detector_score)}F{int(self.flip)}"

    @classmethod
    def from_mode(cls, mode: str, **others) -> TemplateOptions:
        if len(mode) != 6 or mode[0::2] != "NDF" or set(mode[1::2]) - {"0", "1"}:
            raise DataError(f"template mode {mode!r} is not of the form N?D?F? with 0/1 (e.g. N1D1F1)")
        return cls(flip=mode[5] == "1", norm_score=mode[1] == "1", detector_score=mode[3] == "1", **others)


ALL_MODES = [f"N{n}D{d}F{f}" for n in (1, 0) for d in (1, 0) for f in (1, 0)]


def image_vectors(
    features: np.ndarray, flip_features: np.ndarray | None, face_scores: np.ndarray | None, options: TemplateOptions
) -> np.ndarray:
    """Steps 1-3: one float32 vector per image."""
    vectors = np.asarray(features, np.float32)
    bad = ~np.isfinite(vectors).all(1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} image embeddings are NaN or infinite (first: row {int(np.argmax(bad))})")
    if options.flip:
        if flip_features is None:
            raise DataError("template option flip needs the mirrored images' embeddings")
        vectors = vectors + np.asarray(flip_features, np.float32)
    if not options.norm_score:
        norms = np.sqrt(np.sum(vectors**2, -1, keepdims=True))
        if (norms == 0).any():
            count, first = int((norms == 0).sum()), int(np.argmax(norms[:, 0] == 0))
            raise DataError(f"{count} image embeddings are zero (first: row {first}): cannot normalise them")
        vectors = vectors / norms
    if options.detector_score:
        if face_scores is None:
            raise DataError("template option detector_score needs a face score per image")
        vectors = vectors * np.asarray(face_scores, np.float32)[:, None]
    return vectors


def pool_templates(
    vectors: np.ndarray, templates: np.ndarray, medias: np.ndarray, options: TemplateOptions = TemplateOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 4-5: (sorted template ids, float64 unit template features), one row per template."""
    templates, medias = np.asarray(templates, np.int64), np.asarray(medias, np.int64)
    if not len(templates) == len(medias) == len(vectors):
        raise DataError(f"{len(vectors)} image features but {len(templates)} template ids and {len(medias)} media ids")
    bad = ~np.isfinite(vectors).all(1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} image features are NaN or infinite (first: row {int(np.argmax(bad))})")
    order = np.lexsort((medias, templates))  # stable: rows keep their input order inside a media
    vectors, templates, medias = vectors[order], templates[order], medias[order]
    new_media = np.r_[True, (templates[1:] != templates[:-1]) | (medias[1:] != medias[:-1])]
    media_starts = np.flatnonzero(new_media)
    media_ends = np.r_[media_starts[1:], len(vectors)]
    # np.mean / np.sum per group, not np.add.reduceat: reduceat adds in another order (float32 ulps)
    media_means = np.stack([vectors[a:b].mean(0) for a, b in zip(media_starts, media_ends, strict=True)])
    media_templates = templates[media_starts]
    template_starts = np.flatnonzero(np.r_[True, media_templates[1:] != media_templates[:-1]])
    template_ends = np.r_[template_starts[1:], len(media_means)]
    pooled = np.stack([media_means[a:b].sum(0) for a, b in zip(template_starts, template_ends, strict=True)])
    pooled = pooled.astype(np.float64)
    ids = media_templates[template_starts]
    norms = np.sqrt(np.einsum("ij,ij->i", pooled, pooled))
    zero = norms == 0
    if zero.any() and options.zero_template == "error":
        names = ", ".join(str(t) for t in ids[zero][:5])
        raise DataError(
            f"{int(zero.sum())} templates pool to a zero vector (every face score 0?): {names}. "
            "Fix their face scores, or choose zero_template='zero' (score 0) or 'nan' as insightface's scripts"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        if options.zero_template == "nan":
            return ids, pooled / norms[:, None]
        return ids, pooled / np.where(zero, 1.0, norms)[:, None]


def template_features(
    features: np.ndarray,
    flip_features: np.ndarray | None,
    face_scores: np.ndarray | None,
    templates: np.ndarray,
    medias: np.ndarray,
    options: TemplateOptions = TemplateOptions(),
) -> tuple[np.ndarray, np.ndarray]:
    """Image embeddings → (sorted template ids, unit template features)."""
    return pool_templates(image_vectors(features, flip_features, face_scores, options), templates, medias, options)
