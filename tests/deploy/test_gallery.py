"""The SQLite gallery and its index: atomic enroll, delete that leaves no bytes, model identity, threads, kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import need

from facelearn.deploy.calibration import calibrate, impostors_needed, wilson_interval
from facelearn.deploy.gallery import GalleryError, build_index, open_gallery
from facelearn.deploy.gallery.sqlite import SQLiteGallery
from facelearn.errors import DataError


def unit_rows(count, dim=16, seed=0):
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["exact", "SQfp16", "HNSW32"])
def test_index_ranks_subjects_by_their_best_face_like_brute_force(kind):
    if kind != "exact":
        need("faiss", "search")
    vectors = unit_rows(300)
    subjects = [f"s{i % 37}" for i in range(300)]
    index = build_index(16, kind)
    index.add(subjects, vectors)
    queries = unit_rows(20, seed=1)
    for query, found in zip(queries, index.search(queries, k=5), strict=True):
        best = {}
        for name, score in zip(subjects, vectors @ query, strict=True):
            best[name] = max(best.get(name, -2.0), float(score))
        expected = sorted(best.items(), key=lambda item: -item[1])[:5]
        assert [name for name, _ in found] == [name for name, _ in expected]
        tolerance = 1e-3 if kind == "SQfp16" else 1e-6  # float16 codes
        np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], atol=tolerance)
    index.remove("s0")
    assert all(name != "s0" for found in index.search(queries, k=40) for name, _ in found)
    assert index.count("s1") == 9 and index.count("s0") == 0
    assert len(index.search(queries[:1], k=100)[0]) == 36  # fewer subjects than k: all of them
    odd = {f"s{i}" for i in range(1, 37, 2)}
    assert all(name in odd for found in index.search(queries, k=5, allowed=odd) for name, _ in found)


def test_a_gallery_with_a_half_precision_index_finds_the_same_people(tmp_path):
    need("faiss", "search")
    faces = unit_rows(200)
    names = [f"p{i % 50}" for i in range(200)]
    exact, half = (open_gallery(tmp_path / f"{kind}.db", "m", 16, index=kind) for kind in ("exact", "SQfp16"))
    for gallery in (exact, half):
        for person in range(50):
            gallery.enroll(f"p{person}", faces[[i for i in range(200) if names[i] == f"p{person}"]])
    queries = unit_rows(30, seed=9)
    assert [r[0][0] for r in exact.search(queries, 3)] == [r[0][0] for r in half.search(queries, 3)]
    half.delete("p3")
    assert all(name != "p3" for found in half.search(queries, 10) for name, _ in found)
    with pytest.raises(DataError, match="must be trained before use"):
        open_gallery(tmp_path / "ivf.db", "m", 16, index="IVF16,Flat")


@pytest.fixture(params=["sqlite", "milvus"])
def store(request):
    """The same behaviour from both stores: SQLite, and Milvus through milvus-lite."""
    if request.param == "milvus":
        need("milvus_lite", "milvus")
    return request.param


def test_gallery_enroll_search_filter_reopen_and_delete(tmp_path, store):
    path = tmp_path / "people.db"
    gallery = open_gallery(path, "model-a", 16, store)
    faces = unit_rows(6)
    assert gallery.enroll("alice", faces[:2], metadata={"site": "north"}) == 2
    assert gallery.enroll("bob", faces[2:4], metadata={"site": "south"}) == 2
    with pytest.raises(GalleryError, match="'alice' is already enrolled"):
        gallery.enroll("alice", faces[4:5])
    assert gallery.enroll("alice", faces[4:5], append=True) == 3
    assert gallery.search(faces[2:3], k=1)[0][0][0] == "bob"
    assert [name for name, _ in gallery.search(faces[2:3], k=2, where={"site": "north"})[0]] == ["alice"]
    gallery.close()
    reopened = open_gallery(path, "model-a", 16, store)  # persistence across reopening
    assert {s["subject"]: s["faces"] for s in reopened.subjects()} == {"alice": 3, "bob": 2}
    with pytest.raises(GalleryError, match="'ghost' is not enrolled"):
        reopened.delete("ghost")
    with pytest.raises(GalleryError, match="nothing to enroll"):
        reopened.enroll("carol", np.empty((0, 16), np.float32))
    with pytest.raises(DataError, match="expected 16-d embeddings"):
        reopened.enroll("carol", unit_rows(1, dim=8))
    with pytest.raises(DataError, match="finite and non-zero"):
        reopened.enroll("carol", np.full((1, 16), np.nan, np.float32))
    assert reopened.delete("alice") == 3
    assert [name for name, _ in reopened.search(faces[0:1], k=5)[0]] == ["bob"]
    reopened.close()
    with pytest.raises(GalleryError, match="model.a.*it was opened with .*model-b"):
        open_gallery(path, "model-b", 16, store)


def test_a_subjects_faces_are_listed_with_their_sources_in_order(tmp_path, store):
    gallery = open_gallery(tmp_path / "people.db", "model-a", 16, store)
    gallery.enroll("alice", unit_rows(2), [0.5, 0.25], ["a1.jpg", "a2.jpg"])
    gallery.enroll("alice", unit_rows(1), None, ["a3.jpg"], append=True)
    gallery.enroll("bob", unit_rows(1))
    faces = gallery.faces("alice")
    assert [face["source"] for face in faces] == ["a1.jpg", "a2.jpg", "a3.jpg"]
    assert [face["quality"] for face in faces] == [0.5, 0.25, None]
    assert [{k: v for k, v in face.items() if k != "face_id"} for face in gallery.faces("bob")] == [
        {"source": None, "quality": None}
    ]
    with pytest.raises(GalleryError, match="'ghost' is not enrolled"):
        gallery.faces("ghost")
    gallery.close()


def test_sqlite_refuses_what_is_not_a_gallery(tmp_path):
    with pytest.raises(GalleryError, match="is a folder"):
        SQLiteGallery(tmp_path, "model-a", 16)
    (tmp_path / "notes.txt").write_text("not a database at all, just text " * 100)
    with pytest.raises(GalleryError, match="is not a facelearn gallery"):
        SQLiteGallery(tmp_path / "notes.txt", "model-a", 16)


def test_an_unreachable_milvus_is_named(tmp_path):
    need("pymilvus", "milvus")
    with pytest.raises(GalleryError, match="cannot reach the Milvus gallery at http://127.0.0.1:9"):
        open_gallery("http://127.0.0.1:9", "m", 16)


def test_deleted_embeddings_leave_no_bytes_in_the_database_files(tmp_path):
    path = tmp_path / "people.db"
    gallery = SQLiteGallery(path, "m", 16)
    gallery.enroll("alice", unit_rows(3, seed=5))
    gallery.enroll("bob", unit_rows(3, seed=6))
    stored = (
        sqlite3.connect(path)
        .execute("SELECT f.embedding, s.name FROM faces f JOIN subjects s ON s.id = f.subject_id")
        .fetchall()
    )
    alice = [blob for blob, name in stored if name == "alice"]
    bob = [blob for blob, name in stored if name == "bob"]

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("people.db"))

    assert all(blob in on_disk() for blob in alice + bob)
    assert gallery.delete("alice") == 3
    gallery.checkpoint()
    data = on_disk()
    assert not any(blob in data for blob in alice) and all(blob in data for blob in bob)
    assert all(name != "alice" for name, _ in gallery.search(unit_rows(1, seed=5), k=5)[0])


def test_another_process_sees_enrollments_without_reopening(tmp_path):
    path = tmp_path / "shared.db"
    reader = SQLiteGallery(path, "m", 16)
    writer = SQLiteGallery(path, "m", 16)
    writer.enroll("alice", unit_rows(1, seed=3))
    assert reader.search(unit_rows(1, seed=3), k=1)[0][0][0] == "alice"
    writer.delete("alice")
    assert reader.search(unit_rows(1, seed=3), k=1) == [[]]


def test_concurrent_writers_and_searchers(tmp_path, store):
    path = tmp_path / "busy.db"
    first = open_gallery(path, "m", 16, store)
    galleries = [first, SQLiteGallery(path, "m", 16) if store == "sqlite" else first]  # SQLite: two connections
    errors = []

    def work(number):
        try:
            gallery = galleries[number % 2]
            for i in range(15):
                gallery.enroll(f"t{number}-{i}", unit_rows(2, seed=100 * number + i))
                gallery.search(unit_rows(3, seed=i), k=3)
                if i % 3 == 0:
                    gallery.delete(f"t{number}-{i}")
        except Exception as error:  # noqa: BLE001 - collected and reported by the test
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    subjects = first.subjects()
    assert len(subjects) == 6 * 10 and all(s["faces"] == 2 for s in subjects)


ENROLL_FOREVER = """
import sys, numpy as np
from facelearn.deploy.gallery import open_gallery
gallery = open_gallery(sys.argv[1], "m", 16, sys.argv[2])
rng = np.random.default_rng(0)
print("ready", flush=True)
for i in range(100000):
    gallery.enroll(f"person{i}", rng.normal(size=(50, 16)).astype(np.float32))
"""


def test_a_kill_mid_enroll_leaves_no_half_subject(tmp_path, store):
    path = tmp_path / "killed.db"
    command = [sys.executable, "-c", ENROLL_FOREVER, str(path), store]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGKILL)  # the process and, for milvus-lite, its engine
    process.wait()
    subjects = open_gallery(path, "m", 16, store).subjects()
    assert subjects and all(s["faces"] == 50 for s in subjects)


def test_calibration_thresholds_counts_and_unsupported_fmrs():
    rng = np.random.default_rng(0)
    impostor, genuine = rng.normal(0.0, 0.1, 20_000), rng.normal(0.6, 0.15, 500)
    scores = np.r_[genuine, impostor]
    issame = np.r_[np.ones(500, bool), np.zeros(20_000, bool)]
    calibration = calibrate(scores, issame, source="test pairs")
    one_percent = calibration.points[0]
    assert one_percent["realised_fmr"] <= 0.01 and np.sum(impostor > one_percent["threshold"]) == 200
    assert one_percent["fnmr"] == np.mean(genuine <= one_percent["threshold"])
    low, high = one_percent["fmr_interval"]
    assert low < one_percent["realised_fmr"] < high
    assert calibration.threshold(1e-3) == calibration.points[1]["threshold"]
    assert calibration.points[2]["threshold"] is None  # 1e-4 needs 100,000 impostor pairs
    with pytest.raises(DataError, match="FMR 0.0001 needs at least 100,000 impostor pairs.*test pairs gave 20,000"):
        calibration.threshold(1e-4)
    with pytest.raises(DataError, match="FMR 0.005 was not calibrated"):
        calibration.threshold(5e-3)
    assert impostors_needed(1e-3) == 10_000
    assert wilson_interval(0, 100)[0] == 0.0 and wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    with pytest.raises(DataError, match="needs pairs of the same person and of different people"):
        calibrate(impostor, np.zeros(len(impostor), bool), source="x")
