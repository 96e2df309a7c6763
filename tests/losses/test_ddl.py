"""DDL against TFace's numbers (fixtures/ddl.json) and against its own definition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import load_json, shared_path

from facelearn.losses import DDLLoss, hardest_negatives, histogram_nodes, soft_histogram

REFERENCE = {"mining": "reference", "histogram": "reference"}


def case1(dtype):
    inputs = load_json("fixtures", "ddl.json")["case1_exact"]["inputs"]
    tensors = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in inputs.items()}
    return tensors, [
        [tensors["neg_easy"], tensors["neg_hard"]],
        [tensors["p1_easy"], tensors["p1_hard"]],
        [tensors["p2_easy"], tensors["p2_hard"]],
    ]


@pytest.mark.parametrize("dtype,name", [(torch.float64, "float64"), (torch.float32, "float32")])
def test_case1_matches_tface(dtype, name):
    expected = load_json("fixtures", "ddl.json")["case1_exact"][name]
    tensors, groups = case1(dtype)
    output = DDLLoss(**REFERENCE)(*groups)
    assert output.loss.item() == pytest.approx(expected["total_loss"], abs=1e-5)
    for got, want in zip(output.negatives, expected["neg_similarities_mined"], strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-6)
    for got, want in zip(output.positives, expected["pos_similarities_kept"], strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-6)
    np.testing.assert_allclose([k.item() for k in output.kl_positive], expected["kl_pos_per_student"], rtol=1e-5)
    np.testing.assert_allclose([k.item() for k in output.kl_negative], expected["kl_neg_per_student"], rtol=1e-5)
    np.testing.assert_allclose(output.order.detach().numpy(), expected["order_loss_terms"], atol=1e-6)
    histograms = np.load(shared_path("fixtures", "ddl", f"ddl_case1_histograms_{name}.npy"))
    for branch, (negative, positive) in enumerate(output.histograms):
        np.testing.assert_allclose(negative.detach().numpy(), histograms[branch, 0], atol=1e-7)
        np.testing.assert_allclose(positive.detach().numpy(), histograms[branch, 1], atol=1e-7)
    output.loss.backward()
    for kind, keys in (("neg_features", ("neg_easy", "neg_hard")), ("pos_pair_features_first", ("p1_easy", "p1_hard"))):
        for key, want in zip(keys, expected["grads"][kind], strict=True):
            np.testing.assert_allclose(tensors[key].grad.numpy(), want, atol=1e-5)


@pytest.mark.parametrize("dtype,name", [(torch.float64, "float64"), (torch.float32, "float32")])
def test_case2_two_students_matches_tface(dtype, name):
    expected = load_json("fixtures", "ddl.json")["case2_seeded_3branch"][name]
    inputs = torch.tensor(np.load(shared_path("fixtures", "ddl", "ddl_case2_inputs.npy")), dtype=dtype)
    inputs.requires_grad_(True)
    output = DDLLoss(**REFERENCE)(list(inputs[0]), list(inputs[1]), list(inputs[2]))
    assert output.loss.item() == pytest.approx(expected["total_loss"], abs=1e-5)
    assert [len(p) for p in output.positives] == [len(p) for p in expected["pos_similarities_kept"]]
    np.testing.assert_allclose([k.item() for k in output.kl_positive], expected["kl_pos_per_student"], rtol=1e-5)
    np.testing.assert_allclose([k.item() for k in output.kl_negative], expected["kl_neg_per_student"], rtol=1e-5)
    output.loss.backward()
    grads = np.load(shared_path("fixtures", "ddl", f"ddl_case2_grads_{name}.npy"))
    np.testing.assert_allclose(inputs.grad.numpy(), grads, atol=1e-5)


def test_histograms_presets_and_kernel():
    reference = histogram_nodes("reference")
    assert len(reference) == 1000 and reference[0] == 0 and reference[-1].item() == pytest.approx(0.999)
    paper = histogram_nodes("paper", 21)
    np.testing.assert_allclose(paper.numpy(), np.linspace(-1, 1, 21), atol=1e-7)
    s = torch.tensor([0.2, 0.5])
    h = soft_histogram(s, paper, 0.1)
    manual = np.exp(-50 * (np.array([0.2, 0.5])[:, None] - np.linspace(-1, 1, 21)[None]) ** 2).sum(0)
    np.testing.assert_allclose(h.numpy(), manual / manual.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="1000 nodes"):
        histogram_nodes("reference", 50)
    with pytest.raises(ValueError, match="valid: reference, paper"):
        DDLLoss(histogram="uniform")


def test_mining_rules():
    features = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]]), dim=1)
    cos = features @ features.T
    paper = hardest_negatives(features, "paper")
    np.testing.assert_allclose(paper.numpy(), [cos[0, 2], cos[1, 2], cos[2, 0], cos[3, 1]], atol=1e-6)
    reference = hardest_negatives(features, "reference")
    np.testing.assert_allclose(reference.numpy(), [cos[0, 2], cos[1, 2], 0.0, 0.0], atol=1e-6)  # later rows, ≥ 0
    labels = torch.tensor([0, 1, 0, 2])  # the same identity is not a negative
    np.testing.assert_allclose(hardest_negatives(features, "paper", labels)[0].item(), cos[0, 1].item(), atol=1e-6)


def test_positive_threshold_is_wired_through():
    _, groups = case1(torch.float64)
    low = DDLLoss(**REFERENCE, positive_threshold=0.0)(*groups)
    high = DDLLoss(**REFERENCE, positive_threshold=0.75)(*groups)
    assert [len(p) for p in low.positives] == [4, 4]
    assert [len(p) for p in high.positives] == [4, 2]  # the hard pairs at 0.707 and 0.577 are dropped
    assert high.loss.item() != pytest.approx(low.loss.item())


def test_detach_teacher_stops_the_gradient_into_the_teacher_histograms():
    tensors, groups = case1(torch.float64)
    DDLLoss(**REFERENCE, order_weight=0.0, detach_teacher=True)(*groups).loss.backward()
    assert torch.all(tensors["neg_easy"].grad == 0) and torch.all(tensors["p1_easy"].grad == 0)
    assert tensors["neg_hard"].grad.abs().sum() > 0
    tensors, groups = case1(torch.float64)
    DDLLoss(**REFERENCE, order_weight=0.0)(*groups).loss.backward()
    assert tensors["neg_easy"].grad.abs().sum() > 0  # the reference lets it flow


def test_no_positive_left_gives_a_finite_loss_and_a_warning():
    b = torch.eye(4, dtype=torch.float64)
    singles = [b.clone().requires_grad_(), b.clone().requires_grad_()]
    opposite = [(-b).clone(), (-b).clone()]  # every pair at cosine −1: nothing kept
    with pytest.warns(RuntimeWarning) as caught:
        output = DDLLoss()(singles, [b, b], opposite)
    messages = [str(w.message) for w in caught]
    assert any("no teacher positive" in m for m in messages) and any("student group" in m for m in messages)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    assert all(torch.isfinite(s.grad).all() for s in singles)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DDLLoss()(singles, [b, b], [b, b])  # a healthy batch warns nothing
