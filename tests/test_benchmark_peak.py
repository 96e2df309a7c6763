"""benchmarks/peak.py counts a training step's FLOP as the formula does, depthwise convolutions included."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from peak import flop_per_image, matmul_peak  # noqa: E402


def conv_step(groups: int, channels: int = 32, size: int = 28):
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False)

    def step(images, labels):
        conv(images).sum().backward()

    return step, torch.randn(2, channels, size, size, requires_grad=True)


@pytest.mark.parametrize("groups", [1, 32])
def test_a_convolution_step_costs_three_times_its_products(groups):
    step, images = conv_step(groups)
    forward = 2 * 32 * (32 // groups) * 9 * 28 * 28  # multiply-adds ×2 per image: C_out·C_in/g·k²·H·W

    per_image, by_operator = flop_per_image(step, images, None)

    assert by_operator["convolution"] * 1e9 == pytest.approx(forward)
    assert by_operator["convolution_backward"] * 1e9 == pytest.approx(2 * forward)  # input and weight gradients
    assert per_image * 1e9 == pytest.approx(3 * forward)


def test_a_frozen_input_costs_no_input_gradient():
    step, images = conv_step(1)
    forward = 2 * 32 * 32 * 9 * 28 * 28

    _, by_operator = flop_per_image(step, images.detach(), None)

    assert by_operator["convolution_backward"] * 1e9 == pytest.approx(forward)


def test_the_matrix_product_peak_is_a_rate():
    assert matmul_peak(torch.float32, size=256, repeats=2) > 0.1  # GFLOP/s: any CPU does more than this
