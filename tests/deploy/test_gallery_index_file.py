"""The index saved beside a gallery: reused when fresh, rebuilt when anything differs, never trusted when damaged;
and the re-scored indexes (exact 8-bit scan, hnsw, ivf) on clustered faces."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from conftest import need

import facelearn.deploy.gallery.index as index_module
from facelearn.deploy.gallery import open_gallery
from facelearn.deploy.gallery.approximate_index import ApproximateIndex
from facelearn.deploy.gallery.index import ExactIndex
from facelearn.deploy.gallery.index_file import read_index_file, write_index_file
from facelearn.eval.synthetic_faces import FaceModel, generate_faces

DIM = 64
DLIB_LIKE = FaceModel(subspace=45, mean_weight=2.75, noise=0.64, noise_spread=0.23)  # dense scores, as dlib's


def clustered(identities=300, per_identity=4, seed=0):
    faces, identity = generate_faces(DLIB_LIKE, identities, per_identity, DIM, seed=seed)
    probes, probe_identity = generate_faces(DLIB_LIKE, np.arange(0, identities, 7), 1, DIM, seed=seed, stream=1)
    strangers, _ = generate_faces(DLIB_LIKE, identities + np.arange(20), 1, DIM, seed=seed, stream=1)
    return faces, [f"s{i}" for i in identity], np.concatenate([probes, strangers])


def brute_force(faces, subjects, queries, k):
    scores = queries @ faces.T
    answers = []
    for row in scores:
        best = {}
        for number in np.argsort(-row):
            best.setdefault(subjects[number], float(row[number]))
            if len(best) == k:
                break
        answers.append(list(best.items()))
    return answers


@pytest.fixture
def gallery_of_faces(tmp_path):
    faces, subjects, queries = clustered()
    path = tmp_path / "people.db"
    gallery = open_gallery(path, "model-a", DIM)
    gallery.add_faces(subjects, faces)
    gallery.close()
    return path, faces, subjects, queries


def refuse_rebuilds(monkeypatch):
    """The faces' index is read back, never made (rows, 8-bit codes, graph); the templates' index, one row per
    subject (each subject's mean of 4 faces here), is made from those rows and is let through."""

    def refusing(original):
        def rebuilt(index, *args, **kwargs):
            subjects = args[0] if original.__name__ == "add" else None
            one_per_subject = len(index.numbers) == index.rows and (
                subjects is None or len(set(subjects)) == len(subjects)
            )
            if not one_per_subject:
                raise AssertionError("the index was rebuilt from the embeddings")
            return original(index, *args, **kwargs)

        return rebuilt

    for cls, method in ((ExactIndex, "add"), (ExactIndex, "_added"), (ApproximateIndex, "_added")):
        monkeypatch.setattr(cls, method, refusing(getattr(cls, method)))


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_a_fresh_saved_index_is_reused_and_answers_as_the_built_one(gallery_of_faces, monkeypatch, kind):
    need("faiss", "search")
    monkeypatch.setattr(index_module, "SCAN_FROM", 100)  # the exact index with its 8-bit codes
    path, _, _, queries = gallery_of_faces
    built = open_gallery(path, "model-a", DIM, index=kind)  # builds, saves
    assert kind != "exact" or built.index.codes is not None
    expected = built.search(queries, 3)
    built.close()
    assert path.with_name(f"people.db.{kind}.index").is_file()
    refuse_rebuilds(monkeypatch)
    reopened = open_gallery(path, "model-a", DIM, index=kind)
    assert reopened.search(queries, 3) == expected
    reopened.close()


def test_a_change_by_anyone_makes_the_saved_index_stale(gallery_of_faces):
    path, faces, subjects, queries = gallery_of_faces
    open_gallery(path, "model-a", DIM).close()  # saved
    gallery = open_gallery(path, "model-a", DIM)
    gallery.enroll("newcomer", queries[:1])
    gallery.close()
    reopened = open_gallery(path, "model-a", DIM)
    assert reopened.search(queries[:1], 1)[0][0][0] == "newcomer"
    reopened.close()
    with sqlite3.connect(path) as db:  # another program rewrites one face in place: same ids, other bytes
        db.execute("UPDATE faces SET embedding = ? WHERE id = 1", (queries[1].astype(np.float32).tobytes(),))
    reopened = open_gallery(path, "model-a", DIM)
    assert reopened.search(queries[1:2], 1)[0][0] == (subjects[0], pytest.approx(1.0, abs=1e-5))
    reopened.close()


def test_an_index_saved_for_another_model_or_damaged_is_rebuilt_never_trusted(gallery_of_faces):
    path, faces, subjects, queries = gallery_of_faces
    gallery = open_gallery(path, "model-a", DIM)
    expected = gallery.search(queries, 2)
    gallery.close()
    saved = path.with_name("people.db.exact.index")
    whole = saved.read_bytes()
    state = read_index_file(saved, {"model_id": "model-a", "dim": DIM, "kind": "exact", "generation": "1200"})
    assert state is not None and len(state["face_ids"]) == len(faces)
    other_model = {"model_id": "model-b", "dim": DIM, "kind": "exact", "generation": "1200"}
    assert read_index_file(saved, other_model) is None
    shuffled = {"face_ids": state["face_ids"], "vectors": np.ascontiguousarray(state["vectors"][::-1])}
    damaged = {
        "cut short": whole[: len(whole) // 2],
        "one byte changed": whole[:5000] + bytes([whole[5000] ^ 1]) + whole[5001:],
        "not an index": b"hello",
        "empty": b"",
    }
    for name, data in damaged.items():
        saved.write_bytes(data)
        assert read_index_file(saved, {"model_id": "model-a"}) is None, name
        gallery = open_gallery(path, "model-a", DIM)
        assert gallery.search(queries, 2) == expected, name
        gallery.close()
        assert saved.read_bytes() == whole, name  # rebuilt and saved again
    identity = {"model_id": "model-b", "dim": DIM, "kind": "exact", "generation": "1200"}
    write_index_file(saved, identity, shuffled)  # whole and well-formed, but another model's rows
    gallery = open_gallery(path, "model-a", DIM)
    assert gallery.search(queries, 2) == expected
    gallery.close()


def test_a_delete_removes_every_saved_index_before_it_commits(gallery_of_faces):
    need("faiss", "search")
    path, _, subjects, queries = gallery_of_faces
    for kind in ("exact", "hnsw"):
        open_gallery(path, "model-a", DIM, index=kind).close()
    assert len(list(path.parent.glob("people.db.*.index"))) == 2
    gallery = open_gallery(path, "model-a", DIM, index="hnsw")
    gallery.delete(subjects[0])
    assert not list(path.parent.glob("people.db.*.index"))
    assert all(name != subjects[0] for found in gallery.search(queries, 10) for name, _ in found)
    gallery.close()


def test_the_exact_8bit_scan_gives_the_float32_ranking_even_where_scores_crowd(monkeypatch):
    need("faiss", "search")
    monkeypatch.setattr(index_module, "SCAN_FROM", 100)
    faces, subjects, queries = clustered(identities=600)
    crowd = faces[:1] + 1.5e-2 * np.random.default_rng(0).standard_normal((1000, DIM)).astype(np.float32)
    faces = np.concatenate([faces, crowd / np.linalg.norm(crowd, axis=1, keepdims=True)])
    subjects = subjects + [f"crowd{i}" for i in range(1000)]  # 1,000 subjects within a few thousandths of one another
    queries = np.concatenate([queries, faces[:1]])
    index = ExactIndex(DIM)
    index.add(subjects, faces)
    assert index.codes is not None and index.code_error > 0
    ranged = []
    range_search = index.codes.range_search
    index.codes.range_search = lambda *args, **kwargs: ranged.append(1) or range_search(*args, **kwargs)
    found = index.search(queries, k=20)  # in the crowd the range search has to step in
    assert ranged
    for answer, expected in zip(found, brute_force(faces, subjects, queries, 20), strict=True):
        assert [name for name, _ in answer] == [name for name, _ in expected]
        np.testing.assert_allclose([s for _, s in answer], [s for _, s in expected], atol=1e-6)
    index.remove(subjects[0])
    allowed = set(subjects[::3]) - {subjects[0]}
    for answer, expected in zip(
        index.search(queries, 5, allowed),
        brute_force(faces[[s in allowed for s in subjects]], [s for s in subjects if s in allowed], queries, 5),
        strict=True,
    ):
        assert [name for name, _ in answer] == [name for name, _ in expected]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_the_approximate_indexes_find_the_exact_best_subject_on_clustered_faces(kind):
    need("faiss", "search")
    faces, subjects, queries = clustered()
    index = ApproximateIndex(DIM, kind)
    index.add(subjects, faces)
    found = index.search(queries, 3)
    expected = brute_force(faces, subjects, queries, 3)
    assert [f[0][0] for f in found] == [e[0][0] for e in expected]  # the best subject, by its float32 score
    np.testing.assert_allclose([f[0][1] for f in found], [e[0][1] for e in expected], atol=1e-6)
    index.remove(expected[0][0][0])
    assert all(name != expected[0][0][0] for f in index.search(queries, 10) for name, _ in f)
    assert not index.vectors[index.rows_of(expected[0][0][0])].any()


def test_a_milvus_gallery_builds_the_same_graph_and_finds_the_same_best_subject(tmp_path):
    need("milvus_lite", "milvus")
    faces, subjects, queries = clustered(identities=100)
    gallery = open_gallery(tmp_path / "people.milvus.db", "model-a", DIM, "milvus", index="hnsw")
    gallery.add_faces(subjects, faces)
    described = gallery.client.describe_index(gallery.collection, "embedding")
    assert described["index_type"] == "HNSW" and gallery.search_params == {"ef": 512}
    expected = brute_force(faces, subjects, queries, 1)
    assert [found[0][0] for found in gallery.search(queries, 1)] == [e[0][0] for e in expected]
    gallery.close()
