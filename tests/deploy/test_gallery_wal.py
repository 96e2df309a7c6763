"""A reader of the SQLite gallery never turns a write into a false timeout, nor keeps deleted bytes for good.

Issue 24, case 4: while another connection held a read transaction, ``DELETE /v1/subjects/x``
waited the whole busy timeout in ``wal_checkpoint(TRUNCATE)`` (identify stalled behind it), was
answered 504 although the delete had happened, and the deleted name and embedding stayed in the
``-wal`` file after the reader let go; an enroll answered 504 had been committed, its retry got 409.
Here a real second connection holds ``BEGIN; SELECT`` while the gallery writes.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from helpers import wait_ready

from facelearn.deploy.gallery.sqlite import SQLiteGallery

NAME = "zelda_to_be_forgotten"
HANG_GUARD_S = 5.0  # the busy timeout is 30 s: anything that waits for the reader takes that long


def unit_rows(count, seed, dim=16):
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def files_bytes(path) -> bytes:
    """Everything SQLite keeps of the gallery: the database, its -wal and -shm (the audit log beside it names
    subjects by design, never their embeddings)."""
    kept = [path.parent / f"{path.name}{suffix}" for suffix in ("", "-wal", "-shm")]
    return b"".join(p.read_bytes() for p in kept if p.exists())


def stored_embeddings(path, name) -> list[bytes]:
    query = "SELECT f.embedding FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE s.name = ?"
    with sqlite3.connect(path) as db:
        return [blob for (blob,) in db.execute(query, (name,)).fetchall()]


def hold_snapshot(path) -> sqlite3.Connection:
    """A second connection in a read transaction: its snapshot still holds every subject."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM subjects WHERE name = ?", (NAME,)).fetchone() == (1,)
    return reader


def wait_for(condition, timeout=HANG_GUARD_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_delete_under_a_reader_commits_at_once_and_is_erased_when_the_reader_lets_go(tmp_path):
    path = tmp_path / "people.db"
    gallery = SQLiteGallery(path, "m", 16)
    gallery.enroll(NAME, unit_rows(3, seed=5))
    gallery.enroll("bob", unit_rows(3, seed=6))
    secret, kept = stored_embeddings(path, NAME), stored_embeddings(path, "bob")
    assert all(blob in files_bytes(path) for blob in secret)
    reader = hold_snapshot(path)

    removed, seconds = timed(lambda: gallery.delete(NAME))
    assert removed == 3 and seconds < HANG_GUARD_S
    erased, seconds = timed(gallery.checkpoint)
    assert erased is False and seconds < HANG_GUARD_S  # one attempt, no waiting on the reader
    assert gallery.erasure.startswith("pending") and "lets go" in gallery.erasure
    found, seconds = timed(lambda: gallery.search(unit_rows(1, seed=5), k=5)[0])
    assert seconds < HANG_GUARD_S and all(name != NAME for name, _ in found)  # gone for every search
    _, seconds = timed(lambda: gallery.enroll("carol", unit_rows(2, seed=7)))
    assert seconds < HANG_GUARD_S
    assert reader.execute("SELECT COUNT(*) FROM subjects WHERE name = ?", (NAME,)).fetchone() == (1,)  # a snapshot

    reader.execute("COMMIT")
    reader.close()
    assert wait_for(lambda: not gallery.erasure_pending)  # the timer finishes it, no call needed
    assert gallery.erasure == "done" and Path(f"{path}-wal").stat().st_size == 0
    data = files_bytes(path)
    assert NAME.encode() not in data and not any(blob in data for blob in secret)
    assert all(blob in data for blob in kept)
    assert gallery.checkpoint() is True
    gallery.close()


def test_a_pending_erasure_is_finished_at_close_or_at_the_next_open(tmp_path):
    path = tmp_path / "people.db"
    gallery = SQLiteGallery(path, "m", 16)
    gallery.enroll(NAME, unit_rows(2, seed=1))
    secret = stored_embeddings(path, NAME)
    reader = hold_snapshot(path)
    gallery.delete(NAME)
    assert gallery.checkpoint() is False
    gallery.close()  # the reader still holds its snapshot: pending, said in the log, never waited for
    reader.execute("COMMIT")
    reopened = SQLiteGallery(path, None, None)  # opening for listing finishes it
    assert not reopened.erasure_pending
    data = files_bytes(path)
    assert NAME.encode() not in data and not any(blob in data for blob in secret)
    reopened.close()


@pytest.fixture(scope="module")
def service_model(tmp_path_factory):
    """A three-step model with a calibration: enough to enroll, identify and delete through the service."""
    from facelearn.cli import main as facelearn
    from facelearn.cli import recipe_path
    from facelearn.deploy.calibration import calibrate
    from facelearn.deploy.stored_calibration import store_calibration

    run = tmp_path_factory.mktemp("gallery_wal")
    small = [
        *("model.name=mobilefacenet", "model.width=1", "model.blocks=[1,1,1,1]", "model.embedding_size=16"),
        *("data.num_identities=6", "data.images_per_identity=4", "data.image_size=32", "data.num_workers=0"),
        *("train.batch_size=8", "train.steps=3", "train.checkpoint_every=3", "schedule.warmup_steps=1"),
        "eval.sets=[]",
    ]
    assert facelearn(["train", str(recipe_path("demo")), *small, f"train.output_dir={run}"]) == 0
    scores = np.r_[np.linspace(0.5, 1, 100), np.linspace(-1, 0.5, 20_000)]
    store_calibration(run / "step_0000003.pt", calibrate(scores, np.r_[[True] * 100, [False] * 20_000]))
    return run / "step_0000003.pt"


def faces(seed, count=2):
    from facelearn.data.images import encode_image

    rng = np.random.default_rng(seed)
    pixels = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(count)]
    return [("images", (f"{i}.png", encode_image(p, ".png"), "image/png")) for i, p in enumerate(pixels)]


def serving(model, gallery, **settings):
    need("fastapi", "serve")
    from fastapi.testclient import TestClient

    from facelearn.serve.app import create_app
    from facelearn.serve.service import ServeSettings, Service

    service = Service(ServeSettings(str(model), str(gallery), detector=None, backend="torch", **settings))
    return service, TestClient(create_app(service), base_url="http://127.0.0.1")  # the Host the service answers


def test_the_service_deletes_under_a_reader_at_once_and_says_the_erasure_is_pending(service_model, tmp_path):
    path = tmp_path / "served.db"
    service, client = serving(service_model, path)
    with client as http:
        wait_ready(http)  # the model loads in the background
        assert http.post("/v1/subjects", data={"subject": NAME, "aligned": "true"}, files=faces(1)).status_code == 201
        secret = stored_embeddings(path, NAME)
        reader = hold_snapshot(path)
        answer, seconds = timed(lambda: http.delete(f"/v1/subjects/{NAME}"))
        assert seconds < HANG_GUARD_S and answer.status_code == 200, answer.text
        body = answer.json()
        assert body["deleted"] == NAME and body["faces"] == 2 and body["erased"] is False
        assert body["erasure"].startswith("pending")
        probe = [("image", faces(1, 1)[0][1])]
        identified, seconds = timed(lambda: http.post("/v1/identify", data={"aligned": "true"}, files=probe))
        assert seconds < HANG_GUARD_S and identified.status_code == 200
        assert all(c["subject"] != NAME for c in identified.json()["faces"][0]["candidates"])
        other = {"subject": "b", "aligned": "true"}
        enrolled, seconds = timed(lambda: http.post("/v1/subjects", data=other, files=faces(2)))
        assert seconds < HANG_GUARD_S and enrolled.status_code == 201
        reader.execute("COMMIT")
        reader.close()
        assert wait_for(lambda: service.recognizer.gallery.erasure == "done")
        data = files_bytes(path)
        assert NAME.encode() not in data and not any(blob in data for blob in secret)


def test_a_write_that_outlasts_the_time_limit_is_answered_with_what_happened(service_model, tmp_path):
    service, client = serving(service_model, tmp_path / "slow.db", timeout_s=1.5)
    with client as http:
        wait_ready(http)  # the model loads in the background
        warm = http.post("/v1/embed", data={"aligned": "true"}, files=[("image", faces(3, 1)[0][1])])
        assert warm.status_code == 200  # the model's first call is not timed here
        gallery = service.recognizer.gallery
        enroll = gallery.enroll

        def slow_enroll(*args, **kwargs):  # a write held up past the request's limit (a lock, a slow disk)
            time.sleep(3.0)
            return enroll(*args, **kwargs)

        gallery.enroll = slow_enroll
        answer = http.post("/v1/subjects", data={"subject": "slow", "aligned": "true"}, files=faces(3))
        assert answer.status_code == 201, answer.text  # committed, so said: never a 504 for a done write
        gallery.enroll = enroll
        again = http.post("/v1/subjects", data={"subject": "slow", "aligned": "true"}, files=faces(3))
        assert again.status_code == 409
