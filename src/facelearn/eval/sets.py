"""The pair sets of ``facelearn eval``: from .bin files, an LFW-style pairs list, or synthetic
unseen identities, each optionally split into DDL's easy–easy / hard–hard / easy–hard protocol.

A pairs list over whole photos (LFW's 250×250, not faces aligned at the model's size) is detected
and aligned on the fly (``align``: the detector and its options, as ``facelearn prepare`` uses
them; a photo without a face gives its centre crop, as insightface's LFW ``.bin`` does, and is
said); ``align=None`` resizes whatever the images are, as before.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ..align.prepare import PrepareOptions, crop_face
from ..config import DegradeConfig
from ..data.pairs import PairSet, degraded, pairs_from_bin, pairs_from_lfw, synthetic_pairs, with_folds
from ..errors import ConfigError

log = logging.getLogger(__name__)
ALIGNED_MAX_SIDE = 160  # aligned face crops are 96–160 px squares; a larger or oblong image is a whole photo


def evaluation_sets(
    image_size: int,
    bins: list[str] | None = None,
    pairs: str | None = None,
    root: str | None = None,
    synthetic: int | None = None,
    folds: int | None = None,
    hard_split: int | None = None,
    stratify: bool = False,
    align: PrepareOptions | None = None,
) -> list[PairSet]:
    """Every set asked for; ``synthetic`` N gives N easy and N degraded pairs of unseen identities;
    ``stratify`` gives every set stratified folds instead of contiguous ones; ``hard_split`` F adds,
    for every set, its hard–hard and easy–hard versions at 1/F resolution."""
    sets = [pairs_from_bin(path, image_size=image_size) for path in bins or []]
    if pairs:
        if not root:
            raise ConfigError("--pairs needs --root, the folder of the images")
        sets.append(lfw_pairs(pairs, root, Path(pairs).parent.name or "pairs", image_size, align))
    if synthetic is not None:
        if synthetic < 2:
            raise ConfigError(f"--synthetic needs at least 2 pairs (one same, one different), got {synthetic}")
        sets.append(synthetic_pairs(synthetic, hard=False, image_size=image_size, name="synthetic_unseen"))
        sets.append(synthetic_pairs(synthetic, hard=True, image_size=image_size, name="synthetic_unseen_hard"))
    if not sets:
        raise ConfigError("nothing to evaluate: give --bin, --pairs/--root or --synthetic")
    for pair_set in sets:
        with_folds(pair_set, folds if folds is not None else pair_set.folds, stratify)
    if hard_split is not None:
        if not 2 <= hard_split < image_size:
            raise ConfigError(f"--hard-split is a down-sampling factor from 2 to {image_size - 1}, got {hard_split}")
        sets = split_easy_hard(sets, image_size // hard_split)
    return sets


def split_easy_hard(sets: list[PairSet], hard_size: int) -> list[PairSet]:
    """Each set three times: easy–easy, hard–hard and easy–hard, hard = down-sampled to ``hard_size`` px."""
    degrade = DegradeConfig(downsample_prob=1.0, downsample_sizes=[hard_size])
    split = []
    for pairs in sets:
        split.append(replace(pairs, name=f"{pairs.name}_easy_easy"))
        split.append(replace(degraded(pairs, degrade, "both"), name=f"{pairs.name}_hard_hard"))
        split.append(replace(degraded(pairs, degrade, "second"), name=f"{pairs.name}_easy_hard"))
    return split


def looks_aligned(shape: tuple[int, ...]) -> bool:
    height, width = shape[:2]
    return max(height, width) <= ALIGNED_MAX_SIDE and max(height, width) <= 1.1 * min(height, width)


def lfw_pairs(pairs: str, root: str, name: str, image_size: int, align: PrepareOptions | None) -> PairSet:
    """A pairs list over aligned faces (resized to ``image_size``), or over whole photos, detected and aligned
    with ``align``'s detector (None: resized as they are)."""
    photos = pairs_from_lfw(pairs, root, name, None)
    first = photos.load(0).shape
    if align is None or looks_aligned(first):
        return pairs_from_lfw(pairs, root, name, image_size)
    log.warning(
        "%s holds whole photos (%d×%d), not aligned faces: each is detected (%s) and aligned at %d×%d "
        "(--no-detect: resized as they are; facelearn prepare --pairs writes a .bin once for many evaluations)",
        root, first[1], first[0], align.detector, image_size, image_size,
    )  # fmt: skip
    return detected_pairs(photos, replace(align, size=image_size, no_face="center"))


def detected_pairs(photos: PairSet, options: PrepareOptions) -> PairSet:
    """The same pairs, each photo's face detected and aligned (its centre crop where none is found, counted)."""
    detector = options.build_detector()  # missing or tampered weights: one error before any photo is read
    missed: set[int] = set()

    def load(index: int):
        face, found = crop_face(photos.load(index), options, detector)
        if not found and index not in missed:
            missed.add(index)
            log.warning("no face found in image %d of %s: its centre crop is used", index, photos.name)
        return face

    return PairSet(photos.name, photos.issame, load, photos.folds, photos.stratify)
