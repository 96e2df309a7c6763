"""Open-set identification thresholds for one gallery: the score at a named FPIR for its size.

Identification compares a probe with all N enrolled people, so a stranger is falsely identified
when *any* of them scores above the threshold: the false-positive identification rate (FPIR)
grows with N and is not the 1:1 FMR. It is measured here the way it happens: non-mated searches
(photos of people who are not enrolled) against the gallery itself, each search's best score.

The threshold for FPIR f is the score that at most ⌊f·n⌋ of the n non-mated best scores exceed
(:func:`facelearn.eval.identification.open_set_threshold`, rule ``at_most``), with the realised
FPIR and its 95 % Wilson interval. An FPIR needs at least ``10 / f`` non-mated searches (ten false
alarms to place it), as the FMR calibration needs ten false matches; fewer is an
:class:`UnsupportedFPIR` naming the count, and nothing is stored.

The calibration holds for the gallery it was measured on: it records the gallery's size, the
model and the fusion (best face or template), and is stored in the gallery. A gallery grown past
:data:`STALE_GROWTH` times that size (FPIR rises roughly in proportion to N) gets a warning in
every answer until it is calibrated again.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from ..eval.identification import open_set_threshold
from .calibration import wilson_interval

FPIRS = (1e-2, 1e-3)
DEFAULT_FPIR = 1e-2
FALSE_ALARMS_NEEDED = 10
STALE_GROWTH = 1.25


class UnsupportedFPIR(DataError):
    """Too few non-mated searches for an asked-for FPIR."""


def searches_needed(fpir: float) -> int:
    return math.ceil(FALSE_ALARMS_NEEDED / fpir - 1e-9)


def check_fpirs(fpirs) -> tuple[float, ...]:
    fpirs = tuple(float(fpir) for fpir in fpirs)
    if not fpirs:
        raise ConfigError("calibrate at one FPIR at least (e.g. --fpir 1e-2)")
    for fpir in fpirs:
        if not 0.0 < fpir < 1.0:
            raise ConfigError(f"an FPIR is a rate strictly between 0 and 1 (e.g. 1e-2); got {fpir:g}")
    return fpirs


@dataclass
class OpenSetCalibration:
    source: str  # the non-mated searches, in words
    model: str
    fusion: str  # "best" or "mean": how subjects scored when it was measured
    gallery_size: int  # subjects enrolled when it was measured
    num_searches: int
    num_people: int  # distinct strangers behind the searches
    points: list[dict] = field(default_factory=list)  # fpir, threshold, searches_needed, realised_fpir, interval
    created: str = ""

    def threshold(self, fpir: float) -> float:
        for point in self.points:
            if math.isclose(point["fpir"], fpir, rel_tol=1e-9):
                return point["threshold"]
        calibrated = ", ".join(f"{p['fpir']:g}" for p in self.points)
        raise DataError(
            f"FPIR {fpir:g} was not calibrated for this gallery (calibrated: {calibrated}); run "
            "facelearn calibrate-gallery GALLERY --strangers DIR --fpir"
        )

    def warning(self, size: int) -> str | None:
        """In words, why the thresholds may not hold for a gallery of ``size`` subjects now; None if they do."""
        if size <= self.gallery_size * STALE_GROWTH:
            return None
        return (
            f"the identification threshold was calibrated for {self.gallery_size:,} subjects and the gallery now "
            f"holds {size:,}: its FPIR is higher than named (roughly {size / self.gallery_size:.1f}x); "
            "run facelearn calibrate-gallery again"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OpenSetCalibration:
        return cls(**data)


def held_out_interval(alarms: int, searches: int, held_out: int, level: float = 0.95) -> tuple[float, float]:
    """Where the FPIR realised on ``held_out`` new non-mated searches should fall (central ``level`` interval),
    for a threshold that ``alarms`` of ``searches`` calibration searches exceeded.

    The threshold is the (k+1)-th best of n scores, so its true FPIR is Beta(k+1, n−k) distributed, and the
    alarms among m new searches beta-binomial(m, k+1, n−k): both the calibration's and the held-out
    sample's uncertainty (searches taken as independent)."""
    a, b = alarms + 1, searches - alarms
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    x = np.arange(held_out + 1)
    log_pmf = np.array(
        [
            math.lgamma(held_out + 1)
            - math.lgamma(i + 1)
            - math.lgamma(held_out - i + 1)
            + math.lgamma(i + a)
            + math.lgamma(held_out - i + b)
            - math.lgamma(held_out + a + b)
            - log_beta
            for i in x
        ]
    )
    cdf = np.cumsum(np.exp(log_pmf))
    tail = (1 - level) / 2
    low, high = int(np.searchsorted(cdf, tail)), int(np.searchsorted(cdf, 1 - tail))
    return low / held_out, min(high, held_out) / held_out


def unsupported_message(fpirs, searches: int, people: int, source: str) -> str:
    needs = "; ".join(f"FPIR {fpir:g} needs at least {searches_needed(fpir):,}" for fpir in fpirs)
    return (
        f"{needs} non-mated searches ({FALSE_ALARMS_NEEDED}/FPIR: ten false alarms to place the threshold); "
        f"{source or 'the strangers'} gave {searches:,} (of {people:,} people). Nothing was stored: search with "
        "photos of more people who are not enrolled, or calibrate at a larger --fpir"
    )


def calibrate_open_set(
    best_scores: np.ndarray,
    fpirs=FPIRS,
    gallery_size: int = 0,
    model: str = "",
    fusion: str = "mean",
    source: str = "",
    people: int = 0,
) -> OpenSetCalibration:
    """Thresholds at ``fpirs`` from the best gallery score of each non-mated search; every FPIR asked for
    must be supported (:class:`UnsupportedFPIR` otherwise)."""
    fpirs = check_fpirs(fpirs)
    best = np.asarray(best_scores, np.float64)
    if not np.isfinite(best).all():
        raise DataError(f"{source}: {int((~np.isfinite(best)).sum())} non-mated scores are NaN or infinite")
    unsupported = [fpir for fpir in fpirs if len(best) < searches_needed(fpir)]
    if unsupported:
        raise UnsupportedFPIR(unsupported_message(unsupported, len(best), people, source))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    calibration = OpenSetCalibration(source, model, fusion, gallery_size, len(best), people, created=created)
    for fpir in fpirs:
        threshold = open_set_threshold(best, fpir, "at_most")
        alarms = int(np.sum(best > threshold))
        calibration.points.append(
            {
                "fpir": fpir,
                "threshold": threshold,
                "searches_needed": searches_needed(fpir),
                "realised_fpir": alarms / len(best),
                "fpir_interval": wilson_interval(alarms, len(best)),
            }
        )
    return calibration
