"""``facelearn serve --model dlib``: the pretrained dlib model behind the same service, gallery and thresholds."""

from __future__ import annotations

from conftest import need, shared_path

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

PEOPLE = ["Tony_Blair", "Gerhard_Schroeder"]


def photo(name: str, number: int):
    return shared_path("data", "lfw_a", "lfw", name, f"{name}_{number:04d}.jpg")


def files(paths, field="images"):
    return [(field, (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def test_serve_model_dlib_enrolls_identifies_and_verifies(tmp_path, monkeypatch):
    need("dlib", "dlib")
    monkeypatch.setenv("FACELEARN_HOME", str(tmp_path / "home"))  # the shipped thresholds, not a user's
    served = Served("dlib", tmp_path / "people.db", tmp_path / "unused", tmp_path).start()
    try:
        with served.client() as http:
            ready = http.get("/v1/ready").json()
            assert ready["gallery_size"] == 0 and len(ready["model"]) == 16
            for person in PEOPLE:
                answer = http.post(
                    "/v1/subjects", data={"subject": person}, files=files([photo(person, 1), photo(person, 2)])
                )
                assert answer.status_code == 201 and answer.json()["faces"] == 2
            for person in PEOPLE:
                face = http.post("/v1/identify", files=files([photo(person, 3)], "image")).json()["faces"][0]
                assert face["subject"] == person and face["model"] == ready["model"]
            same = http.post("/v1/verify", files=files([photo(PEOPLE[0], 4)], "image_a"), data={"subject": PEOPLE[0]})
            assert same.json()["same"] is True
    finally:
        served.stop()
