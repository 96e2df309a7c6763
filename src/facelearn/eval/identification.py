"""1:N identification: closed-set ranks (CMC) and open-set TPIR at FPIR against one gallery.

A *mated* probe's subject is enrolled in the gallery (one entry per subject); a *non-mated*
probe's is not. Scores are cosines of unit features.

* Rank of a mated probe = 1 + the number of non-mate gallery entries scoring **at least** its
  mate (ties count against the probe, as ``ijb_evals.py``'s strict rank-1 test does).
* Open set: a threshold is set on the non-mated probes' best scores so that at most a fraction
  FPIR of them would be (falsely) returned; TPIR = the fraction of mated probes that are rank-1
  *and* score their mate strictly above it (IJB's protocol, ``ijb_evals.py``).

Threshold rules: ``"at_most"`` (default) takes the largest count ``k = ⌊n·FPIR⌋`` of non-mated
probes allowed above and puts the threshold at the (k+1)-th best non-mated score, so the realised
FPIR never exceeds the target; ``"reference"`` is ``ijb_evals.py``'s index ``max(int(n·FPIR) − 1, 0)``,
which admits one fewer (realised FPIR 0 whenever n·FPIR < 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from ..errors import DataError

ThresholdRule = Literal["at_most", "reference"]
RANKS = (1, 5, 10)
FPIRS = (1e-2, 1e-1)


def check_features(features: np.ndarray, what: str) -> np.ndarray:
    """Finite, non-zero rows, or a :class:`DataError` naming the first bad row."""
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0:
        raise DataError(f"{what}: expected a non-empty (N, D) feature matrix, got shape {features.shape}")
    bad = ~np.isfinite(features).all(1)
    if bad.any():
        raise DataError(f"{what}: {int(bad.sum())} features are NaN or infinite (first: row {int(np.argmax(bad))})")
    zero = ~features.any(1)
    if zero.any():
        raise DataError(f"{what}: {int(zero.sum())} features are all zeros (first: row {int(np.argmax(zero))})")
    return features


def mate_columns(probe_subjects: np.ndarray, gallery_subjects: np.ndarray) -> np.ndarray:
    """Each probe's gallery column, −1 for a non-mated probe; a gallery must hold each subject once."""
    gallery_subjects = np.asarray(gallery_subjects)
    if len(gallery_subjects) == 0:
        raise DataError("the gallery is empty: enroll at least one subject")
    values, counts = np.unique(gallery_subjects, return_counts=True)
    if (counts > 1).any():
        raise DataError(
            f"the gallery holds subject {values[counts > 1][0].item()!r} {counts.max()} times; one entry each"
        )
    column = {subject: i for i, subject in enumerate(gallery_subjects.tolist())}
    return np.array([column.get(s, -1) for s in np.asarray(probe_subjects).tolist()], np.int64)


def mate_ranks(scores: np.ndarray, mates: np.ndarray) -> np.ndarray:
    """Ranks of the mated probes (rows with ``mates >= 0``) in a probes × gallery score matrix."""
    rows = np.flatnonzero(mates >= 0)
    mate_scores = scores[rows, mates[rows]]
    return np.sum(
        scores[rows] >= mate_scores[:, None], 1
    )  # the mate itself counts once: rank 1 = no non-mate ties or beats it


def open_set_threshold(nonmated_best: np.ndarray, fpir: float, rule: ThresholdRule = "at_most") -> float:
    """Score above which a non-mated probe counts as a false alarm, for a target FPIR."""
    ordered = np.sort(np.asarray(nonmated_best, np.float64))[::-1]
    n = len(ordered)
    if n == 0:
        raise DataError("open-set identification needs non-mated probes (subjects not in the gallery)")
    if rule == "reference":
        return float(ordered[max(int(n * fpir) - 1, 0)])
    allowed = int(np.floor(n * fpir + 1e-9))
    return float(ordered[allowed]) if allowed < n else -np.inf


@dataclass
class IdentificationResult:
    num_mated: int
    num_nonmated: int
    gallery_size: int
    rank_counts: dict[str, int]  # mated probes whose mate is within rank k
    cmc: dict[str, float]  # rank_counts / num_mated
    threshold_rule: str
    fpir: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    tpir: list[float] = field(default_factory=list)
    realised_fpir: list[float] = field(default_factory=list)
    curve: dict[str, list[float]] = field(default_factory=dict)  # rank → CMC; fpir → fnir, for plots

    def to_dict(self) -> dict:
        return asdict(self)


def identify(
    scores: np.ndarray,
    mates: np.ndarray,
    ranks: tuple[int, ...] = RANKS,
    fpirs: tuple[float, ...] = FPIRS,
    rule: ThresholdRule = "at_most",
) -> IdentificationResult:
    """Closed- and open-set results of a probes × gallery score matrix (``mates`` from :func:`mate_columns`)."""
    scores = np.asarray(scores, np.float64)
    mated = mates >= 0
    if not mated.any():
        raise DataError("no probe's subject is in the gallery: nothing to identify")
    rank = mate_ranks(scores, mates)
    mate_scores = scores[mated, mates[mated]]
    counts = {str(k): int(np.sum(rank <= k)) for k in ranks}
    result = IdentificationResult(
        num_mated=int(mated.sum()),
        num_nonmated=int((~mated).sum()),
        gallery_size=scores.shape[1],
        rank_counts=counts,
        cmc={k: c / int(mated.sum()) for k, c in counts.items()},
        threshold_rule=rule,
    )
    max_rank = min(scores.shape[1], 50)
    result.curve["cmc"] = [float(np.mean(rank <= k)) for k in range(1, max_rank + 1)]
    if (~mated).any():
        nonmated_best = scores[~mated].max(1)
        for fpir in fpirs:
            threshold = open_set_threshold(nonmated_best, fpir, rule)
            result.fpir.append(float(fpir))
            result.thresholds.append(threshold)
            result.tpir.append(float(np.mean((rank == 1) & (mate_scores > threshold))))
            result.realised_fpir.append(float(np.mean(nonmated_best > threshold)))
        result.curve.update(det_curve(nonmated_best, mate_scores, rank))
    return result


def det_curve(nonmated_best: np.ndarray, mate_scores: np.ndarray, rank: np.ndarray) -> dict[str, list[float]]:
    """FNIR against FPIR over every threshold a non-mated probe sets (for a DET plot)."""
    thresholds = np.sort(nonmated_best)[::-1]
    hits = np.where(rank == 1, mate_scores, -np.inf)
    fpir = np.arange(len(thresholds)) / len(thresholds)  # strictly above the k-th best: k−1 of n
    accepted = len(hits) - np.searchsorted(np.sort(hits), thresholds, side="right")  # hits strictly above each
    fnir = 1 - accepted / len(hits)
    return {"fpir": fpir.tolist(), "fnir": fnir.tolist()}
