"""Score-based verification metrics: ROC, AUC, EER and TAR@FAR, in plain NumPy.

``roc_curve`` follows scikit-learn's definition (distinct thresholds, descending; collinear
points dropped; a first point at (0, 0) with threshold +inf), so TAR@FAR by insightface's IJB
"closest FPR" rule gives the numbers the field reports.
"""

from __future__ import annotations

import numpy as np


def roc_curve(scores: np.ndarray, issame: np.ndarray, drop_intermediate: bool = True):
    """(fpr, tpr, thresholds) for "same" when score >= threshold."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(issame, bool)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.where(np.diff(scores))[0]
    ends = np.r_[distinct, labels.size - 1]
    tps = np.cumsum(labels)[ends].astype(np.float64)
    fps = 1 + ends - tps
    thresholds = scores[ends]
    if drop_intermediate and len(fps) > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def closest_point(fpr: np.ndarray, far: float) -> int:
    """insightface IJB rule: the ROC point whose FPR is closest to ``far``; ties go to the later
    point, i.e. the larger FPR and then the largest TPR (``eval_ijbc.py``). It may lie above ``far``."""
    distance = np.abs(fpr - far)
    return int(np.flatnonzero(distance == distance.min()).max())


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """TPR at the :func:`closest_point` to ``far``."""
    return float(tpr[closest_point(fpr, far)])


def tar_at_most_far(scores: np.ndarray, issame: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, realised FAR) at the best threshold whose FAR does not exceed ``far`` (full ROC)."""
    fpr, tpr, _ = roc_curve(scores, issame, drop_intermediate=False)
    allowed = np.flatnonzero(fpr <= far + 1e-12)
    best = allowed[np.argmax(tpr[allowed])]
    return float(tpr[best]), float(fpr[best])


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where the false-reject rate 1 − TPR meets the FPR, linearly interpolated on the ROC."""
    fnr = 1 - tpr
    gap = fnr - fpr  # decreasing from +1 to −1 along the curve
    crossing = int(np.flatnonzero(gap <= 0)[0])
    if crossing == 0:
        return float(fpr[0])
    g0, g1 = gap[crossing - 1], gap[crossing]
    t = g0 / (g0 - g1)
    return float(fpr[crossing - 1] + t * (fpr[crossing] - fpr[crossing - 1]))
