"""The pair sets of ``facelearn eval``: from .bin files, an LFW-style pairs list, or synthetic
unseen identities, each optionally split into DDL's easy–easy / hard–hard / easy–hard protocol."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import DegradeConfig
from ..data.pairs import PairSet, degraded, pairs_from_bin, pairs_from_lfw, synthetic_pairs, with_folds
from ..errors import ConfigError


def evaluation_sets(
    image_size: int,
    bins: list[str] | None = None,
    pairs: str | None = None,
    root: str | None = None,
    synthetic: int | None = None,
    folds: int | None = None,
    hard_split: int | None = None,
    stratify: bool = False,
) -> list[PairSet]:
    """Every set asked for; ``synthetic`` N gives N easy and N degraded pairs of unseen identities;
    ``stratify`` gives every set stratified folds instead of contiguous ones; ``hard_split`` F adds,
    for every set, its hard–hard and easy–hard versions at 1/F resolution."""
    sets = [pairs_from_bin(path, image_size=image_size) for path in bins or []]
    if pairs:
        if not root:
            raise ConfigError("--pairs needs --root, the folder of the images")
        sets.append(pairs_from_lfw(pairs, root, Path(pairs).parent.name or "pairs", image_size))
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
