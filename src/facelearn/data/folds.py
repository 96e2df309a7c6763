"""Which pairs fall in which fold of the k-fold verification protocol, and the check that every
training split can choose a threshold.

Contiguous folds (the default) are sklearn's ``KFold(k, shuffle=False)`` over the list as it is,
which is what LFW's protocol means: its list holds ten blocks of 300 genuine then 300 impostor
pairs. Stratified folds split the genuine pairs (in file order) the same way, and the impostor
pairs likewise, and give fold f both shares; on LFW's own list they hold exactly the same pairs.

A fold's threshold is the best one on the other folds, its *training split*. A training split
without genuine pairs, or without impostor pairs, picks a threshold at an end of the grid and
the fold scores nonsense (LFW's first fold alone, genuine pairs first, scored 0 % with 2 folds
at an AUC of 0.983), so
:func:`fold_assignment` refuses it, naming the fold and the fixes.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

SPLITS = ("contiguous", "stratified")


def fold_bounds(n: int, folds: int) -> list[tuple[int, int]]:
    """sklearn ``KFold(folds, shuffle=False)``: the first n % folds folds get one extra item."""
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    ends = np.cumsum(sizes)
    return [(int(end - size), int(end)) for end, size in zip(ends, sizes, strict=True)]


def split_name(stratify: bool) -> str:
    return SPLITS[int(bool(stratify))]


def fold_assignment(
    issame: np.ndarray, folds: int, stratify: bool = False, name: str | None = None
) -> list[np.ndarray]:
    """The pair indices of each fold, in file order, after checking every training split.

    A set that holds only one kind of pair is not refused (no split can help; the accuracy is
    then the share of pairs on the right side of the threshold; :func:`~facelearn.data.pairs.with_folds`
    warns).
    """
    issame = np.asarray(issame, bool)
    if stratify:
        genuine, impostor = np.flatnonzero(issame), np.flatnonzero(~issame)
        parts = zip(fold_bounds(len(genuine), folds), fold_bounds(len(impostor), folds), strict=True)
        assignment = [np.sort(np.concatenate([genuine[a:b], impostor[c:d]])) for (a, b), (c, d) in parts]
    else:
        assignment = [np.arange(a, b) for a, b in fold_bounds(len(issame), folds)]
    check_training_splits(issame, assignment, stratify, name)
    return assignment


def check_training_splits(
    issame: np.ndarray, assignment: list[np.ndarray], stratify: bool, name: str | None = None
) -> None:
    """Raise :class:`DataError` for the first fold whose training split lacks a kind of pair."""
    total_genuine = int(issame.sum())
    total_impostor = len(issame) - total_genuine
    if total_genuine == 0 or total_impostor == 0:
        return
    for number, members in enumerate(assignment, start=1):
        genuine = int(issame[members].sum())
        left = {"genuine (same-person)": total_genuine - genuine, "impostor": total_impostor - (len(members) - genuine)}
        lacking = [kind for kind, count in left.items() if count == 0]
        if lacking:
            raise DataError(_message(name, number, len(assignment), members, lacking, stratify))


def _message(name, number, folds, members, lacking, stratify) -> str:
    subject = f"pair set {name!r}: " if name else ""
    lacks = " and no ".join(lacking)
    if stratify:
        return (
            f"{subject}stratified fold {number} of {folds} holds every {lacks} pair of the set, so the other "
            f"folds, on which its threshold is chosen, hold no {lacks} pair: the set needs at least two pairs "
            "of each kind"
        )
    first, last = int(members[0]) + 1, int(members[-1]) + 1
    return (
        f"{subject}fold {number} of {folds} (pairs {first}-{last}) would choose its threshold on the other "
        f"folds, which hold no {lacks} pair (each training split needs both kinds; a list sorted by "
        "label is split into folds of one kind): use more folds, shuffle the pairs list, or use stratified folds "
        "(facelearn eval --stratify, stratify: true in a config eval set, stratify=True in Python)"
    )
