"""Five-point alignment: a least-squares similarity transform onto the ArcFace template, one warp.

The same :func:`align_face` prepares training data, evaluation pairs and faces at inference, so a
model never sees faces aligned one way in training and another way in testing — the most common
reason a published accuracy cannot be reproduced.
"""

from __future__ import annotations

import cv2
import numpy as np

# insightface's 112×112 ArcFace template (left eye, right eye, nose, left and right mouth corner);
# the 112×96 (height × width) SphereFace/CosFace template is the same points 8 px further left.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float64,
)
TEMPLATE_112x96 = ARCFACE_TEMPLATE - np.array([8.0, 0.0])


def umeyama(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) minimising Σ‖s·R·x + t − y‖².

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
    TPAMI 1991: with centred points and Σ = Yᶜᵀ·Xᶜ / N = U·D·Vᵀ, R = U·S·Vᵀ where S flips the last
    axis if det Σ < 0 (no reflections), s = tr(D·S) / σ²ₓ, t = ȳ − s·R·x̄.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"expected two (N, 2) point sets with N ≥ 2, got {source.shape} and {target.shape}")
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_centred, target_centred = source - source_mean, target - target_mean
    variance = (source_centred**2).sum() / len(source)
    if variance < 1e-12:
        raise ValueError("the source points coincide: no similarity transform is defined")
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.array([1.0, 1.0 if np.linalg.det(covariance) >= 0 else -1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = (singular * signs).sum() / variance
    translation = target_mean - scale * rotation @ source_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def template_for(height: int, width: int) -> np.ndarray:
    """The template in an output of ``height × width``: 112×112 and 112×96 exactly, other squares scaled."""
    if (height, width) == (112, 96):
        return TEMPLATE_112x96
    if height != width:
        raise ValueError(f"aligned faces are square or 112×96 (height × width); got {height}×{width}")
    return ARCFACE_TEMPLATE * (height / 112)


def alignment_matrix(landmarks: np.ndarray, height: int = 112, width: int = 112) -> np.ndarray:
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(f"alignment needs five (x, y) landmarks, got shape {landmarks.shape}")
    return umeyama(landmarks, template_for(height, width))


def align_face(image: np.ndarray, landmarks: np.ndarray, height: int = 112, width: int = 112) -> np.ndarray:
    """Warp ``image`` so that its five ``landmarks`` land on the template; outside pixels are black."""
    matrix = alignment_matrix(landmarks, height, width)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
