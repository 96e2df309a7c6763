"""Verification sets: N labelled pairs over 2N images (pair i = images 2i and 2i+1).

Three sources give the same :class:`PairSet`: an insightface ``.bin``, an LFW-style
``pairs.txt`` with an image root, and synthetic unseen identities (easy or degraded).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DegradeConfig, EvalSetConfig
from ..errors import DataError
from .folds import fold_assignment
from .images import decode_image, fit_size, read_image
from .synthetic import UNSEEN_IDENTITY_OFFSET, SyntheticFaces
from .transforms import HARD_DEGRADATION, Degrade
from .verification_bin import load_verification_bin

log = logging.getLogger(__name__)


@dataclass
class PairSet:
    name: str
    issame: np.ndarray  # (N,) bool
    load: Callable[[int], np.ndarray]  # image index in [0, 2N) → HWC uint8 RGB
    folds: int = 10  # folds of the protocol (LFW: 10 of 600 pairs; a 3-fold subset: 3)
    stratify: bool = False  # False: contiguous folds (LFW's); True: each fold gets its share of each kind

    @property
    def num_pairs(self) -> int:
        return len(self.issame)


def pairs_from_bin(path: str | Path, name: str | None = None, image_size: int = 112) -> PairSet:
    bins, issame = load_verification_bin(path)
    return PairSet(
        name or Path(path).stem, issame, lambda i: fit_size(decode_image(bins[i], f"{path}[{i}]"), image_size)
    )


def read_lfw_pairs(pairs_txt: str | Path) -> list[tuple[str, int, str, int]]:
    """LFW ``pairs.txt``: a header line ("10 300"), then "name i j" (same) or "name1 i name2 j"."""
    lines = Path(pairs_txt).read_text().split("\n")
    header = lines[0].split()
    if not header or len(header) > 2 or not all(field.isdigit() for field in header):
        raise DataError(
            f"{pairs_txt}:1: expected the header '<folds> <pairs per fold>' (e.g. '10 300'), got {lines[0]!r}"
        )
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) == 3:
                pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2])))
            elif len(fields) == 4:
                pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3])))
            else:
                raise ValueError
        except ValueError:
            raise DataError(
                f"{pairs_txt}:{number}: expected 'name i j' or 'name1 i name2 j' with image numbers, got {line!r}"
            ) from None
    if not pairs:
        raise DataError(f"{pairs_txt} holds no pairs (only its header): nothing to evaluate")
    return pairs


def with_folds(pairs: PairSet, folds: int, stratify: bool = False) -> PairSet:
    """Set the protocol's folds, refusing a count the pairs cannot support (it would give NaN) and
    folds whose training split lacks a kind of pair (:func:`~facelearn.data.folds.fold_assignment`),
    before anything is embedded."""
    if not 2 <= folds <= pairs.num_pairs:
        raise DataError(
            f"pair set {pairs.name!r} has {pairs.num_pairs} pairs: the number of folds must be between 2 and "
            f"{pairs.num_pairs}, got {folds}"
        )
    same = int(np.sum(pairs.issame))
    if same == 0 or same == pairs.num_pairs:
        log.warning(
            "pair set %r holds only %s-person pairs: accuracy is reported, ROC, AUC and TAR@FAR are not",
            pairs.name,
            "different" if same == 0 else "same",
        )
    fold_assignment(pairs.issame, folds, stratify, pairs.name)
    pairs.folds, pairs.stratify = folds, stratify
    return pairs


def pairs_from_lfw(pairs_txt: str | Path, root: str | Path, name: str = "lfw", image_size: int | None = 112) -> PairSet:
    """LFW-style pairs over ``root/<name>/<name>_<####>.jpg``; missing files fail here, not mid-run.
    ``image_size`` None: the photos as they are (to be detected and aligned), else resized to it."""
    root = Path(root)
    paths: list[Path] = []
    issame = []
    for name1, i, name2, j in read_lfw_pairs(pairs_txt):
        paths += [root / name1 / f"{name1}_{i:04d}.jpg", root / name2 / f"{name2}_{j:04d}.jpg"]
        issame.append(name1 == name2)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} images of {pairs_txt} are missing under {root}, e.g. {missing[0]}")
    if image_size is None:
        return PairSet(name, np.array(issame), lambda k: read_image(paths[k]))
    return PairSet(name, np.array(issame), lambda k: fit_size(read_image(paths[k]), image_size))


def degraded(pairs: PairSet, config: DegradeConfig | None = None, members: str = "both", seed: int = 0) -> PairSet:
    """The same pairs with hard images: both members degraded (hard–hard) or only the second one
    (easy–hard). Each image's degradation is fixed by (seed, index), so every evaluation sees the
    same hard images. ``config`` defaults to :data:`HARD_DEGRADATION`."""
    if members not in ("both", "second"):
        raise ValueError(f"unknown hard_members {members!r}; valid: both, second")
    degrade = Degrade(config or HARD_DEGRADATION)

    def load(index: int) -> np.ndarray:
        image = pairs.load(index)
        if members == "both" or index % 2 == 1:
            image = degrade(image, np.random.default_rng([seed, 5, index]))
        return image

    return PairSet(pairs.name, pairs.issame, load, pairs.folds, pairs.stratify)


def synthetic_pairs(
    num_pairs: int, seed: int = 0, hard: bool = False, image_size: int = 112, name: str | None = None
) -> PairSet:
    """Balanced pairs of identities never used in training (``UNSEEN_IDENTITY_OFFSET`` on).

    Pair k uses identity ``offset + 2k`` (and ``offset + 2k + 1`` for a different pair). ``hard``
    degrades both images with :data:`HARD_DEGRADATION`, deterministically per image.
    """
    rng = np.random.default_rng([seed, 4])
    issame = np.zeros(num_pairs, bool)
    issame[rng.permutation(num_pairs)[: num_pairs // 2]] = True
    faces = SyntheticFaces(1, 1, image_size, seed)

    def load(index: int) -> np.ndarray:
        pair, member = divmod(index, 2)
        identity = UNSEEN_IDENTITY_OFFSET + 2 * pair + (member if not issame[pair] else 0)
        return faces.render(identity, member)

    pairs = PairSet(name or ("synthetic_hard" if hard else "synthetic"), issame, load)
    return degraded(pairs, seed=seed) if hard else pairs


def pair_set_from_config(config: EvalSetConfig, seed: int = 0, image_size: int = 112) -> PairSet:
    if config.kind == "synthetic":
        pairs = synthetic_pairs(config.num_pairs, seed, False, image_size, config.name)
    elif config.kind == "bin":
        if not config.path:
            raise DataError(f"eval set {config.name!r}: kind 'bin' needs path (the .bin file)")
        pairs = pairs_from_bin(config.path, config.name, image_size)
    elif config.kind == "pairs":
        if not (config.path and config.root):
            raise DataError(f"eval set {config.name!r}: kind 'pairs' needs path (pairs.txt) and root (images)")
        pairs = pairs_from_lfw(config.path, config.root, config.name, image_size)
    else:
        raise DataError(f"eval set {config.name!r}: unknown kind {config.kind!r}; valid: synthetic, bin, pairs")
    with_folds(pairs, config.folds, config.stratify)
    return degraded(pairs, config.degrade, config.hard_members, seed) if config.hard else pairs
