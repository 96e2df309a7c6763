"""Templates: a subject's faces fused as IJB pools them, kept by both stores, gone with the subject."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import need

from facelearn.deploy.fusion import Template, fuse
from facelearn.deploy.gallery import open_gallery
from facelearn.errors import ConfigError
from facelearn.eval.templates import TemplateOptions, template_features


def unit_rows(count, dim=16, seed=0):
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_quality_weighted_fusion_is_ijb_pooling_with_the_raw_norm_as_quality():
    """Weighting unit embeddings by their raw norms is insightface's N1D0F0 template of the raw features
    (every photo its own media), the pooling tests/eval/test_ijb.py checks against insightface's numbers."""
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(5, 16)).astype(np.float32) * rng.uniform(0.5, 3.0, size=(5, 1)).astype(np.float32)
    norms = np.linalg.norm(raw, axis=1)
    options = TemplateOptions(flip=False, norm_score=True, detector_score=False)
    _, (expected,) = template_features(raw, None, None, np.zeros(5), np.arange(5), options)
    np.testing.assert_allclose(fuse(raw / norms[:, None], norms), expected, atol=1e-6)
    np.testing.assert_allclose(Template.of(raw / norms[:, None], norms).vector, expected, atol=1e-6)


def test_a_missing_or_zero_quality_means_equal_weights():
    faces = unit_rows(3)
    mean = faces.sum(0) / np.linalg.norm(faces.sum(0))
    for qualities in (None, [1.0, None, 2.0], [1.0, 0.0, 2.0], [1.0, float("nan"), 2.0]):
        np.testing.assert_allclose(fuse(faces, qualities), mean, atol=1e-6)
    assert not np.allclose(fuse(faces, [1.0, 5.0, 2.0]), mean, atol=1e-3)


def test_an_appended_template_is_the_template_of_all_its_faces():
    faces, qualities = unit_rows(5), [0.3, 0.9, 0.5, 0.7, 0.2]
    grown = Template.of(faces[:2], qualities[:2]).extended(faces[2:], qualities[2:])
    np.testing.assert_allclose(grown.vector, fuse(faces, qualities), atol=1e-6)
    mixed = Template.of(faces[:2], qualities[:2]).extended(faces[2:])  # new faces without quality: equal weights
    np.testing.assert_allclose(mixed.vector, fuse(faces), atol=1e-6)
    stored = Template.from_dict(json.loads(json.dumps(grown.to_dict())))  # as the Milvus store keeps it
    np.testing.assert_array_equal(stored.weighted, grown.weighted)
    assert stored.faces == 5 and Template.from_dict(mixed.to_dict()).weighted is None


@pytest.fixture(params=["sqlite", "milvus"])
def store(request):
    if request.param == "milvus":
        need("milvus_lite", "milvus")
    return request.param


def test_both_stores_search_templates_and_forget_them_with_the_subject(tmp_path, store):
    path = tmp_path / "people.db"
    gallery = open_gallery(path, "model-a", 16, store)
    faces = unit_rows(8)
    gallery.enroll("alice", faces[:2], [0.9, 0.4], metadata={"site": "north"})
    gallery.enroll("alice", faces[2:3], [0.6], append=True)
    gallery.add_faces(["bob", "bob", "carol"], faces[3:6])
    query = unit_rows(1, seed=7)
    expected = {
        "alice": float(query[0] @ fuse(faces[:3], [0.9, 0.4, 0.6])),
        "bob": float(query[0] @ fuse(faces[3:5])),
        "carol": float(query[0] @ faces[5]),
    }
    found = dict(gallery.search(query, 3, fusion="mean")[0])
    assert found == pytest.approx(expected, abs=1e-5)
    best = dict(gallery.search(query, 3)[0])
    assert best["alice"] == pytest.approx(float((faces[:3] @ query[0]).max()), abs=1e-5)
    assert [n for n, _ in gallery.search(query, 3, fusion="mean", where={"site": "north"})[0]] == ["alice"]
    with pytest.raises(ConfigError, match="fusion 'median' is not one of best, mean"):
        gallery.search(query, 3, fusion="median")
    gallery.delete("alice")
    assert "alice" not in dict(gallery.search(query, 3, fusion="mean")[0])
    gallery.close()
    reopened = open_gallery(path, "model-a", 16, store)
    assert dict(reopened.search(query, 3, fusion="mean")[0]) == pytest.approx(
        {k: v for k, v in expected.items() if k != "alice"}, abs=1e-5
    )
    if store == "milvus":  # nothing of alice in the collection beside the faces either
        rows = reopened.client.query(reopened.templates, filter="subject != ''", output_fields=["subject"])
        assert sorted(row["subject"] for row in rows) == ["bob", "carol"]
    reopened.close()


def test_a_sqlite_gallery_sees_templates_another_connection_wrote(tmp_path):
    path = tmp_path / "people.db"
    reader, writer = open_gallery(path, "m", 16), open_gallery(path, "m", 16)
    faces = unit_rows(3)
    writer.enroll("dana", faces, [1.0, 2.0, 3.0])
    ((name, score),) = reader.search(faces[:1], 1, fusion="mean")[0]
    assert name == "dana" and score == pytest.approx(float(faces[0] @ fuse(faces, [1.0, 2.0, 3.0])), abs=1e-5)
    writer.delete("dana")
    assert reader.search(faces[:1], 1, fusion="mean") == [[]]
