"""The 10-fold protocol and score metrics against insightface's own numbers (fixtures/verification)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_json, shared_path

from facelearn.data.pairs import read_lfw_pairs
from facelearn.errors import DataError
from facelearn.eval.metrics import roc_curve
from facelearn.eval.verification import evaluate_pairs, fold_bounds, squared_distances


@pytest.fixture(scope="module")
def reference():
    embeddings = np.load(shared_path("fixtures", "verification", "embeddings.npy"))
    issame = np.load(shared_path("fixtures", "verification", "issame.npy"))
    return embeddings, issame, load_json("fixtures", "verification", "verification.json")


def test_squared_distances_equal_insightface_float32(reference):
    embeddings, _, _ = reference
    expected = np.load(shared_path("fixtures", "verification", "sq_l2_dist_float32.npy"))
    np.testing.assert_array_equal(squared_distances(embeddings[0::2], embeddings[1::2]), expected)


def test_ten_fold_accuracy_matches_insightface_per_fold(reference):
    embeddings, issame, ref = reference
    result = evaluate_pairs(embeddings[0::2], embeddings[1::2], issame)
    outputs = ref["evaluate_outputs"]
    np.testing.assert_allclose(result.fold_accuracies, outputs["accuracy_per_fold"], atol=1e-12)
    assert result.accuracy == pytest.approx(outputs["accuracy_mean"], abs=1e-9)
    assert result.accuracy_std == pytest.approx(outputs["accuracy_std"], abs=1e-9)
    for fold, record in enumerate(ref["per_fold"]):
        assert result.fold_thresholds[fold] == pytest.approx(record["best_threshold_sq_l2"], abs=1e-9)


def test_val_at_far_matches_insightface(reference):
    embeddings, issame, ref = reference
    result = evaluate_pairs(embeddings[0::2], embeddings[1::2], issame)
    outputs = ref["evaluate_outputs"]
    assert result.val == pytest.approx(outputs["val"], abs=1e-6)
    assert result.val_std == pytest.approx(outputs["val_std"], abs=1e-6)
    assert result.far == pytest.approx(outputs["far"], abs=1e-7)


def test_auc_and_tar_at_far_match_sklearn_and_ijb_rule(reference):
    embeddings, issame, ref = reference
    result = evaluate_pairs(embeddings[0::2], embeddings[1::2], issame)
    metrics = ref["sklearn_metrics"]
    assert result.auc == pytest.approx(metrics["roc_auc_score"], abs=1e-9)
    assert result.tar_at_far["0.001"] == pytest.approx(metrics["tpr_at_fpr_1e-3"], abs=1e-12)
    assert "0.0001" not in result.tar_at_far  # 3,000 impostor pairs cannot measure FAR 1e-4
    cosine = np.load(shared_path("fixtures", "verification", "cosine_similarity.npy"))
    fpr, _, _ = roc_curve(cosine, issame)
    assert len(fpr) == metrics["roc_curve_num_points"]
    wide = evaluate_pairs(embeddings[0::2], embeddings[1::2], issame, tar_fars=(1e-3, 1e-2, 1e-1))
    for far in ("0.001", "0.01", "0.1"):
        assert wide.tar_at_far[far] == pytest.approx(metrics["tpr_at_fpr_closest_rule"][far]["tpr"], abs=1e-12)


def test_eer_and_threshold_on_separable_scores():
    e1 = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]]
    e2 = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 2, 3, 0, 1, 2]]
    issame = np.array([True] * 5 + [False] * 5)
    result = evaluate_pairs(e1, e2, issame, folds=5)
    assert result.accuracy == 1.0
    assert result.eer == 0.0
    assert 0.0 < result.threshold_cosine < 1.0


def test_fold_bounds_follow_kfold():
    assert fold_bounds(6000, 10)[3] == (1800, 2400)
    assert fold_bounds(13, 10)[:4] == [(0, 2), (2, 4), (4, 6), (6, 7)]


def test_contiguous_folds_stay_bit_identical_to_insightface(reference):
    embeddings, issame, ref = reference
    result = evaluate_pairs(embeddings[0::2], embeddings[1::2], issame)
    outputs = ref["evaluate_outputs"]
    assert result.fold_split == "contiguous"
    assert result.fold_accuracies == outputs["accuracy_per_fold"]
    assert (result.accuracy, result.accuracy_std) == (outputs["accuracy_mean"], outputs["accuracy_std"])
    assert (result.val, result.val_std, result.far) == (outputs["val"], outputs["val_std"], outputs["far"])
    assert result.fold_thresholds == [record["best_threshold_sq_l2"] for record in ref["per_fold"]]


def test_stratified_folds_are_lfw_folds_on_lfw_official_list(reference):
    """The fixture's pairs laid out as LFW's pairs.txt (each fold 300 genuine, then 300 impostor):
    stratified folds hold the same pairs as contiguous ones, and every number is identical."""
    embeddings, issame, _ = reference
    lfw_issame = np.array([a == b for a, _, b, _ in read_lfw_pairs(shared_path("data", "lfw_a", "pairs.txt"))])
    genuine, impostor = np.flatnonzero(issame), np.flatnonzero(~issame)
    order = np.concatenate(
        [np.r_[genuine[f * 300 : (f + 1) * 300], impostor[f * 300 : (f + 1) * 300]] for f in range(10)]
    )
    np.testing.assert_array_equal(issame[order], lfw_issame)
    e1, e2 = embeddings[0::2][order], embeddings[1::2][order]
    contiguous = evaluate_pairs(e1, e2, issame[order]).to_dict()
    stratified = evaluate_pairs(e1, e2, issame[order], stratify=True).to_dict()
    assert (contiguous.pop("fold_split"), stratified.pop("fold_split")) == ("contiguous", "stratified")
    assert stratified == contiguous


def scored_pairs(cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit 2-d embedding pairs whose cosine similarities are ``cosines``."""
    angles = np.arccos(np.clip(cosines, -1.0, 1.0))
    first = np.tile(np.array([[1.0, 0.0]], np.float32), (len(cosines), 1))
    return first, np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)


def best_single_threshold_accuracy(cosines: np.ndarray, issame: np.ndarray) -> float:
    """Brute force: the best accuracy of "same iff cosine > t" over every t that changes a decision."""
    return max(float(np.mean((cosines > t) == issame)) for t in np.r_[-2.0, np.unique(cosines)])


@pytest.mark.parametrize("genuine_first", [True, False])
def test_a_label_sorted_list_with_two_folds_is_refused_or_stratified(genuine_first):
    """6,000 pairs scored about as well as LFW-a's (best threshold ~98 %), sorted by label."""
    rng = np.random.default_rng(28)
    genuine, impostor = rng.normal(0.55, 0.12, 3000), rng.normal(0.05, 0.12, 3000)  # overlapping scores
    cosines = np.r_[genuine, impostor] if genuine_first else np.r_[impostor, genuine]
    issame = np.r_[np.ones(3000, bool), np.zeros(3000, bool)][:: 1 if genuine_first else -1]
    e1, e2 = scored_pairs(cosines)
    lacking = "genuine" if genuine_first else "impostor"
    refused = rf"fold 1 of 2 \(pairs 1-3000\).*hold no {lacking}.*more folds.*shuffle.*--stratify.*stratify: true"
    with pytest.raises(DataError, match=refused):  # before: 31.7 %, silently (thresholds 0.0 and 1.81)
        evaluate_pairs(e1, e2, issame, folds=2)
    result = evaluate_pairs(e1, e2, issame, folds=2, stratify=True)
    assert result.fold_split == "stratified"
    best = best_single_threshold_accuracy(np.sum(e1 * e2, 1), issame)
    assert best > 0.97 and abs(result.accuracy - best) <= 0.005


def test_stratified_folds_need_two_pairs_of_each_kind_and_one_kind_sets_pass():
    e1, e2 = scored_pairs(np.linspace(-0.5, 0.9, 10))
    one_genuine = np.arange(10) == 9
    with pytest.raises(DataError, match="stratified fold 1 of 5 holds every genuine"):
        evaluate_pairs(e1, e2, one_genuine, folds=5, stratify=True)
    assert evaluate_pairs(e1, e2, np.zeros(10, bool), folds=5, stratify=True).auc is None  # no split can help
