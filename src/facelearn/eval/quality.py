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


def threshold_at_fmr(scores: np.ndarray, issame: np.ndarray, fmr: float = 1e-3) -> float:
    """The score threshold at which at most ``fmr`` of the impostor pairs are accepted (score > threshold)."""
    impostor = np.sort(scores[~issame])[::-1]
    if len(impostor) == 0:
        raise ValueError("no impostor pairs: no threshold at any FMR")
    return float(impostor[min(int(np.floor(fmr * len(impostor))), len(impostor) - 1)])


def error_versus_discard(
    scores: np.ndarray, issame: np.ndarray, quality: np.ndarray, threshold: float, fractions: np.ndarray
) -> np.ndarray:
    """The error-versus-discard characteristic (Grother & Tabassi, IEEE TPAMI 2007; ISO/IEC 29794-1): FNMR
    of the genuine pairs kept at a *fixed* threshold (the system's, set on all pairs) after discarding the
    lowest-quality ``fraction`` of all pairs, per fraction. NaN once no genuine pair is left."""
    order = np.argsort(quality, kind="stable")
    rejected = ~(scores > threshold) & issame
    curve = []
    for fraction in fractions:
        kept = order[int(round(fraction * len(order))) :]
        genuine = issame[kept].sum()
        curve.append(rejected[kept].sum() / genuine if genuine else np.nan)
    return np.asarray(curve, np.float64)


def random_discard(
    scores: np.ndarray, issame: np.ndarray, threshold: float, fractions: np.ndarray, draws: int = 200, seed: int = 0
) -> np.ndarray:
    """:func:`error_versus_discard` with the pairs discarded at random: (draws, len(fractions)) curves."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [error_versus_discard(scores, issame, rng.random(len(scores)), threshold, fractions) for _ in range(draws)]
    )


def area_under(fractions: np.ndarray, curve: np.ndarray) -> float:
    """The trapezoid area under an error-versus-discard curve (smaller is better)."""
    return float(np.trapezoid(curve, fractions))
