"""IJB-B/C templates, 1:1 and 1:N against insightface's own outputs (``fixtures/ijb``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_json, shared_path

from facelearn.errors import DataError
from facelearn.eval.ijb import identify_templates, merged_gallery_reference, pair_scores, verification_table
from facelearn.eval.metrics import roc_curve
from facelearn.eval.templates import ALL_MODES, TemplateOptions, template_features

SEEDS = ("0", "1", "2")


@pytest.fixture(scope="module")
def reference():
    return load_json("fixtures", "ijb", "reference_outputs.json")


def arrays(seed: str):
    folder = shared_path("fixtures", "ijb", f"seed{seed}")
    return np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")


def templates_of(inputs, mode: str, **options):
    return template_features(
        inputs["feats"],
        inputs["flip_feats"],
        inputs["faceness"],
        inputs["templates"],
        inputs["medias"],
        TemplateOptions.from_mode(mode, **options),
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_template_features_scores_and_tar_table_match_eval_ijbc_in_every_mode(seed, reference):
    inputs, outputs = arrays(seed)
    for mode in ALL_MODES:
        expected = reference["seeds"][seed]["one_to_one"]["eval_ijbc"][mode]
        ids, features = templates_of(inputs, mode)
        assert np.array_equal(ids, outputs["unique_templates"])
        np.testing.assert_allclose(features[0], expected["template_feats_row0"], atol=1e-6, rtol=0)
        scores = pair_scores(ids, features, inputs["p1"], inputs["p2"])
        if f"eval_ijbc_template_feats_{mode}" in outputs:  # seed 0 stores all modes, seeds 1 and 2 the default
            np.testing.assert_allclose(features, outputs[f"eval_ijbc_template_feats_{mode}"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(scores, outputs[f"eval_ijbc_scores_{mode}"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(scores[:8], expected["scores_first8"], atol=1e-6, rtol=0)
        closest = verification_table(scores, inputs["label"], rule="closest")
        assert closest.table_row() == expected["table_row"][1:], mode
        assert closest.tars == [point["tpr"] for point in expected["tpr_at_fpr"]]
        assert closest.realised_fars == [point["fpr"] for point in expected["tpr_at_fpr"]]
        assert closest.auc == pytest.approx(expected["auc"], abs=1e-12)
        at_most = verification_table(scores, inputs["label"])  # the default: never above the target FAR
        assert at_most.tars == expected["harness_diag_not_reference"]["max_tpr_with_fpr_le_target"]
        assert all(used <= far for used, far in zip(at_most.realised_fars, at_most.fars, strict=True))


def test_ijb_evals_modes_are_eval_ijbc_modes_with_the_norm_flag_inverted(reference):
    inputs, _ = arrays("0")
    for mode, expected in reference["seeds"]["0"]["one_to_one"]["ijb_evals"].items():
        same = expected["same_as_eval_ijbc"]
        assert same[1] != mode[1] and same[2:] == mode[2:]  # N flipped, D and F kept
        ids, features = templates_of(inputs, same)
        scores = pair_scores(ids, features, inputs["p1"], inputs["p2"])
        table = verification_table(scores, inputs["label"], rule="closest")
        assert table.tars == expected["tpr_at_fpr"]


def test_tar_rules_on_the_hand_made_roc_cases(reference):
    cases = np.load(shared_path("fixtures", "ijb", "roc_rule_cases.npz"))
    for case, expected in reference["roc_rule_cases"].items():
        scores, labels = cases[f"{case}_score"], cases[f"{case}_label"]
        fpr, tpr, _ = roc_curve(scores, labels)
        np.testing.assert_array_equal(fpr[::-1], expected["roc_fpr_flipped"])
        np.testing.assert_array_equal(tpr[::-1], expected["roc_tpr_flipped"])
        assert verification_table(scores, labels, rule="closest").table_row() == expected["table_row"][1:], case
        at_most = verification_table(scores, labels).tars
        assert at_most == pytest.approx(expected["harness_diag_not_reference"]["max_tpr_with_fpr_le_target"], abs=1e-12)
    # case B: the reference reports 0.7 at FAR 0.1 from a point at FAR 0.12; the default says 0.4 at <= 0.1
    assert reference["roc_rule_cases"]["B_horizontal_segment"]["table_row"][-1] == "70.00"


def edge_inputs(reference):
    rows = reference["edge_case"]["rows"]
    take = lambda key, dtype: np.array([row[key] for row in rows], dtype)  # noqa: E731
    return (
        take("feat", np.float32),
        take("flip_feat", np.float32),
        np.array([float(row["faceness"]) for row in rows], np.float32),
        take("template", np.int64),
        take("media", np.int64),
    )


def test_edge_case_templates_zero_templates_and_reused_media(reference):
    feats, flips, faceness, templates, medias = edge_inputs(reference)
    pairs = np.array(reference["edge_case"]["pairs"])
    for mode, expected in reference["edge_case"]["results"].items():
        if mode[3] == "1":  # D1: T13's face scores are all 0
            with pytest.raises(DataError, match="1 templates pool to a zero vector.*: 13"):
                template_features(feats, flips, faceness, templates, medias, TemplateOptions.from_mode(mode))
        options = TemplateOptions.from_mode(mode, zero_template="zero")  # eval_ijbc: zero feature, score 0
        ids, features = template_features(feats, flips, faceness, templates, medias, options)
        np.testing.assert_allclose(features, expected["eval_ijbc_template_feats"], atol=1e-6, rtol=0)
        scores = pair_scores(ids, features, pairs[:, 0], pairs[:, 1])
        np.testing.assert_allclose(scores, expected["eval_ijbc_scores"], atol=1e-6, rtol=0)
        options = TemplateOptions.from_mode(mode, zero_template="nan")  # ijb_1n: NaN
        _, features = template_features(feats, flips, faceness, templates, medias, options)
        nan_expected = np.array(
            [[np.nan if v == "nan" else v for v in row] for row in expected["ijb_1n_template_feats"]]
        )
        np.testing.assert_allclose(features, nan_expected, atol=1e-6, rtol=0)


def test_a_pair_template_without_images_is_named_or_scored_as_row_0_on_request():
    inputs, _ = arrays("0")
    ids, features = templates_of(inputs, "N1D1F1")
    first, second = inputs["p1"].copy(), inputs["p2"].copy()
    first[5] = 99999  # no image belongs to it
    with pytest.raises(DataError, match="1 templates that have no images in the media list: 99999"):
        pair_scores(ids, features, first, second)
    scores = pair_scores(ids, features, first, second, unknown_template="row0")
    assert scores[5] == pytest.approx(features[0] @ features[np.searchsorted(ids, second[5])])


def galleries_of(inputs):
    subject = dict(zip(inputs["template_ids_all"].tolist(), inputs["template_subject_all"].tolist(), strict=True))

    def with_subjects(ids):
        ids = np.sort(ids)
        return ids, np.array([subject[t] for t in ids])

    galleries = {"G1": with_subjects(inputs["g1_templates"]), "G2": with_subjects(inputs["g2_templates"])}
    return galleries, with_subjects(inputs["probe_templates"]), with_subjects


@pytest.mark.parametrize("seed", SEEDS)
def test_open_set_identification_matches_ijb_evals(seed, reference):
    inputs, outputs = arrays(seed)
    expected = reference["seeds"][seed]["one_to_n"]
    ids, features = templates_of(inputs, "N1D1F1")  # run_model_test_1N's fixed mode
    galleries, probes, _ = galleries_of(inputs)
    fars = tuple(outputs["ijb_evals_1N_fars_cal"])
    result = identify_templates(ids, features, galleries, probes, rule="reference", fpirs=fars)
    for name in ("G1", "G2"):
        mine, theirs = result["galleries"][name], expected["ijb_evals_evaluation_1N"][name]
        assert (mine["num_mated"], mine["num_nonmated"]) == (theirs["n_mated"], theirs["n_nonmated"])
        assert [mine["rank_counts"][k] for k in ("1", "5", "10")] == [theirs[f"top{k}_count"] for k in (1, 5, 10)]
        np.testing.assert_allclose(mine["thresholds"], outputs[f"ijb_evals_1N_{name.lower()}_threshes"], atol=1e-6)
        assert mine["tpir"] == outputs[f"ijb_evals_1N_{name.lower()}_recalls"].tolist()
    assert result["tpir"] == outputs["ijb_evals_1N_mean_tpirs"].tolist()
    run = expected["ijb_evals_run_model_test_1N"]
    assert [result["cmc_over_all_probes"][k] for k in ("1", "5", "10")] == [run[f"mean_top{k}"] for k in (1, 5, 10)]
    default = identify_templates(ids, features, galleries, probes)  # FPIR <= target, realised
    for gallery in default["galleries"].values():
        assert all(r <= f for r, f in zip(gallery["realised_fpir"], gallery["fpir"], strict=True))
        assert gallery["realised_fpir"][1] == pytest.approx(7 / 70)  # the reference's index admits 6 of 70


@pytest.mark.parametrize("mode", ALL_MODES)
def test_merged_gallery_matches_ijb_1n(mode, reference):
    for seed in SEEDS if mode == "N1D1F1" else ("0",):
        inputs, _ = arrays(seed)
        expected = reference["seeds"][seed]["one_to_n"]["ijb_1n"][mode]
        ids, features = templates_of(inputs, mode)
        _, _, with_subjects = galleries_of(inputs)
        probe_ids, probe_subjects = with_subjects(inputs["probe_templates"][inputs["probe_enrolled"]])
        gallery_ids, gallery_subjects = with_subjects(np.r_[inputs["g1_templates"], inputs["g2_templates"]])
        probes, gallery = features[np.searchsorted(ids, probe_ids)], features[np.searchsorted(ids, gallery_ids)]
        result = merged_gallery_reference(probes, probe_subjects, gallery, gallery_subjects)
        assert [result[f"top{k}_count"] for k in (1, 5, 10)] == [expected[f"top{k}_count"] for k in (1, 5, 10)]
        np.testing.assert_allclose(result["thresholds"], expected["th"], atol=1e-6, rtol=0)
        assert all(f"pr = {t:.10f}" in line for t, line in zip(result["tpir"], expected["printed"][3:], strict=True))
