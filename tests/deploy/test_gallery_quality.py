"""Every face keeps its quality, in both stores: listed, reopened, and the weights of its subject's template.

``galleries/milvus_made_by_f2dcb3f.db`` was written by the Milvus gallery code of commit f2dcb3f (before
Milvus kept qualities), through milvus-lite: alice enrolled with 2 faces (qualities 0.7 and 0.3 given,
not kept; sources a1.jpg, a2.jpg; metadata site=north), bob with 1 (b1.jpg).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from facelearn.deploy.gallery import open_gallery

MILVUS_BEFORE_QUALITIES = Path(__file__).parent / "galleries" / "milvus_made_by_f2dcb3f.db"


def unit_rows(count, dim=16, seed=0):
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def unit(vector):
    return vector / np.linalg.norm(vector)


@pytest.fixture(params=["sqlite", "milvus"])
def store(request):
    if request.param == "milvus":
        need("milvus_lite", "milvus")
    return request.param


def test_qualities_are_kept_listed_and_reopened(tmp_path, store):
    path = tmp_path / "people.db"
    gallery = open_gallery(path, "m", 16, store)
    gallery.enroll("alice", unit_rows(2, seed=1), [0.9, 0.37], metadata={"site": "north"})
    gallery.enroll("alice", unit_rows(1, seed=2), None, append=True)  # an enroll that gave no quality
    gallery.add_faces(["bob", "carol"], unit_rows(2, seed=3), [0.25, float("nan")])  # bulk enroll's batches
    assert [f["quality"] for f in gallery.faces("alice")] == [0.9, 0.37, None]
    gallery.close()

    reopened = open_gallery(path, None, None, store)  # as `facelearn gallery list` opens it
    qualities = {s["subject"]: s["qualities"] for s in reopened.subjects()}
    assert qualities["alice"] == [0.9, 0.37, None] and qualities["bob"] == [0.25]
    assert [f["quality"] for f in reopened.faces("carol")] == [None]  # not a number: none (SQLite stores NULL)
    reopened.close()


def test_a_template_made_again_after_a_face_is_deleted_keeps_the_quality_weights(tmp_path, store):
    gallery = open_gallery(tmp_path / "people.db", "m", 16, store)
    alice = unit_rows(3, seed=1)
    gallery.enroll("alice", alice, [0.9, 0.1, 0.5])
    gallery.enroll("bob", unit_rows(1, seed=2), [0.5])
    first = gallery.faces("alice")[0]["face_id"]
    assert gallery.delete_face("alice", first) == 2
    weighted, equal = unit(0.1 * alice[1] + 0.5 * alice[2]), unit(alice[1] + alice[2])
    assert float(weighted @ equal) < 0.99  # the two templates differ: the check below can tell them apart
    (name, score), *_ = gallery.search(weighted[None], k=2, fusion="mean")[0]
    assert name == "alice" and score == pytest.approx(1.0, abs=1e-5)
    gallery.close()


def test_a_milvus_gallery_made_before_qualities_opens_lists_none_and_takes_new_faces(tmp_path):
    need("milvus_lite", "milvus")
    path = tmp_path / "old.db"
    shutil.copytree(MILVUS_BEFORE_QUALITIES, path)
    gallery = open_gallery(path, None, None, "milvus")  # model and size read from the collection
    assert (gallery.model_id, gallery.dim) == ("m", 16)
    assert [(f["source"], f["quality"]) for f in gallery.faces("alice")] == [("a1.jpg", None), ("a2.jpg", None)]
    assert gallery.subjects()[0] == {
        "subject": "alice",
        "metadata": {"site": "north"},
        "faces": 2,
        "qualities": [None] * 2,
    }
    gallery.close()

    gallery = open_gallery(path, "m", 16, "milvus")
    made_with = unit_rows(3)  # the embeddings the file was made with
    assert gallery.search(made_with[2:3], k=1)[0][0][0] == "bob"
    assert gallery.enroll("alice", unit_rows(1, seed=5), [0.8], append=True) == 3
    assert [f["quality"] for f in gallery.faces("alice")] == [None, None, None]  # no field to keep it in
    assert gallery.delete("bob") == 1 and [s["subject"] for s in gallery.subjects()] == ["alice"]
    gallery.close()
