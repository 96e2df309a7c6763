"""Alignment: the Umeyama similarity against known transforms, the templates, the warp."""

from __future__ import annotations

import numpy as np
import pytest

from facelearn.align import ARCFACE_TEMPLATE, TEMPLATE_112x96, align_face, alignment_matrix, umeyama


def similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle,scale,shift", [(0.0, 1.0, (0, 0)), (0.3, 2.5, (40, -7)), (-2.0, 0.4, (-3, 120))])
def test_umeyama_recovers_a_known_similarity(angle, scale, shift):
    points = np.random.default_rng(0).uniform(0, 200, (5, 2))
    truth = similarity(angle, scale, shift)
    np.testing.assert_allclose(umeyama(points, apply(truth, points)), truth, atol=1e-9)


def test_umeyama_is_the_least_squares_fit_and_never_reflects():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, (5, 2))
    target = apply(similarity(0.5, 1.3, (10, 20)), source) + rng.normal(0, 2.0, (5, 2))
    matrix = umeyama(source, target)
    residual = np.sum((apply(matrix, source) - target) ** 2)
    for _ in range(200):  # no nearby similarity fits better
        angle, log_scale = rng.normal(0, 0.01, 2)
        nudge = np.vstack([similarity(angle, np.exp(log_scale), rng.normal(0, 0.1, 2)), [0, 0, 1]])
        other = (nudge @ np.vstack([matrix, [0, 0, 1]]))[:2]
        assert np.sum((apply(other, source) - target) ** 2) >= residual - 1e-9
    mirrored = source * np.array([-1.0, 1.0])  # the best similarity onto a mirror image is still a rotation
    assert np.linalg.det(umeyama(source, mirrored)[:, :2]) > 0


def test_umeyama_rejects_bad_points():
    with pytest.raises(ValueError, match="coincide"):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="five"):
        alignment_matrix(np.zeros((4, 2)))


def test_templates():
    np.testing.assert_allclose(ARCFACE_TEMPLATE[0], [38.2946, 51.6963])  # insightface's, with x += 8
    np.testing.assert_allclose(TEMPLATE_112x96[4], [62.7299, 92.2041])
    np.testing.assert_allclose(alignment_matrix(ARCFACE_TEMPLATE), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_allclose(alignment_matrix(ARCFACE_TEMPLATE * 2, 224, 224), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    with pytest.raises(ValueError, match="square or 112×96"):
        alignment_matrix(ARCFACE_TEMPLATE, 100, 80)


def test_align_face_undoes_a_known_transform():
    rng = np.random.default_rng(2)
    face = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    face = np.kron(face[::8, ::8], np.ones((8, 8, 1), np.uint8))  # smooth enough to survive two warps
    import cv2

    forward = similarity(0.4, 1.8, (150, 60))  # template space → a 400×400 photo
    photo = cv2.warpAffine(face, forward, (400, 400), flags=cv2.INTER_LINEAR)
    landmarks = apply(forward, ARCFACE_TEMPLATE)
    aligned = align_face(photo, landmarks)
    assert aligned.shape == (112, 112, 3)
    inner = (slice(8, 104), slice(8, 104))
    assert np.abs(aligned[inner].astype(int) - face[inner]).mean() < 6
    narrow = align_face(photo, landmarks, 112, 96)
    assert narrow.shape == (112, 96, 3)
    assert np.abs(narrow[8:104, 8:88].astype(int) - face[8:104, 16:96]).mean() < 6
