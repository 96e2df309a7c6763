"""Faces have ids: list a subject's faces and delete one, in both stores, in galleries made before ids were shown.

``galleries/made_by_55b9f8d.db`` was written by the gallery code of commit 55b9f8d (before face ids):
alice enrolled with 3 faces (qualities 20.5, 21.0, 19.5, metadata site=north), bob with 2, carol with 2
and then deleted — so the old code had given ids 6 and 7 and freed them.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from facelearn.deploy.gallery import UnknownFace, UnknownSubject, build_index, open_gallery
from facelearn.deploy.gallery.sqlite import SQLiteGallery
from facelearn.errors import DataError

MADE_BEFORE_IDS = Path(__file__).parent / "galleries" / "made_by_55b9f8d.db"


def unit_rows(count, dim=16, seed=0):
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(params=["sqlite", "milvus"])
def store(request):
    if request.param == "milvus":
        need("milvus_lite", "milvus")
    return request.param


def best_score(gallery, query, subject) -> float:
    found = dict(gallery.search(query[None], k=10)[0])
    return found.get(subject, -2.0)


def test_one_face_is_listed_deleted_and_gone_from_search_and_reopening(tmp_path, store):
    path = tmp_path / "people.db"
    gallery = open_gallery(path, "m", 16, store)
    alice, bob = unit_rows(3, seed=1), unit_rows(2, seed=2)
    gallery.enroll("alice", alice, sources=["a0.jpg", "a1.jpg", "a2.jpg"], metadata={"site": "north"})
    gallery.enroll("bob", bob)
    faces = gallery.faces("alice")
    assert [f["source"] for f in faces] == ["a0.jpg", "a1.jpg", "a2.jpg"]  # in the order enrolled
    ids = [f["face_id"] for f in faces]
    assert all(isinstance(i, str) for i in ids) and len(set(ids)) == 3
    assert not set(ids) & {f["face_id"] for f in gallery.faces("bob")}
    assert best_score(gallery, alice[1], "alice") == pytest.approx(1.0, abs=1e-5)

    assert gallery.delete_face("alice", ids[1]) == 2
    assert [f["face_id"] for f in gallery.faces("alice")] == [ids[0], ids[2]]
    assert best_score(gallery, alice[1], "alice") < 0.99  # its own face no longer answers; the others still do
    assert best_score(gallery, alice[0], "alice") == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UnknownFace, match="is not one of the faces of 'alice'"):
        gallery.delete_face("alice", ids[1])  # already gone
    bob_face = gallery.faces("bob")[0]["face_id"]
    with pytest.raises(UnknownFace):
        gallery.delete_face("alice", bob_face)  # another subject's face is not deleted through alice
    with pytest.raises(UnknownFace, match="is not a face id"):
        gallery.delete_face("alice", "1; DROP TABLE faces")
    with pytest.raises(UnknownSubject):
        gallery.faces("nobody")
    with pytest.raises(UnknownSubject):
        gallery.delete_face("nobody", ids[0])
    gallery.close()

    reopened = open_gallery(path, "m", 16, store)
    assert [f["face_id"] for f in reopened.faces("alice")] == [ids[0], ids[2]]  # stable across reopening
    assert best_score(reopened, alice[1], "alice") < 0.99
    assert {s["subject"]: s["faces"] for s in reopened.subjects()} == {"alice": 2, "bob": 2}
    reopened.close()


def test_deleting_the_last_face_deletes_the_subject(tmp_path, store):
    gallery = open_gallery(tmp_path / "people.db", "m", 16, store)
    gallery.enroll("alice", unit_rows(1, seed=1), metadata={"site": "north"})
    gallery.enroll("bob", unit_rows(1, seed=2))
    (face,) = gallery.faces("alice")
    answer = gallery.erase_face("alice", face["face_id"])  # what the API, the CLI and Python answer
    assert answer["faces"] == 0 and answer["subject_deleted"] is True and answer["deleted_face"] == face["face_id"]
    if store == "sqlite":
        assert answer["erased"] is True and answer["erasure"] == "done"
    else:  # Milvus drops deleted rows when it compacts, on its own schedule: never claimed done
        assert answer["erased"] is False and answer["erasure"].startswith("pending")
    assert [s["subject"] for s in gallery.subjects()] == ["bob"] and len(gallery) == 1
    with pytest.raises(UnknownSubject):
        gallery.faces("alice")
    assert gallery.search(unit_rows(1, seed=1), k=5)[0][0][0] == "bob"
    assert gallery.enroll("alice", unit_rows(1, seed=3)) == 1  # a new alice, not an append to the old one
    assert gallery.subjects()[0]["metadata"] == {}  # the old metadata went with the subject
    gallery.close()


def test_a_deleted_face_id_is_never_given_again(tmp_path):
    gallery = SQLiteGallery(tmp_path / "people.db", "m", 16)
    gallery.enroll("alice", unit_rows(2, seed=1))
    last = gallery.faces("alice")[-1]["face_id"]
    gallery.delete_face("alice", last)  # the largest id: SQLite's own rowid would hand it out again
    gallery.enroll("bob", unit_rows(1, seed=2))
    gallery.add_faces(["carol"], unit_rows(1, seed=3))
    given = [gallery.faces(name)[0]["face_id"] for name in ("bob", "carol")]
    assert int(given[0]) == int(last) + 1 and int(given[1]) == int(last) + 2


def test_a_gallery_made_before_face_ids_lists_and_deletes_faces(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(MADE_BEFORE_IDS, path)
    gallery = open_gallery(path, None, None)  # as the CLI opens it: model and size read from the file
    assert (gallery.model_id, gallery.dim) == ("model-v0", 16)
    faces = gallery.faces("alice")
    assert [f["face_id"] for f in faces] == ["1", "2", "3"] and [f["quality"] for f in faces] == [20.5, 21.0, 19.5]
    assert [f["face_id"] for f in gallery.faces("bob")] == ["4", "5"]
    gallery.close()

    gallery = open_gallery(path, "model-v0", 16)
    alice = unit_rows(3, seed=1)  # the embeddings the file was made with
    before = sqlite3.connect(path).execute("SELECT embedding FROM faces WHERE id = 2").fetchone()[0]
    assert gallery.delete_face("alice", "2") == 2
    gallery.checkpoint()
    assert before not in b"".join(p.read_bytes() for p in tmp_path.iterdir())  # erased from the files
    assert best_score(gallery, alice[1], "alice") < 0.99 and best_score(gallery, alice[0], "alice") > 0.99
    assert gallery.enroll("dave", unit_rows(1, seed=4)) == 1
    assert gallery.faces("dave")[0]["face_id"] == "6"  # past the largest id in the file
    gallery.enroll("erin", unit_rows(1, seed=5))
    gallery.delete_face("erin", "7")
    gallery.enroll("frank", unit_rows(1, seed=6))
    assert gallery.faces("frank")[0]["face_id"] == "8"  # and from now on never an id given before
    assert gallery.subjects()[0] == {
        "subject": "alice",
        "metadata": {"site": "north"},
        "faces": 2,
        "qualities": [None, None],  # the gallery's raw norms are no [0, 1] quality
    }
    gallery.close()


def test_a_deleted_face_leaves_no_bytes_in_the_database_files(tmp_path):
    path = tmp_path / "people.db"
    gallery = SQLiteGallery(path, "m", 16)
    gallery.enroll("alice", unit_rows(3, seed=5))
    stored = dict(sqlite3.connect(path).execute("SELECT id, embedding FROM faces").fetchall())
    doomed = gallery.faces("alice")[0]["face_id"]
    gallery.delete_face("alice", doomed)
    assert gallery.checkpoint() and gallery.erasure == "done"
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("people.db"))
    kept = [blob for number, blob in stored.items() if str(number) != doomed]
    assert stored[int(doomed)] not in data and all(blob in data for blob in kept)


@pytest.mark.parametrize("kind", ["exact", "SQfp16", "HNSW32"])
def test_an_index_removes_one_face_and_keeps_the_rest(kind):
    if kind != "exact":
        need("faiss", "search")
    vectors = unit_rows(40)
    index = build_index(16, kind)
    index.add([f"s{i % 4}" for i in range(40)], vectors, list(range(100, 140)))
    index.remove_face(104)  # a face of s0
    assert index.count("s0") == 9 and index.count("s1") == 10
    found = dict(index.search(vectors[4:5], k=4)[0])
    assert found["s0"] < 0.99  # its own face is gone
    assert dict(index.search(vectors[8:9], k=4)[0])["s0"] == pytest.approx(1.0, abs=1e-3)  # another face of s0
    index.remove("s1")
    index.remove_face(108)
    assert index.count("s0") == 8 and index.count("s1") == 0
    with pytest.raises(DataError, match="2 face ids for 1 faces"):
        index.add(["s9"], unit_rows(1), [1, 2])
