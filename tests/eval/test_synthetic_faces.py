"""The synthetic face generator: one seed, one gallery; its cosines are the ones it was fitted to."""

from __future__ import annotations

import numpy as np
import pytest

from facelearn.errors import DataError
from facelearn.eval.synthetic_faces import FaceModel, cosine_pairs, fit_face_model, generate_faces

MODEL = FaceModel(subspace=48, mean_weight=1.1, noise=0.7, noise_spread=0.25)


def moments(faces, identity):
    within, between = cosine_pairs(faces, identity)
    return np.array([within.mean(), within.std(), between.mean(), between.std()])


def test_the_same_seed_gives_the_same_faces_and_another_seed_others():
    first, ids = generate_faces(MODEL, 300, 3, 128, seed=7)
    again, ids_again = generate_faces(MODEL, 300, 3, 128, seed=7)
    other, _ = generate_faces(MODEL, 300, 3, 128, seed=8)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(ids, ids_again)
    assert first.dtype == np.float32 and first.shape == (900, 128)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    assert not np.allclose(first, other)


def test_held_out_faces_belong_to_their_identity_and_the_dimension_keeps_every_cosine():
    gallery, identity = generate_faces(MODEL, 200, 4, 128, seed=3)
    probes, probe_identity = generate_faces(MODEL, np.array([5, 150]), 1, 128, seed=3, stream=1)
    assert list(probe_identity) == [5, 150]
    best = identity[np.argmax(probes @ gallery.T, axis=1)]
    assert list(best) == [5, 150]  # a held-out face is nearest its own identity's faces
    assert not np.isclose(probes @ gallery.T, 1).any()  # and is none of them
    wide, _ = generate_faces(MODEL, 200, 4, 512, seed=3)
    np.testing.assert_allclose(wide @ wide[:50].T, gallery @ gallery[:50].T, atol=1e-4)
    with pytest.raises(DataError, match="at least"):
        generate_faces(MODEL, 10, 2, 32)


def test_a_fit_reproduces_the_cosine_statistics_it_was_given():
    target = moments(*generate_faces(MODEL, 1500, 4, 128, seed=11))
    fitted = fit_face_model(*cosine_pairs(*generate_faces(MODEL, 1500, 4, 128, seed=11)), rounds=6)
    again = moments(*generate_faces(fitted, 1500, 4, 128, seed=12))  # a fresh sample of the fitted model
    np.testing.assert_allclose(again, target, atol=0.01)
    assert abs(fitted.subspace - MODEL.subspace) <= 0.25 * MODEL.subspace
