"""1:N primitives, MegaFace-style distractors and their bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import load_json, need, shared_path

from facelearn.errors import DataError
from facelearn.eval import distractors as distractor_search
from facelearn.eval.distractors import clean_probes, megaface_identification, top_distractor_scores
from facelearn.eval.identification import check_features, identify, mate_columns, open_set_threshold
from facelearn.eval.ijb import identify_templates


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ranks_count_ties_against_the_probe_and_tpir_needs_rank_1_and_the_threshold():
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # mated (col 0), rank 1
            [0.5, 0.5, 0.1],  # mated (col 1), tied with a non-mate: rank 2
            [0.3, 0.2, 0.6],  # mated (col 0), rank 2
            [0.4, 0.1, 0.0],  # non-mated, best 0.4
            [0.2, 0.7, 0.1],  # non-mated, best 0.7
        ]
    )
    mates = np.array([0, 1, 0, -1, -1])
    result = identify(scores, mates, ranks=(1, 2), fpirs=(0.5,))
    assert result.rank_counts == {"1": 1, "2": 3}
    assert result.thresholds == [0.4]  # ⌊2·0.5⌋ = 1 non-mated probe may lie above: the second best
    assert result.realised_fpir == [0.5] and result.tpir == [pytest.approx(1 / 3)]
    assert identify(scores, mates, fpirs=(0.5,), rule="reference").thresholds == [0.7]  # index int(1)−1 = 0
    # DET: at the threshold set by the k-th best non-mated probe, FNIR = 1 − (rank-1 mates strictly above it) / mated
    assert result.curve["fpir"] == [0.0, 0.5] and result.curve["fnir"] == [1 - 1 / 3, 1 - 1 / 3]


def test_threshold_rules_at_the_edges():
    best = np.arange(70)[::-1] / 70.0
    assert open_set_threshold(best, 0.01, "reference") == best[0]  # realised FPIR 0
    assert open_set_threshold(best, 0.1, "at_most") == best[7]  # 7 of 70 above: 0.1 exactly
    assert open_set_threshold(best, 0.1, "reference") == best[6]
    assert open_set_threshold(best, 1.0) == -np.inf
    with pytest.raises(DataError, match="needs non-mated probes"):
        open_set_threshold(np.array([]), 0.1)


def test_bad_galleries_and_features_are_refused_by_name():
    with pytest.raises(DataError, match="the gallery is empty"):
        mate_columns(np.array([1, 2]), np.array([], np.int64))
    with pytest.raises(DataError, match="holds subject 7 2 times"):
        mate_columns(np.array([1]), np.array([7, 7]))
    features = unit(np.random.default_rng(0).normal(size=(4, 8)))
    features[2] = np.nan
    with pytest.raises(DataError, match="1 features are NaN or infinite \\(first: row 2\\)"):
        check_features(features, "probe features")
    features[2] = 0
    with pytest.raises(DataError, match="1 features are all zeros \\(first: row 2\\)"):
        check_features(features, "probe features")
    ids = np.array([1, 2, 3, 4, 5])
    features = unit(np.random.default_rng(1).normal(size=(5, 8)))
    shared = {"G1": (np.array([1]), np.array([10])), "G2": (np.array([2]), np.array([10]))}
    with pytest.raises(DataError, match="galleries G1 and G2 share 1 subjects \\(e.g. 10\\)"):
        identify_templates(ids, features, shared, (np.array([3]), np.array([10])))
    galleries = {"G1": (np.array([1]), np.array([10])), "G2": (np.array([2]), np.array([20]))}
    probes = (np.array([3, 4, 5]), np.array([10, 30, 20]))
    with pytest.raises(DataError, match="1 probe templates belong to subjects in no gallery \\(e.g. template 4\\)"):
        identify_templates(ids, features, galleries, probes, closed_set=True)
    assert identify_templates(ids, features, galleries, probes)["num_probes"] == 3  # open set takes it


def brute_force_top(queries, distractors, k, exclude=None):
    keep = distractors if exclude is None else distractors[~exclude]
    return -np.sort(-(queries @ keep.T), axis=1)[:, :k]


def test_blocked_search_and_faiss_equal_the_full_score_matrix(tmp_path):
    rng = np.random.default_rng(0)
    queries, gallery = unit(rng.normal(size=(50, 32))), unit(rng.normal(size=(5003, 32)))
    exclude = rng.random(5003) < 0.1
    np.save(tmp_path / "distractors.npy", gallery)
    on_disk = np.load(tmp_path / "distractors.npy", mmap_mode="r")  # streamed block by block
    expected = brute_force_top(queries, gallery, 10, exclude)
    blocked = top_distractor_scores(queries, on_disk, 10, "exact", exclude, block_rows=700)
    np.testing.assert_allclose(blocked, expected, atol=1e-6)
    need("faiss", "search")
    np.testing.assert_allclose(top_distractor_scores(queries, gallery, 10, "faiss", exclude), expected, atol=1e-6)
    few = top_distractor_scores(queries, gallery[:3], 5, "exact")
    assert np.isinf(few[:, 3:]).all() and np.isfinite(few[:, :3]).all()


def test_a_distractor_set_too_large_for_memory_says_so_and_streams(monkeypatch, caplog):
    need("faiss", "search")
    rng = np.random.default_rng(1)
    queries, gallery = unit(rng.normal(size=(20, 16))), unit(rng.normal(size=(3000, 16)))
    monkeypatch.setattr(distractor_search, "available_memory", lambda: 10_000)  # 10 kB free
    with caplog.at_level(logging.WARNING):
        found = top_distractor_scores(queries, gallery, 5, "faiss")
    assert "need 0.0 GB in a faiss index" in caplog.text and "exact blocked search" in caplog.text
    np.testing.assert_allclose(found, brute_force_top(queries, gallery, 5), atol=1e-6)


def test_megaface_protocol_counts_every_ordered_pair_against_the_distractors():
    e = np.eye(4, dtype=np.float32)
    # identity A: two images, 0.8 apart in cosine; identity B: three images; one distractor near A's second image
    a1, a2 = e[0], unit(np.array([[0.8, 0.6, 0, 0]]))[0]
    b = unit(np.array([[0, 0, 1, 0.1], [0, 0, 1, -0.1], [0, 0.1, 1, 0]]))
    features = np.stack([a1, a2, *b])
    identities = np.array(["A", "A", "B", "B", "B"])
    distractors = unit(np.array([[0.5, 1.0, 0, 0], [0, 0, 0, 1]]))  # cos with a2 = 0.98, with a1 = 0.45
    result = megaface_identification(features, identities, distractors, ranks=(1, 2))
    assert result["pairs"] == 2 + 6
    # probe a2 (mate a1, 0.8) loses to the first distractor: rank 2; probe a1 (mate a2, 0.8) wins; B all win
    assert result["rank_hits"] == {"1": 7, "2": 8}
    excluded = megaface_identification(features, identities, distractors, (1,), noisy_distractors=np.array([1, 0]))
    assert excluded["rank_hits"] == {"1": 8} and excluded["num_distractors"] == 1
    with pytest.raises(DataError, match="no probe identity has two images"):
        megaface_identification(features[:1], identities[:1], distractors)
    with pytest.raises(DataError, match="probe features have 4 dimensions, distractors 3"):
        megaface_identification(features, identities, distractors[:, :3])


def test_noise_cleaning_has_the_effect_of_insightface_remove_noises():
    expected = load_json("fixtures", "ijb", "reference_outputs.json")["megaface_remove_noises"]
    stored = np.load(shared_path("fixtures", "ijb", "megaface_remove_noises.npz"))
    probes = sorted(k[3:] for k in stored.files if k.startswith("in/facescrub/"))
    features = np.stack([stored[f"in/{k}"] for k in probes])
    identities = np.array([k.split("/")[1] for k in probes])
    noisy = np.array([k.rsplit("/", 1)[1] in expected["facescrub_noises"] for k in probes])
    cleaned = clean_probes(features, identities, noisy)
    for row, name in enumerate(probes):
        theirs = stored[f"out/{name}"]
        assert theirs[512] == 0.0
        if noisy[row]:  # theirs carries ±0.001 unseeded noise around the same centre
            np.testing.assert_allclose(cleaned[row], theirs[:512], atol=1e-3, rtol=0)
        else:
            np.testing.assert_array_equal(cleaned[row], theirs[:512])
    names = sorted(k[3:] for k in stored.files if k.startswith("in/megaface/"))
    noisy_distractors = np.array([n.split("/", 1)[1] in expected["megaface_noises"] for n in names])
    assert [stored[f"out/{n}"][512] == 100.0 for n in names] == noisy_distractors.tolist()  # the same ones excluded
    with pytest.raises(DataError, match="every image of probe identity 'Bob_B' is on the noise list"):
        clean_probes(features, identities, identities == "Bob_B")
