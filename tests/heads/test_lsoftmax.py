"""L-Softmax: the formula written out by hand, SphereFace when the class weights have unit norm,
a plain bias-free softmax at m = 1, and training through the engine by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import tiny_config

from facelearn.config import HeadConfig
from facelearn.heads import LSoftmaxHead, SphereFaceHead, build_head
from facelearn.train.build import build_trainer


def psi(theta: float, m: int) -> float:
    k = min(math.floor(m * theta / math.pi), m - 1)
    return (-1) ** k * math.cos(m * theta) - 2 * k


def by_hand(x: np.ndarray, w: np.ndarray, labels: np.ndarray, m: int, lam: float) -> np.ndarray:
    """Liu et al. 2016, eq. (6) with λ: f_y = (λ‖W_y‖‖x‖cos θ + ‖W_y‖‖x‖ψ(θ))/(1+λ), f_j = W_jᵀx."""
    logits = x @ w.T
    for i, y in enumerate(labels):
        norms = np.linalg.norm(w[y]) * np.linalg.norm(x[i])
        theta = math.acos(np.clip(logits[i, y] / norms, -1, 1))
        logits[i, y] = (lam * norms * math.cos(theta) + norms * psi(theta, m)) / (1 + lam)
    return logits


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_logits_and_loss_follow_the_formula(m):
    rng = np.random.default_rng(m)
    x, w = rng.normal(size=(12, 8)) * 3, rng.normal(size=(5, 8))
    labels = rng.integers(0, 5, 12)
    head = LSoftmaxHead(8, 5, margin=m, lambda_base=1000.0, lambda_gamma=0.12, lambda_power=1.0, lambda_min=5.0)
    head = head.double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    out = head(torch.from_numpy(x), torch.from_numpy(labels))  # iteration 1: λ = 1000 / 1.12
    expected = by_hand(x, w, labels, m, 1000.0 / 1.12)
    np.testing.assert_allclose(out.logits.detach().numpy(), expected, rtol=1e-9, atol=1e-9)
    shifted = expected - expected.max(1, keepdims=True)
    ce = -(shifted[np.arange(12), labels] - np.log(np.exp(shifted).sum(1))).mean()
    assert out.loss.item() == pytest.approx(ce, rel=1e-9)
    head.iteration.fill_(10**6)  # λ annealed down to λ_min
    np.testing.assert_allclose(
        head(torch.from_numpy(x), torch.from_numpy(labels)).logits.detach().numpy(),
        by_hand(x, w, labels, m, 5.0),
        rtol=1e-9,
        atol=1e-9,
    )


def test_with_unit_norm_weights_it_is_sphereface_and_at_m1_a_plain_softmax():
    torch.manual_seed(0)
    x, labels = torch.randn(10, 6, dtype=torch.float64) * 4, torch.randint(0, 4, (10,))
    lsoftmax, sphereface = LSoftmaxHead(6, 4).double(), SphereFaceHead(6, 4, scale=1.0).double()
    with torch.no_grad():
        unit = torch.nn.functional.normalize(torch.randn(4, 6, dtype=torch.float64), dim=1)
        lsoftmax.weight.copy_(unit)
        sphereface.weight.copy_(unit)
    torch.testing.assert_close(lsoftmax(x, labels).logits, sphereface(x, labels).logits, rtol=1e-12, atol=1e-12)
    plain = LSoftmaxHead(6, 4, margin=1).double()
    torch.testing.assert_close(plain(x, labels).logits, x @ plain.weight.T, rtol=1e-12, atol=1e-12)


def test_gradient_is_finite_and_partial_fc_is_refused():
    x = (torch.randn(8, 16) * 5).requires_grad_()
    LSoftmaxHead(16, 3)(x, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])).loss.backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="cannot be used with Partial FC"):
        build_head(HeadConfig(name="lsoftmax", partial_fc=True), 16, 3)


def test_trains_through_the_engine_by_name(tmp_path):
    torch.set_num_threads(1)
    summary = build_trainer(tiny_config(tmp_path, "head.name=lsoftmax", "head.margin=2", "train.steps=2")).fit()
    assert summary["step"] == 2
