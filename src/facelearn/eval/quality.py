"""Quality-aware evaluation: the error-versus-reject curve of MagFace (its ``eval_quality.py``).

A face's quality is its raw embedding norm (MagFace); a pair's quality is the smaller of its two.
Dropping the lowest-quality pairs in 5 % steps (0 … 95 %), a useful quality score makes the false
non-match rate at a fixed false match rate (1e-3) fall; a useless one leaves it flat.
"""

from __future__ import annotations

import numpy as np


def fnmr_at_fmr(scores: np.ndarray, issame: np.ndarray, fmr: float = 1e-3) -> float:
    """FNMR at the threshold where at most ``fmr`` of the impostor pairs are accepted (score >
    threshold); NaN without genuine or impostor pairs."""
    genuine, impostor = scores[issame], np.sort(scores[~issame])[::-1]
    if len(genuine) == 0 or len(impostor) == 0:
        return float("nan")
    allowed = int(np.floor(fmr * len(impostor)))  # false matches allowed
    threshold = impostor[min(allowed, len(impostor) - 1)]
    return float(np.mean(genuine <= threshold))


def error_versus_reject(
    scores: np.ndarray, issame: np.ndarray, quality: np.ndarray, fmr: float = 1e-3, step: float = 0.05
) -> list[dict]:
    """FNMR at ``fmr`` after dropping the lowest-quality fraction of pairs, for 0, step, … 0.95."""
    order = np.argsort(quality, kind="stable")
    curve = []
    for rejected in np.arange(0, 1 - step / 2, step):
        kept = order[int(round(rejected * len(order))) :]
        fnmr = fnmr_at_fmr(scores[kept], issame[kept], fmr)
        # None (JSON null) once no genuine or no impostor pair is left
        curve.append(
            {"rejected": round(float(rejected), 2), "pairs": len(kept), "fnmr": None if np.isnan(fnmr) else fnmr}
        )
    return curve
