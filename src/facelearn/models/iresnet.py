"""iResNet (Deng et al., ArcFace, CVPR 2019): the improved residual network of insightface.

Layer names, shapes and initialisation follow insightface ``recognition/arcface_torch/backbones/
iresnet.py`` so that an arcface_torch checkpoint loads with ``load_state_dict(strict=True)``.
Block: BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN, plus the (projected) shortcut; the
first block of every stage halves the resolution. Output: BN → dropout → fc → BN1d (its weight
fixed at 1, as in insightface).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone
from .mobilefacenet import final_map_size

DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3], 200: [6, 26, 60, 6]}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(Backbone):
    def __init__(self, layers: list[int], embedding_size: int = 512, dropout: float = 0.0, input_size: int = 112):
        super().__init__()
        self.embedding_size = embedding_size
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * final_map_size(input_size) ** 2, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0, 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=2, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
        )
        layers = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn1(self.conv1(x)))

    def stages(self):
        # The stem rides with stage 1 so that every stage output is a residual stage's output.
        return [lambda x: self.layer1(self.stem(x)), self.layer2, self.layer3, self.layer4]

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.bn2(features), 1)
        return self.features(self.fc(self.dropout(x)))


def iresnet(depth: int, embedding_size: int = 512, dropout: float = 0.0, input_size: int = 112) -> IResNet:
    if depth not in DEPTHS:
        raise ValueError(f"no iResNet-{depth}; depths: {sorted(DEPTHS)}")
    return IResNet(DEPTHS[depth], embedding_size, dropout, input_size)
