"""1:1 verification the way the field reports it: insightface's LFW-style 10-fold protocol.

Exactly as ``recognition/arcface_torch/eval/verification.py`` ``evaluate``: squared L2 distance
of unit embeddings (float32), "same" iff distance < threshold; contiguous folds
(``KFold(10, shuffle=False)``), or stratified ones on request (``facelearn.data.folds``; a
training split without both kinds of pair is refused either way); for each fold the first best
threshold of ``arange(0, 4, 0.01)`` on the other nine folds is applied to the held-out fold.
VAL@FAR = 1e-3 uses the ``arange(0, 4, 0.001)`` grid and linear interpolation between the two
grid thresholds that bracket the target FAR (what scipy 1.8.1's ``interp1d`` computed for the
published numbers; newer scipy raises on the repeated FARs). Counting uses sorted distances and
``searchsorted``, so 6,000 pairs take milliseconds. Score metrics (AUC, EER, TAR@FAR) use the
cosine similarity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.folds import fold_assignment, fold_bounds, split_name
from .metrics import auc, equal_error_rate, roc_curve, tar_at_far

__all__ = ["VerificationResult", "evaluate_pairs", "fold_bounds", "squared_distances"]  # fold_bounds: data.folds

ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)


@dataclass
class VerificationResult:
    num_pairs: int
    accuracy: float  # mean of the fold accuracies
    accuracy_std: float  # np.std over folds (ddof 0), as insightface
    fold_accuracies: list[float]
    fold_thresholds: list[float]  # squared L2 thresholds chosen on the training folds
    threshold_cosine: float  # best threshold on all pairs, as a cosine: "same" iff cos > it
    val: float  # TAR at FAR = 1e-3, insightface VAL protocol (10-fold)
    val_std: float
    far: float
    auc: float | None  # None when the set lacks genuine or impostor pairs
    eer: float | None
    tar_at_far: dict[str, float] = field(default_factory=dict)  # IJB closest-FPR rule
    xnorm: float | None = None  # mean un-normalised embedding norm
    mean_cosine_genuine: float | None = None  # E[S+] over the genuine pairs
    mean_cosine_impostor: float | None = None  # E[S-] over the impostor pairs
    # FNMR at FMR = 1e-3 as the lowest-quality pairs (smaller raw embedding norm) are dropped, 5 % steps
    error_versus_reject: list[dict] | None = None
    fold_split: str = "contiguous"  # how the pairs were split into folds: contiguous or stratified

    def to_dict(self) -> dict:
        return asdict(self)


def squared_distances(embeddings1: np.ndarray, embeddings2: np.ndarray) -> np.ndarray:
    """float32 squared L2 distance of unit embeddings, as insightface computes it (embeddings
    that are not unit-norm are normalised first)."""
    e1 = _unit(np.asarray(embeddings1, np.float32))
    e2 = _unit(np.asarray(embeddings2, np.float32))
    return np.sum(np.square(np.subtract(e1, e2)), 1)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if np.allclose(norms, 1.0, atol=1e-4):
        return x
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)[:, None]


class _Counts:
    """Per-fold sorted distances, to count "dist < t" for many thresholds at once."""

    def __init__(self, dist: np.ndarray, issame: np.ndarray, assignment: list[np.ndarray]):
        self.pos = [np.sort(dist[fold][issame[fold]]) for fold in assignment]
        self.neg = [np.sort(dist[fold][~issame[fold]]) for fold in assignment]

    def below(self, thresholds: np.ndarray, folds: list[int]) -> tuple[np.ndarray, np.ndarray, int, int]:
        tp = sum(np.searchsorted(self.pos[f], thresholds, side="left") for f in folds)
        fp = sum(np.searchsorted(self.neg[f], thresholds, side="left") for f in folds)
        return tp, fp, sum(len(self.pos[f]) for f in folds), sum(len(self.neg[f]) for f in folds)


def _accuracy(tp, fp, n_pos, n_neg):
    return (tp + (n_neg - fp)) / (n_pos + n_neg)


def _val_threshold(far_train: np.ndarray, target: float) -> float:
    if far_train.max() < target:
        return 0.0
    upper = int(np.flatnonzero(far_train >= target)[0])
    if far_train[upper] == target or upper == 0:
        return float(VAL_THRESHOLDS[upper])
    lower = upper - 1
    t = (target - far_train[lower]) / (far_train[upper] - far_train[lower])
    return float(VAL_THRESHOLDS[lower] + t * (VAL_THRESHOLDS[upper] - VAL_THRESHOLDS[lower]))


def evaluate_pairs(
    embeddings1: np.ndarray,
    embeddings2: np.ndarray,
    issame: np.ndarray,
    folds: int = 10,
    far_target: float = 1e-3,
    tar_fars: tuple[float, ...] = (1e-3, 1e-4),
    stratify: bool = False,
) -> VerificationResult:
    """The k-fold protocol over contiguous folds, or stratified ones (``stratify``); raises
    :class:`~facelearn.errors.DataError` where a fold's training split lacks a kind of pair."""
    issame = np.asarray(issame, bool)
    assignment = fold_assignment(issame, folds, stratify)
    dist = squared_distances(embeddings1, embeddings2).astype(np.float64)
    counts = _Counts(dist, issame, assignment)
    fold_acc, fold_thr, vals, fars = [], [], [], []
    for k in range(folds):
        train = [f for f in range(folds) if f != k]
        acc_train = _accuracy(*counts.below(ACCURACY_THRESHOLDS, train))
        best = float(ACCURACY_THRESHOLDS[int(np.argmax(acc_train))])
        fold_thr.append(best)
        fold_acc.append(float(_accuracy(*counts.below(np.array([best]), [k]))[0]))
        _, fp, _, n_neg = counts.below(VAL_THRESHOLDS, train)
        threshold = _val_threshold(fp / n_neg if n_neg else np.zeros(len(VAL_THRESHOLDS)), far_target)
        tp, fp, n_pos, n_neg = counts.below(np.array([threshold]), [k])
        vals.append(float(tp[0] / n_pos) if n_pos else 0.0)
        fars.append(float(fp[0] / n_neg) if n_neg else 0.0)

    all_folds = list(range(folds))
    best_all = float(ACCURACY_THRESHOLDS[int(np.argmax(_accuracy(*counts.below(ACCURACY_THRESHOLDS, all_folds))))])
    n_neg, n_pos = int((~issame).sum()), int(issame.sum())
    auc_value = eer = None  # undefined without both genuine and impostor pairs
    tars = {}
    if n_neg and n_pos:
        fpr, tpr, _ = roc_curve(1.0 - dist / 2.0, issame)
        auc_value, eer = auc(fpr, tpr), equal_error_rate(fpr, tpr)
        tars = {f"{far:g}": tar_at_far(fpr, tpr, far) for far in tar_fars if n_neg * far >= 1}
    return VerificationResult(
        num_pairs=len(issame),
        accuracy=float(np.mean(fold_acc)),
        accuracy_std=float(np.std(fold_acc)),
        fold_accuracies=fold_acc,
        fold_thresholds=fold_thr,
        threshold_cosine=1.0 - best_all / 2.0,
        val=float(np.mean(vals)),
        val_std=float(np.std(vals)),
        far=float(np.mean(fars)),
        auc=auc_value,
        eer=eer,
        tar_at_far=tars,
        fold_split=split_name(stratify),
    )
