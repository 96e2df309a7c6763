"""IJB-B / IJB-C protocols on template features: 1:1 template verification and 1:N identification.

* 1:1: the cosine of each listed template pair; TAR at FAR 1e-6 … 1e-1 by either rule —
  ``"at_most"`` (default: the best TAR whose FAR does not exceed the target) or ``"closest"``
  (insightface's ``eval_ijbc.py``: the ROC point nearest the target on scikit-learn's ROC with
  collinear points dropped, which may lie above it). A template id that the pair list names but no
  image belongs to is an error; ``unknown_template="row0"`` scores it as insightface does, against
  the first template.
* 1:N: open set per gallery (IJB-C G1/G2, IJB-B S1/S2), then averaged (``ijb_evals.py``): mated
  probes are those enrolled in that gallery; every other probe is non-mated.
  :func:`merged_gallery_reference` reproduces ``ijb_1n.py`` (G1 ∪ G2, closed set, its pooled
  "TPIR at FAR"), kept for comparing with numbers computed by that script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError
from .identification import IdentificationResult, ThresholdRule, identify, mate_columns
from .metrics import auc, closest_point, roc_curve, tar_at_far, tar_at_most_far

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
TarRule = Literal["at_most", "closest"]


def template_rows(template_ids: np.ndarray, wanted: np.ndarray, unknown: Literal["error", "row0"], what: str):
    """Rows of ``wanted`` ids in the sorted ``template_ids``; unknown ids are an error or row 0."""
    wanted = np.asarray(wanted, np.int64)
    rows = np.clip(np.searchsorted(template_ids, wanted), 0, len(template_ids) - 1)
    missing = template_ids[rows] != wanted
    if missing.any():
        if unknown == "row0":
            return np.where(missing, 0, rows)
        names = ", ".join(str(t) for t in np.unique(wanted[missing])[:5])
        raise DataError(
            f"{what} names {len(np.unique(wanted[missing]))} templates that have no images in the media list: "
            f"{names}. Check that the meta files belong together"
        )
    return rows


def pair_scores(
    template_ids: np.ndarray,
    features: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    unknown_template: Literal["error", "row0"] = "error",
) -> np.ndarray:
    """Cosine of each template pair (``features`` unit rows, in ``template_ids`` order)."""
    rows1 = template_rows(template_ids, first, unknown_template, "the pair list")
    rows2 = template_rows(template_ids, second, unknown_template, "the pair list")
    return np.sum(features[rows1] * features[rows2], -1)


@dataclass
class TemplateVerification:
    rule: str
    fars: list[float]
    tars: list[float]
    realised_fars: list[float]
    auc: float
    num_genuine: int
    num_impostor: int

    def table_row(self) -> list[str]:
        return [f"{100 * t:.2f}" for t in self.tars]


def verification_table(
    scores: np.ndarray, labels: np.ndarray, fars: tuple[float, ...] = FARS, rule: TarRule = "at_most"
) -> TemplateVerification:
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise DataError("template verification needs both genuine and impostor pairs")
    fpr, tpr, _ = roc_curve(scores, labels)
    tars, realised = [], []
    for far in fars:
        if rule == "closest":
            tars.append(tar_at_far(fpr, tpr, far))
            realised.append(float(fpr[closest_point(fpr, far)]))
        else:
            tar, fpr_used = tar_at_most_far(scores, labels, far)
            tars.append(tar)
            realised.append(fpr_used)
    return TemplateVerification(
        rule, list(fars), tars, realised, auc(fpr, tpr), int(labels.sum()), int((~labels).sum())
    )


def template_subjects(templates: np.ndarray, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique template ids and the subject of each (its first row, as the reference scripts)."""
    ids, first = np.unique(np.asarray(templates, np.int64), return_index=True)
    return ids, np.asarray(subjects, np.int64)[first]


def check_galleries(galleries: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    names = list(galleries)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = np.intersect1d(galleries[a][1], galleries[b][1])
            if len(shared):
                raise DataError(
                    f"galleries {a} and {b} share {len(shared)} subjects (e.g. {shared[0]}): IJB's two galleries "
                    "are disjoint, so a probe would be mated in both"
                )


def identify_templates(
    template_ids: np.ndarray,
    features: np.ndarray,
    galleries: dict[str, tuple[np.ndarray, np.ndarray]],
    probes: tuple[np.ndarray, np.ndarray],
    rule: ThresholdRule = "at_most",
    fpirs: tuple[float, ...] = (1e-2, 1e-1),
    closed_set: bool = False,
) -> dict:
    """Open-set 1:N per gallery and their mean. ``galleries``: name → (template ids, subjects) per
    template; ``probes`` likewise. With ``closed_set``, a probe enrolled in no gallery is an error."""
    check_galleries(galleries)
    probe_ids, probe_subjects = probes
    enrolled = np.isin(probe_subjects, np.concatenate([g[1] for g in galleries.values()]))
    if closed_set and not enrolled.all():
        lost = np.asarray(probe_ids)[~enrolled]
        raise DataError(
            f"closed-set identification: {len(lost)} probe templates belong to subjects in no gallery "
            f"(e.g. template {lost[0]}); use the open-set protocol or drop them"
        )
    probe_features = features[template_rows(template_ids, probe_ids, "error", "the probe list")]
    per_gallery: dict[str, IdentificationResult] = {}
    for name, (ids, subjects) in galleries.items():
        gallery_features = features[template_rows(template_ids, ids, "error", f"gallery {name}")]
        mates = mate_columns(probe_subjects, subjects)
        per_gallery[name] = identify(probe_features @ gallery_features.T, mates, fpirs=fpirs, rule=rule)
    results = list(per_gallery.values())
    counts = {k: sum(r.rank_counts[k] for r in results) for k in results[0].rank_counts}
    mated = sum(r.num_mated for r in results)
    return {
        "galleries": {name: r.to_dict() for name, r in per_gallery.items()},
        "num_probes": len(probe_ids),
        "cmc": {k: c / mated for k, c in counts.items()},  # over the mated probes of both galleries
        "cmc_over_all_probes": {k: c / len(probe_ids) for k, c in counts.items()},  # ijb_evals' mean top-k
        "fpir": list(fpirs),
        "tpir": [float(np.mean([r.tpir[i] for r in results])) for i in range(len(fpirs))],
        "threshold_rule": rule,
    }


def merged_gallery_reference(
    probe_features: np.ndarray, probe_subjects: np.ndarray, gallery_features: np.ndarray, gallery_subjects: np.ndarray
) -> dict:
    """``ijb_1n.py``: one merged gallery, every probe enrolled; top-k over all probes; its "TPIR at
    FAR" thresholds the k = ⌈Q·far⌉-th largest of all pooled non-mate scores and ignores rank."""
    mates = mate_columns(probe_subjects, gallery_subjects)
    if (mates < 0).any():
        raise DataError(f"ijb_1n needs every probe enrolled; {int((mates < 0).sum())} are not")
    scores = probe_features @ gallery_features.T
    rows = np.arange(len(mates))
    mate_scores = scores[rows, mates]
    rank = np.sum(scores >= mate_scores[:, None], 1)
    nonmate = np.ones_like(scores, bool)
    nonmate[rows, mates] = False
    pooled = np.sort(scores[nonmate])[::-1]
    result = {f"top{k}_count": int(np.sum(rank <= k)) for k in (1, 5, 10)}
    result["thresholds"], result["tpir"] = [], []
    for far in (0.01, 0.1):
        threshold = float(pooled[math.ceil(len(mates) * far) - 1])
        result["thresholds"].append(threshold)
        result["tpir"].append(float(np.mean(mate_scores > threshold)))
    return result
