"""Thresholds with an error rate behind them: the score at a false-match rate, measured on real pairs.

A threshold for FMR f is the score that at most ⌊f·n⌋ of the n impostor pairs exceed ("same"
means score > threshold). Each point records the impostor count behind it, the realised FMR and
FNMR with 95 % Wilson intervals. An FMR needs at least ``10 / f`` impostor pairs (ten false
matches to place the threshold).

An FMR the data cannot support is an error (:class:`UnsupportedFMR`) that says how many pairs it
needs, so nothing half-calibrated replaces a working calibration. The one leniency is the default
set: every FMR down to :data:`DEFAULT_FMR` must be supported, and a stricter default (1e-4) the
data cannot support is recorded as unsupported — asking for its threshold later is the same error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError, DataError

FMRS = (1e-2, 1e-3, 1e-4)
DEFAULT_FMR = 1e-3
FALSE_MATCHES_NEEDED = 10
OPTIONAL_FMRS = tuple(fmr for fmr in FMRS if fmr < DEFAULT_FMR)  # defaults kept only where the data supports them


class UnsupportedFMR(DataError):
    """The pairs are too few for an asked-for FMR: a threshold there would rest on under ten false matches."""


def impostors_needed(fmr: float) -> int:
    return math.ceil(FALSE_MATCHES_NEEDED / fmr - 1e-9)


def check_fmrs(fmrs) -> tuple[float, ...]:
    """The FMRs as floats, each a rate strictly between 0 and 1; an error naming the first that is not."""
    fmrs = tuple(float(fmr) for fmr in fmrs)
    if not fmrs:
        raise ConfigError("calibrate at one FMR at least (e.g. --fmr 1e-3)")
    for fmr in fmrs:
        if not 0.0 < fmr < 1.0:  # NaN fails this too
            raise ConfigError(f"an FMR is a false-match rate strictly between 0 and 1 (e.g. 1e-3); got {fmr:g}")
    return fmrs


def unsupported_message(fmrs: list[float], impostors: int, source: str) -> str:
    needs = "; ".join(f"FMR {fmr:g} needs at least {impostors_needed(fmr):,}" for fmr in fmrs)
    return (
        f"{needs} impostor pairs ({FALSE_MATCHES_NEEDED}/FMR: ten false matches to place the threshold); "
        f"{source or 'the pairs'} gave {impostors:,}. Nothing was stored: calibrate on more pairs "
        "(--photos DIR, identity folders of photos, uses every pair of photos of different people) or at a "
        "larger --fmr"
    )


def wilson_interval(errors: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate ``errors / trials``."""
    if trials == 0:
        return 0.0, 1.0
    p = errors / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Calibration:
    source: str  # what the pairs were, in words (a file, a folder, a .bin)
    num_genuine: int
    num_impostor: int
    points: list[dict] = field(default_factory=list)  # one per FMR, see calibrate()

    def threshold(self, fmr: float = DEFAULT_FMR) -> float:
        """The calibrated score threshold at ``fmr``; an error when the data could not support it."""
        for point in self.points:
            if math.isclose(point["fmr"], fmr, rel_tol=1e-9):
                if point["threshold"] is None:
                    raise DataError(
                        f"FMR {fmr:g} needs at least {point['impostors_needed']:,} impostor pairs to calibrate; "
                        f"{self.source} gave {self.num_impostor:,}. Calibrate on more pairs (facelearn calibrate "
                        "--photos DIR uses every pair of photos of different people)"
                    )
                return point["threshold"]
        calibrated = ", ".join(f"{p['fmr']:g}" for p in self.points)
        raise DataError(f"FMR {fmr:g} was not calibrated (calibrated: {calibrated}); run facelearn calibrate --fmr")

    def check_storable(self) -> None:
        """An error unless this calibration can stand in a model: a threshold at every FMR a user asked for.

        Only a stricter default FMR (:data:`OPTIONAL_FMRS`) may be recorded as unsupported.
        """
        if not self.points:
            raise UnsupportedFMR(f"{self.source or 'this calibration'}: no FMR was calibrated; nothing was stored")
        check_fmrs([point["fmr"] for point in self.points])
        missing = [p["fmr"] for p in self.points if p["threshold"] is None and p["fmr"] not in OPTIONAL_FMRS]
        if not missing and all(point["threshold"] is None for point in self.points):
            missing = [point["fmr"] for point in self.points]
        if missing:
            raise UnsupportedFMR(unsupported_message(missing, self.num_impostor, self.source))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(data["source"], int(data["num_genuine"]), int(data["num_impostor"]), list(data["points"]))


def calibrate(scores: np.ndarray, issame: np.ndarray, fmrs=None, source: str = "") -> Calibration:
    """Thresholds at ``fmrs`` (default :data:`FMRS`); :class:`UnsupportedFMR` when the pairs cannot support one.

    Every FMR asked for must be supported; with the default set, those down to :data:`DEFAULT_FMR`.
    """
    asked = fmrs is not None
    fmrs = check_fmrs(fmrs) if asked else FMRS
    required = fmrs if asked else [fmr for fmr in FMRS if fmr not in OPTIONAL_FMRS]
    scores, issame = np.asarray(scores, np.float64), np.asarray(issame, bool)
    if not np.isfinite(scores).all():
        raise DataError(f"{source}: {int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    genuine, impostor = np.sort(scores[issame]), np.sort(scores[~issame])[::-1]
    if len(genuine) == 0 or len(impostor) == 0:
        raise DataError(f"{source}: calibration needs pairs of the same person and of different people")
    unsupported = [fmr for fmr in required if len(impostor) < impostors_needed(fmr)]
    if unsupported:
        raise UnsupportedFMR(unsupported_message(unsupported, len(impostor), source))
    calibration = Calibration(source, len(genuine), len(impostor))
    for fmr in fmrs:
        point = {"fmr": float(fmr), "impostors_needed": impostors_needed(fmr), "threshold": None}
        if len(impostor) >= point["impostors_needed"]:
            allowed = min(math.floor(fmr * len(impostor) + 1e-9), len(impostor) - 1)
            threshold = float(impostor[allowed])
            false_matches = int(np.sum(impostor > threshold))
            false_non_matches = int(np.searchsorted(genuine, threshold, side="right"))
            point.update(
                threshold=threshold,
                realised_fmr=false_matches / len(impostor),
                fmr_interval=wilson_interval(false_matches, len(impostor)),
                fnmr=false_non_matches / len(genuine),
                fnmr_interval=wilson_interval(false_non_matches, len(genuine)),
            )
        calibration.points.append(point)
    return calibration
