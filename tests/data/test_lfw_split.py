"""The identity-disjoint LFW split: no training identity appears in a test pair."""

from __future__ import annotations

import pytest
from conftest import shared_path

from facelearn.data.lfw_split import PAIRS_PER_FOLD, lfw_split, write_pairs
from facelearn.data.pairs import read_lfw_pairs


def test_split_of_the_real_lfw_is_identity_disjoint(tmp_path):
    lfw = shared_path("data", "lfw_a")
    train, test_pairs = lfw_split(lfw / "pairs.txt", lfw / "lfw", test_folds=(8, 9, 10))
    everything = read_lfw_pairs(lfw / "pairs.txt")
    assert test_pairs == everything[7 * PAIRS_PER_FOLD :]
    test_names = {name for n1, _, n2, _ in test_pairs for name in (n1, n2)}
    assert not test_names & set(train)
    assert all(len(list((lfw / "lfw" / name).iterdir())) >= 2 for name in train)
    assert 1100 < len(train) < 1250  # the "about 1,170 people"
    write_pairs(tmp_path / "pairs.txt", test_pairs, folds=3)
    assert read_lfw_pairs(tmp_path / "pairs.txt") == test_pairs
    assert (tmp_path / "pairs.txt").read_text().startswith("3\t300\n")


def test_bad_folds_are_refused(tmp_path):
    lfw = shared_path("data", "lfw_a")
    with pytest.raises(ValueError, match="folds of 600"):
        lfw_split(lfw / "pairs.txt", lfw / "lfw", test_folds=(11,))
