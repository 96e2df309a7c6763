"""The 10-fold protocol and score metrics against insightface's own numbers (fixtures/verification)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import load_json, shared_path

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


def test_ten_fold_on_6000_pairs_is_fast(reference):
    embeddings, issame, _ = reference
    start = time.perf_counter()
    evaluate_pairs(embeddings[0::2], embeddings[1::2], issame)
    assert time.perf_counter() - start < 1.0
