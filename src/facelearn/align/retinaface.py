"""RetinaFace (Deng et al., "RetinaFace: Single-stage Dense Face Localisation in the Wild", CVPR 2020)
with a MobileNet-0.25 body, in the layout of biubug6's PyTorch port (``mobilenet0.25_Final.pth``).

All activations are plain ReLU, as in the 1MB repository (Pytorch_Retinaface uses leaky ReLU 0.1).
MobileNet-0.25 gives feature maps at strides 8, 16, 32; a small FPN merges them top-down; an SSH
context module widens each; 1×1 heads predict, for two anchors per cell, face/background, box
offsets and five landmark offsets. Input is BGR minus the mean (104, 117, 123), unscaled; anchors
are 10/20, 32/64 and 128/256 pixels; offsets are decoded with variances (0.1, 0.2).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .faces import DETECTORS, FaceDetector, Faces, nms
from .weights import load_state_dict

MIN_SIZES = ((10, 20), (32, 64), (128, 256))  # the 1MB-repo training config, not Pytorch_Retinaface's
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)


def conv_bn(inputs: int, outputs: int, stride: int = 1, kernel: int = 3, relu: bool = True) -> nn.Sequential:
    """Convolution (no bias) + batch norm (+ ReLU)."""
    layers = [nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(outputs)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_dw(inputs: int, outputs: int, stride: int) -> nn.Sequential:
    """Depthwise 3×3 then pointwise 1×1, each with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(inputs, inputs, 3, stride, 1, groups=inputs, bias=False),
        nn.BatchNorm2d(inputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(inputs, outputs, 1, 1, 0, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNet at width 0.25; the three stages end at strides 8, 16 and 32 with 64, 128, 256 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 2),
            conv_dw(8, 16, 1),
            conv_dw(16, 32, 2),
            conv_dw(32, 32, 1),
            conv_dw(32, 64, 2),
            conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *(conv_dw(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...] = (64, 128, 256), channels: int = 64) -> None:
        super().__init__()
        self.output1, self.output2, self.output3 = (conv_bn(c, channels, kernel=1) for c in in_channels)
        self.merge1 = conv_bn(channels, channels)
        self.merge2 = conv_bn(channels, channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Context module: 3×3, 5×5 and 7×7 receptive fields (as stacked 3×3s), concatenated."""

    def __init__(self, inputs: int = 64, outputs: int = 64) -> None:
        super().__init__()
        self.conv3X3 = conv_bn(inputs, outputs // 2, relu=False)
        self.conv5X5_1 = conv_bn(inputs, outputs // 4)
        self.conv5X5_2 = conv_bn(outputs // 4, outputs // 4, relu=False)
        self.conv7X7_2 = conv_bn(outputs // 4, outputs // 4)
        self.conv7x7_3 = conv_bn(outputs // 4, outputs // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5 = self.conv5X5_1(x)
        branch7 = self.conv7x7_3(self.conv7X7_2(branch5))
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(branch5), branch7], dim=1))


class _Head(nn.Module):
    def __init__(self, channels: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


class RetinaFaceNet(nn.Module):
    """Returns per-anchor (box offsets (N, A, 4), face probability (N, A), landmark offsets (N, A, 10))."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MobileNetV1()
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
        self.ClassHead = nn.ModuleList(_Head(64, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(64, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(64, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = self.fpn(self.body(x))
        features = [self.ssh1(p3), self.ssh2(p4), self.ssh3(p5)]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, features, strict=True)], dim=1)
        scores = torch.cat([head(f) for head, f in zip(self.ClassHead, features, strict=True)], dim=1).softmax(-1)[
            ..., 1
        ]
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features, strict=True)], dim=1)
        return boxes, scores, landmarks


def anchors(height: int, width: int) -> np.ndarray:
    """(A, 4) anchor centres and sizes (cx, cy, w, h), as fractions of the image, in the heads' order."""
    levels = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, columns = np.meshgrid(np.arange(-(-height // step)), np.arange(-(-width // step)), indexing="ij")
        centres = np.stack([(columns.ravel() + 0.5) * step / width, (rows.ravel() + 0.5) * step / height], axis=1)
        for_cell = [np.concatenate([centres, np.tile([[s / width, s / height]], (len(centres), 1))], 1) for s in sizes]
        levels.append(np.stack(for_cell, axis=1).reshape(-1, 4))  # cell-major, then anchor size
    return np.concatenate(levels).astype(np.float32)


def decode(offsets: np.ndarray, landmark_offsets: np.ndarray, priors: np.ndarray, width: int, height: int):
    """Anchor-relative offsets → boxes (x1, y1, x2, y2) and landmarks (5, 2) in pixels."""
    centres = priors[:, :2] + offsets[:, :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(offsets[:, 2:] * VARIANCES[1])
    scale = np.array([width, height], np.float32)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) * np.tile(scale, 2)
    points = landmark_offsets.reshape(-1, 5, 2) * VARIANCES[0] * priors[:, None, 2:] + priors[:, None, :2]
    return boxes, points * scale


@DETECTORS.register("retinaface")
class RetinaFace(FaceDetector):
    def __init__(
        self,
        weights: str | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.4,
        min_face_size: int = 0,
        max_size: int = 1600,
    ) -> None:
        super().__init__(max_size)
        self.score_threshold, self.nms_threshold, self.min_face_size = score_threshold, nms_threshold, min_face_size
        self.net = RetinaFaceNet().eval()
        self.net.load_state_dict(load_state_dict("retinaface", "mobilenet0.25_Final.pth", weights))
        self.net.requires_grad_(False)
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def _priors(self, height: int, width: int) -> np.ndarray:
        if (height, width) not in self._anchors:
            self._anchors[(height, width)] = anchors(height, width)
        return self._anchors[(height, width)]

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> Faces:
        height, width = image.shape[:2]
        bgr = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).float() - torch.tensor(BGR_MEAN)
        offsets, scores, landmark_offsets = (t[0].numpy() for t in self.net(bgr.permute(2, 0, 1)[None]))
        keep = scores > self.score_threshold
        boxes, landmarks = decode(
            offsets[keep], landmark_offsets[keep], self._priors(height, width)[keep], width, height
        )
        faces = Faces(boxes, scores[keep], landmarks)
        faces = faces.select(nms(faces.boxes, faces.scores, self.nms_threshold))
        sides = np.minimum(faces.boxes[:, 2] - faces.boxes[:, 0], faces.boxes[:, 3] - faces.boxes[:, 1])
        return faces.select(sides >= self.min_face_size)
