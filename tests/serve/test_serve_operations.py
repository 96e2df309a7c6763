"""Running the service: API keys, binding, batching, a graceful stop, and a kill -9 mid-enroll."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from conftest import need

from facelearn.cli import main as facelearn

need("fastapi", "serve")
from facelearn.serve.batcher import EmbeddingBatcher  # noqa: E402
from facelearn.serve.keys import KeyStore  # noqa: E402
from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


def test_keys_are_shown_once_and_stored_hashed(tmp_path, capsys):
    keys = tmp_path / "keys.json"
    assert facelearn(["serve", "keys", "add", "alice", "--keys", str(keys)]) == 0
    key = capsys.readouterr().out.split()[0]
    stored = keys.read_text()
    assert key.startswith("fl_") and len(key) > 40 and key not in stored and oct(keys.stat().st_mode)[-3:] == "600"
    store = KeyStore(keys)
    assert store.check(key) == "alice" and store.check(key + "x") is None and store.check("") is None
    assert facelearn(["serve", "keys", "add", "alice", "--keys", str(keys)]) == 2  # the name is taken
    assert facelearn(["serve", "keys", "list", "--keys", str(keys)]) == 0
    assert [k["name"] for k in json.loads(capsys.readouterr().out)] == ["alice"]
    assert facelearn(["serve", "keys", "remove", "alice", "--keys", str(keys)]) == 0
    assert KeyStore(keys).check(key) is None
    keys.chmod(0o644)
    assert facelearn(["serve", "keys", "list", "--keys", str(keys)]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_binding_beyond_loopback_needs_keys(tmp_path, capsys):
    arguments = ["serve", "--model", str(tmp_path / "m.pt"), "--gallery", str(tmp_path / "g.db"), "--host", "0.0.0.0"]
    assert facelearn(arguments) == 2
    assert "API keys are required" in capsys.readouterr().err


@pytest.fixture(scope="module")
def keyed(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("keyed")
    keys = KeyStore(work / "keys.json")
    key = keys.add("tests")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work, "--keys", str(keys.path)).start()
    yield served, key
    served.stop()


def test_every_route_but_the_probes_and_page_needs_a_valid_key(keyed, lfw_people):
    served, key = keyed
    photo = {"image": ("a.jpg", lfw_people.strangers[0].read_bytes())}
    with served.client() as http:
        assert http.get("/v1/health").status_code == 200 and http.get("/v1/ready").status_code == 200
        assert http.get("/").status_code == 200 and http.get("/openapi.json").status_code == 200
        for method, path in (("GET", "/v1/subjects"), ("POST", "/v1/identify"), ("GET", "/metrics")):
            missing = http.request(method, path)
            assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_key"
            wrong = http.request(method, path, headers={"X-API-Key": key[:-1] + "?"})
            assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_key"
        assert http.post("/v1/identify", files=photo, headers={"X-API-Key": key}).status_code == 200
        assert http.get("/v1/subjects", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_batcher_gathers_concurrent_requests_into_one_model_call():
    calls = []

    def model(faces):
        calls.append(len(faces))
        time.sleep(0.01)
        return faces.reshape(len(faces), -1)[:, :2].astype(np.float32), faces[:, 0, 0, 0].astype(np.float32)

    async def scenario(max_batch, max_wait_ms):
        batcher = EmbeddingBatcher(model, max_batch, max_wait_ms)
        await batcher.start()
        requests = [np.full((n, 2, 2, 3), i, np.uint8) for i, n in enumerate([1, 2, 3, 1, 1, 4, 2, 1])]
        answers = await asyncio.gather(*(batcher.embed(r) for r in requests))
        await batcher.stop()
        for request, (embedding, norm) in zip(requests, answers, strict=True):  # each got its own rows back
            assert len(embedding) == len(request) and (norm == request[0, 0, 0, 0]).all()
        return list(calls)

    batched = asyncio.run(scenario(32, 50))
    calls.clear()
    alone = asyncio.run(scenario(1, 50))
    assert sum(batched) == sum(alone) == 15
    assert len(batched) < 4 and max(batched) > 4  # gathered: 15 faces in a few calls
    assert alone == [1, 2, 3, 1, 1, 4, 2, 1]  # batching off: one call per request


def test_batching_shows_in_the_metrics_of_a_served_model(lfw_people, tmp_path):
    served = Served(lfw_people.model, tmp_path / "g.db", lfw_people.weights, tmp_path, "--max-wait-ms", "200").start()
    photo = lfw_people.strangers[0].read_bytes()
    try:
        results = []

        def call():
            with served.client() as http:
                results.append(http.post("/v1/embed", files={"image": ("a.jpg", photo)}).status_code)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with served.client() as http:
            metrics = http.get("/metrics").text
    finally:
        served.stop()
    assert results == [200] * 6
    faces = float(metrics.split("facelearn_batch_faces_sum ")[1].split()[0])
    calls = float(metrics.split("facelearn_batch_faces_count ")[1].split()[0])
    assert faces >= 6 and calls < faces  # at least one model call held faces of several requests


def test_sigterm_finishes_the_request_in_flight(lfw_people, tmp_path):
    served = Served(lfw_people.model, tmp_path / "g.db", lfw_people.weights, tmp_path, "--max-wait-ms", "1500").start()
    answer = {}

    def slow_call():  # waits 1.5 s in the batcher for company
        with served.client() as http:
            answer["status"] = http.post(
                "/v1/embed", files={"image": ("a.jpg", lfw_people.strangers[0].read_bytes())}
            ).status_code

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.7)
    assert served.stop() in (0, -15)
    thread.join()
    assert answer == {"status": 200}
    assert "Waiting for connections to close" in served.log.read_text() or "shutdown complete" in served.log.read_text()


def test_kill_9_mid_enroll_leaves_no_half_written_subject(lfw_people, tmp_path):
    photos = [p for ps in lfw_people.enrolled.values() for p in ps][:20]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    gallery = tmp_path / "g.db"

    def enroll(served: Served, subject: str) -> None:
        try:
            with served.client() as http:
                http.post("/v1/subjects", data={"subject": subject}, files=files)
        except Exception:  # the server dies under the request
            pass

    for delay in (0.3, 0.9, 1.6):  # before, during and (likely) after the write
        served = Served(lfw_people.model, gallery, lfw_people.weights, tmp_path).start()
        thread = threading.Thread(target=enroll, args=(served, f"killed after {delay} s"))
        thread.start()
        time.sleep(delay)
        served.kill()
        thread.join()
    served = Served(lfw_people.model, gallery, lfw_people.weights, tmp_path).start()
    try:
        with served.client() as http:
            subjects = http.get("/v1/subjects").json()["subjects"]
    finally:
        served.stop()
    assert all(s["faces"] == 20 for s in subjects), subjects  # each subject whole, or absent
