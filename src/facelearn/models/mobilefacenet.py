"""MobileFaceNet (Chen et al., 2018) as insightface arcface_torch builds it ("mbf").

Key names and shapes follow ``recognition/arcface_torch/backbones/mobilefacenet.py`` (``width``
is its ``scale``; the default 2 with blocks (1, 4, 6, 2) is ``mbf``). The global depth-wise
convolution (GDC) spans the final map: 7×7 for the standard 112×112 input; ``input_size`` sets
it for smaller faces (the demo's 64×64).
Stages end at 56, 28, 14 and 7 pixels, matching the iResNet stages for distillation.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone


def final_map_size(input_size: int) -> int:
    """Side of the last feature map: four stride-2 stages (7 for 112×112 input)."""
    if input_size % 16:
        raise ValueError(f"input size must be a multiple of 16, got {input_size}")
    return input_size // 16


class ConvBlock(nn.Module):
    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
            nn.PReLU(out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(nn.Module):
    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """1×1 expand → 3×3 depth-wise → 1×1 linear projection, with an optional residual."""

    def __init__(self, in_c, out_c, residual=False, stride=2, groups=1):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_c, groups),
            ConvBlock(groups, groups, 3, stride, 1, groups=groups),
            LinearBlock(groups, out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, c, num_block, groups):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    def __init__(self, embedding_size: int, kernel: int = 7):
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(512, 512, kernel=kernel, groups=512),
            nn.Flatten(),
            nn.Linear(512, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(Backbone):
    """``stage_channels`` (s1, s2, s3) replaces the stage widths (64w, 64w, 128w); the fourth stage
    always ends in 512 channels. ``(64, 128, 256)`` makes every stage output the shape of the
    iResNet stage at the same depth: MobileFaceNet-R, a student for stage-wise distillation."""

    def __init__(
        self,
        embedding_size: int = 512,
        blocks=(1, 4, 6, 2),
        width: int = 2,
        input_size: int = 112,
        stage_channels: tuple[int, int, int] | None = None,
    ):
        super().__init__()
        self.embedding_size = embedding_size
        c1, c2 = 64 * width, 128 * width
        s1, s2, s3 = stage_channels or (c1, c1, c2)
        # expansion widths inside the blocks: arcface_torch's, or twice the block's output for -R
        e0, e1, e2, e3, e4 = (128, 128, 256, 512, 256) if stage_channels is None else (2 * s1, 2 * s2, *[2 * s3] * 3)
        self.layers = nn.ModuleList()
        self.layers.append(ConvBlock(3, s1, 3, 2, 1))
        if blocks[0] == 1:
            self.layers.append(ConvBlock(s1, s1, 3, 1, 1, groups=64 if stage_channels is None else s1))
        else:
            self.layers.append(Residual(s1, blocks[0], groups=e0))
        self.layers.extend(
            [
                DepthWise(s1, s2, stride=2, groups=e1),
                Residual(s2, blocks[1], groups=e1),
                DepthWise(s2, s3, stride=2, groups=e2),
                Residual(s3, blocks[2], groups=e2),
                DepthWise(s3, s3, stride=2, groups=e3),
                Residual(s3, blocks[3], groups=e4),
            ]
        )
        self.conv_sep = ConvBlock(s3, 512)
        self.features = GDC(embedding_size, final_map_size(input_size))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def stages(self):
        layers = self.layers
        return [
            lambda x: layers[1](layers[0](x)),
            lambda x: layers[3](layers[2](x)),
            lambda x: layers[5](layers[4](x)),
            lambda x: self.conv_sep(layers[7](layers[6](x))),
        ]

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.features(features)
