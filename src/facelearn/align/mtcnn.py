"""MTCNN (Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional
Networks", 2016): three cascaded networks, P-Net on an image pyramid, then R-Net and O-Net on the
surviving boxes, O-Net giving the five landmarks.

The networks take the parameter names and layout of facenet-pytorch's port of the original Caffe
models (``pnet.pt``, ``rnet.pt``, ``onet.pt``): RGB input scaled as (x − 127.5) / 128, and the
dense layers read the last feature map in Caffe's (width, height, channel) order. Defaults follow
the paper's code: minimum face 20 px, pyramid factor 0.709, thresholds 0.6 / 0.7 / 0.7, NMS 0.5
within a scale and 0.7 across, and "min" NMS after O-Net.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from .faces import DETECTORS, FaceDetector, Faces, nms
from .weights import load_state_dict


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).flatten(1)


class PNet(nn.Module):
    """12×12 proposal network, fully convolutional: stride 2, one 12-pixel window per output cell."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)


class RNet(nn.Module):
    """24×24 refinement network: face probability and box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(_caffe_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)


class ONet(nn.Module):
    """48×48 output network: face probability, box regression and five landmarks (x1…x5, y1…y5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_caffe_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)


def _normalise(pixels: np.ndarray) -> torch.Tensor:
    """NHWC uint8 → NCHW float in [-1, 1) as the Caffe models were trained."""
    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - 127.5) * 0.0078125


def crop_resized(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The pixels of ``box`` (zero outside the image), resized to size×size."""
    x1, y1, x2, y2 = np.floor(box[:4]).astype(int)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    canvas = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, image.shape[1]), min(y2, image.shape[0])
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


def square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares around the same centre (side = the longer side)."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    return np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1)


def regress(boxes: np.ndarray, offsets: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Apply predicted offsets, given as fractions of the box width and height."""
    size = boxes[:, 2:4] - boxes[:, :2] + (1 if plus_one else 0)
    return boxes[:, :4] + offsets * np.tile(size, 2)


@DETECTORS.register("mtcnn")
class MTCNN(FaceDetector):
    def __init__(
        self,
        weights: str | None = None,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        max_size: int = 1600,
    ) -> None:
        super().__init__(max_size)
        self.min_face_size, self.thresholds, self.factor = min_face_size, thresholds, factor
        self.pnet, self.rnet, self.onet = PNet().eval(), RNet().eval(), ONet().eval()
        for net, name in ((self.pnet, "pnet.pt"), (self.rnet, "rnet.pt"), (self.onet, "onet.pt")):
            net.load_state_dict(load_state_dict("mtcnn", name, weights))
            net.requires_grad_(False)

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales mapping the minimum face size onto P-Net's 12-pixel window."""
        scale, shorter, scales = 12 / self.min_face_size, min(height, width) * 12 / self.min_face_size, []
        while shorter >= 12:
            scales.append(scale)
            scale, shorter = scale * self.factor, shorter * self.factor
        return scales

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        """Stage 1: (N, 5) boxes + scores from P-Net over the pyramid, regressed and squared."""
        height, width = image.shape[:2]
        found = []
        for scale in self.scales(height, width):
            size = (int(width * scale + 1), int(height * scale + 1))
            resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            offsets, probability = self.pnet(_normalise(resized[None]))
            face = probability[0, 1].numpy()
            ys, xs = np.nonzero(face >= self.thresholds[0])
            if len(ys) == 0:
                continue
            cells = np.stack([xs, ys], axis=1).astype(np.float32)
            boxes = np.concatenate([np.floor((2 * cells + 1) / scale), np.floor((2 * cells + 12) / scale)], axis=1)
            scores = face[ys, xs]
            candidates = np.concatenate([boxes, scores[:, None], offsets[0].numpy()[:, ys, xs].T], axis=1)
            found.append(candidates[nms(boxes, scores, 0.5)])
        if not found:
            return np.zeros((0, 5), np.float32)
        candidates = np.concatenate(found)
        candidates = candidates[nms(candidates[:, :4], candidates[:, 4], 0.7)]
        boxes = square(regress(candidates[:, :4], candidates[:, 5:9], plus_one=False))
        return np.concatenate([boxes, candidates[:, 4:5]], axis=1)

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net keeps the boxes that are faces and corrects them."""
        crops = np.stack([crop_resized(image, box, 24) for box in boxes])
        offsets, probability = self.rnet(_normalise(crops))
        scores = probability[:, 1].numpy()
        keep = scores > self.thresholds[1]
        boxes, scores, offsets = boxes[keep, :4], scores[keep], offsets.numpy()[keep]
        picked = nms(boxes, scores, 0.7)
        boxes = square(regress(boxes[picked], offsets[picked]))
        return np.concatenate([boxes, scores[picked, None]], axis=1)

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> Faces:
        """Stage 3: O-Net's final boxes, scores and landmarks."""
        crops = np.stack([crop_resized(image, box, 48) for box in boxes])
        offsets, points, probability = (t.numpy() for t in self.onet(_normalise(crops)))
        keep = probability[:, 1] > self.thresholds[2]
        boxes, scores, offsets, points = boxes[keep, :4], probability[keep, 1], offsets[keep], points[keep]
        size = boxes[:, 2:4] - boxes[:, :2] + 1
        landmarks = np.stack(
            [size[:, :1] * points[:, :5] + boxes[:, :1] - 1, size[:, 1:2] * points[:, 5:] + boxes[:, 1:2] - 1], axis=2
        )
        boxes = regress(boxes, offsets)
        picked = nms(boxes, scores, 0.7, mode="min")
        return Faces(
            boxes[picked].astype(np.float32), scores[picked].astype(np.float32), landmarks[picked].astype(np.float32)
        )

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> Faces:
        boxes = self._proposals(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        if not len(boxes):
            return Faces.empty()
        return self._output(image, boxes)
