"""Open-set decisions: the threshold an answer is taken at, what it holds for, and the answers themselves.

A threshold comes at a named false-match rate from the model's 1:1 calibration, or at a named
false-positive identification rate from the gallery's own (:mod:`facelearn.deploy.open_set`), never
at a bare cosine — except an explicit ``threshold`` for a model without calibration data: its answers
say ``"fmr": None, "calibrated": False`` (an uncalibrated threshold, its error rates unknown). Every
identification answer says which rate, fusion and gallery size it holds for.
"""

from __future__ import annotations

from ..errors import DataError
from .answers import face_fields
from .fusion import check_fusion
from .open_set import OpenSetCalibration


def check_best_fusion(fusion: str | None) -> None:
    """A 1:1 (FMR) threshold holds for the best face only: it was measured on pairs of single faces."""
    if check_fusion(fusion or "best") != "best":
        raise DataError(
            "a fused template's scores have no 1:1 (FMR) threshold: identify at an FPIR (fpir=, after "
            "facelearn calibrate-gallery) or with fusion 'best'"
        )


def fmr_rule(threshold: float, decided_at: dict) -> dict:
    """A threshold from the model's 1:1 calibration, and what it holds for (``decided_at``: the FMR)."""
    return {
        "threshold": threshold,
        **decided_at,
        "fpir": None,
        "fusion": "best",
        "calibrated_gallery_size": None,
        "calibration": None,
    }


def fpir_rule(stored: dict | None, fpir: float, fusion: str | None) -> dict:
    """The threshold at ``fpir`` from the gallery's identification calibration (``stored``), with the fusion it
    was measured with."""
    if stored is None:
        raise DataError(
            "this gallery has no identification calibration, so no threshold has a known FPIR: run facelearn "
            "calibrate-gallery GALLERY --model MODEL --strangers DIR (photos of people who are not enrolled)"
        )
    calibration = OpenSetCalibration.from_dict(stored)
    if fusion is not None and check_fusion(fusion) != calibration.fusion:
        raise DataError(
            f"this gallery's identification threshold was calibrated with fusion {calibration.fusion!r}: "
            f"identify with it, or calibrate again with --fusion {fusion}"
        )
    return {
        "threshold": calibration.threshold(fpir),
        "fmr": None,
        "calibrated": True,
        "fpir": fpir,
        "fusion": calibration.fusion,
        "calibrated_gallery_size": calibration.gallery_size,
        "calibration": calibration,
    }


def for_gallery(rule: dict, size: int) -> dict:
    """A decision rule with the gallery's size now, and a ``warning`` (None unless the gallery has grown past
    what its FPIR calibration holds for)."""
    rule["gallery_size"] = size
    calibration = rule.pop("calibration")
    rule["warning"] = calibration.warning(size) if calibration else None
    return rule


def decision(candidates: list[tuple[str, float]], rule: dict, face: dict | None, model: str) -> dict:
    """One face's answer: its candidates, the best one if it scores above the threshold (else None), and
    what the threshold holds for (FMR or FPIR, fusion, gallery size, and a warning when stale)."""
    best = candidates[0] if candidates and candidates[0][1] > rule["threshold"] else None
    return {
        **(face or face_fields(None)),
        "candidates": [{"subject": s, "score": score} for s, score in candidates],
        "subject": best[0] if best else None,  # None: unknown at this FMR / FPIR
        "threshold": rule["threshold"],
        "fmr": rule["fmr"],
        "calibrated": rule["calibrated"],
        "fpir": rule["fpir"],
        "fusion": rule["fusion"],
        "gallery_size": rule["gallery_size"],
        "calibrated_gallery_size": rule["calibrated_gallery_size"],
        "warning": rule["warning"],
        "model": model,
    }


def verdict(score: float, threshold: float, decided_at: dict, model: str) -> dict:
    """Two faces: same person or not at ``threshold``, and what it holds for."""
    return {"score": score, "same": score > threshold, "threshold": threshold, **decided_at, "model": model}
