"""Margin heads against the reference implementations' numbers (../shared/fixtures)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import load_json
from helpers import assert_matches

from facelearn.config import HeadConfig
from facelearn.heads import (
    ArcFaceHead,
    CombinedMarginHead,
    CosFaceHead,
    NormSoftmaxHead,
    SoftmaxHead,
    SphereFaceHead,
    build_head,
)


@pytest.fixture(scope="module")
def fixture():
    return load_json("fixtures", "margin_heads.json")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "reference", ["tface_localfc_ArcFace", "curricularface_official_ArcFace", "pml_ArcFaceLoss_m0.5rad"]
)
def test_arcface_exact_gradient_thmm_matches_references(fixture, reference, dtype):
    assert_matches(ArcFaceHead(8, 5), fixture["heads"][reference], fixture, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_arcface_pml_degree_margin(fixture, dtype):
    record = fixture["heads"]["pml_ArcFaceLoss"]
    margin = math.radians(record["hyperparameters"]["margin_degrees"])
    assert_matches(ArcFaceHead(8, 5, scale=64.0, margin=margin), record, fixture, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_arcface_cos_fallback_matches_facexzoo(fixture, dtype):
    # FaceX-Zoo keeps the plain cosine (no margin) where cos θ <= cos(π − m).
    assert_matches(ArcFaceHead(8, 5, fallback="cos"), fixture["heads"]["facexzoo_ArcFace"], fixture, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_straight_through_matches_insightface_arcface_torch(fixture, dtype):
    # arcface_torch: margin under no_grad (straight-through backward) and no th/mm fallback.
    record = fixture["heads"]["insightface_CombinedMarginLoss_arcface"]
    assert_matches(ArcFaceHead(8, 5, fallback="none", gradient="straight_through"), record, fixture, dtype)
    combined = CombinedMarginHead(8, 5, m1=1.0, m2=0.5, m3=0.0, gradient="straight_through")
    assert_matches(combined, record, fixture, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "reference,margin",
    [("tface_localfc_CosFace", 0.4), ("insightface_CombinedMarginLoss_cosface", 0.4), ("pml_CosFaceLoss", 0.35)],
)
def test_cosface_matches_references(fixture, reference, margin, dtype):
    assert_matches(CosFaceHead(8, 5, scale=64.0, margin=margin), fixture["heads"][reference], fixture, dtype)
    combined = CombinedMarginHead(8, 5, m1=1.0, m2=0.0, m3=margin)
    assert_matches(combined, fixture["heads"][reference], fixture, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_am_softmax_is_cosface_with_its_own_scale(fixture, dtype):
    record = fixture["heads"]["facexzoo_AM_Softmax"]
    params = record["hyperparameters"]
    assert_matches(CosFaceHead(8, 5, scale=params["scale"], margin=params["margin"]), record, fixture, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sphereface_without_lambda_matches_pml(fixture, dtype):
    head = SphereFaceHead(8, 5, scale=1.0, margin=4, lambda_base=0.0, lambda_min=0.0)
    assert_matches(head, fixture["heads"]["pml_SphereFaceLoss"], fixture, dtype, atol=1e-4)


def test_arcface_values_follow_the_reference_table():
    # losses_reference.md §1.5 test vectors (values before the scale), m = 0.5.
    cos = torch.tensor([0.9, 0.3, -0.5, -0.9], dtype=torch.float64)
    expected = {
        "none": [0.580848, -0.194068, -0.853986, -0.998801],
        "thmm": [0.580848, -0.194068, -0.853986, -1.139713],
        "easy_margin": [0.580848, -0.194068, -0.5, -0.9],
    }
    for fallback, values in expected.items():
        head = ArcFaceHead(2, 4, fallback=fallback).double()
        got = head.target_logit(cos, torch.zeros(4, dtype=torch.long), cos)
        np.testing.assert_allclose(got.numpy(), values, atol=1e-6)


def test_arcface_exact_and_straight_through_gradients_differ_as_documented():
    # losses_reference.md §1.5 [run]: cos = (0.3, 0.1, -0.2), y = 0, s = 64: equal losses (18.8204),
    # target gradient -64.0 straight-through vs -65.81 exact.
    results = {}
    for gradient in ("exact", "straight_through"):
        head = ArcFaceHead(3, 3, gradient=gradient).double()
        cos = torch.tensor([[0.3, 0.1, -0.2]], dtype=torch.float64, requires_grad=True)
        labels = torch.tensor([0])
        target = head.target_logit(cos[:, 0], labels, cos)
        logits = torch.cat([target[:, None], cos[:, 1:]], 1) * 64
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        results[gradient] = (loss.item(), cos.grad[0, 0].item())
    assert results["exact"][0] == pytest.approx(18.8204, abs=1e-4)
    assert results["straight_through"][0] == pytest.approx(18.8204, abs=1e-4)
    assert results["straight_through"][1] == pytest.approx(-64.0, abs=1e-3)
    assert results["exact"][1] == pytest.approx(-65.81, abs=1e-2)


def test_combined_margin_applies_all_three_terms():
    head = CombinedMarginHead(2, 3, scale=1.0, m1=0.9, m2=0.4, m3=0.15).double()
    theta = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    got = head.target_logit(torch.cos(theta), torch.zeros(3, dtype=torch.long), theta)
    np.testing.assert_allclose(got.numpy(), (torch.cos(0.9 * theta + 0.4) - 0.15).numpy(), atol=1e-12)


def test_sphereface_lambda_anneals_from_base_to_min():
    head = SphereFaceHead(4, 3)
    assert head.current_lambda() == pytest.approx(1000.0)
    head.iteration.fill_(100)
    assert head.current_lambda() == pytest.approx(1000.0 / 13.0)
    head.iteration.fill_(100000)
    assert head.current_lambda() == 5.0
    # with λ the target is the λ-weighted mix of cos θ and ψ(θ)
    head.iteration.fill_(0)
    head.eval()
    cos = torch.tensor([0.5], dtype=torch.float64)
    psi = 8 * 0.5**4 - 8 * 0.5**2 + 1  # cos(4θ) at θ = 60° ∈ [π/4, π/2): k = 1 → −cos(4θ) − 2
    expected = (1000 * 0.5 + (-psi - 2)) / 1001
    assert head.double().target_logit(cos, torch.zeros(1, dtype=torch.long), cos).item() == pytest.approx(expected)


def test_softmax_and_normsoftmax():
    x = torch.randn(4, 6)
    y = torch.tensor([0, 1, 2, 1])
    softmax = SoftmaxHead(6, 3)
    expected = torch.nn.functional.cross_entropy(x @ softmax.linear.weight.T + softmax.linear.bias, y)
    assert softmax(x, y).loss.item() == pytest.approx(expected.item(), rel=1e-6)
    norm = NormSoftmaxHead(6, 3)
    cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(norm.weight).T
    assert norm(x, y).loss.item() == pytest.approx(torch.nn.functional.cross_entropy(64 * cos, y).item(), rel=1e-5)


def test_margin_is_computed_in_fp32_under_bf16_autocast():
    head = ArcFaceHead(16, 10)
    x = torch.randn(8, 16)
    y = torch.randint(0, 10, (8,))
    reference = head(x, y).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x.bfloat16(), y)
    assert out.logits.dtype == torch.float32
    assert torch.isfinite(out.loss)
    assert out.loss.item() == pytest.approx(reference.item(), rel=2e-2)


def test_perfectly_aligned_sample_has_finite_gradient():
    head = ArcFaceHead(4, 2)
    x = head.weight.detach()[:1].clone().requires_grad_(True)
    head(x, torch.tensor([0])).loss.backward()
    assert torch.isfinite(x.grad).all()


def test_build_head_rejects_options_the_head_does_not_take():
    with pytest.raises(ValueError, match="head.fallback is not an option of head 'cosface'; it takes: scale, margin"):
        build_head(HeadConfig(name="cosface", options={"fallback": "easy_margin"}), 8, 5)
    head = build_head(HeadConfig(name="arcface", options={"margin": 0.4}), 8, 5)
    assert isinstance(head, ArcFaceHead) and head.margin == 0.4
    with pytest.raises(ValueError, match="expects embeddings of shape"):
        head(torch.randn(2, 7), torch.tensor([0, 1]))
