"""One face of a subject over HTTP (issue 23, item 6): list a subject's faces, delete one bad photo — with the
keys, the browser policy, the audit log and the erasure a deleted subject has — and the CLI's delete-face."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import error_of, image_files, need

need("fastapi", "serve")
from facelearn.serve.keys import KeyStore  # noqa: E402
from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # serves a process


@pytest.fixture(scope="module")
def keyed(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("faces")
    key = KeyStore(work / "keys.json").add("desk")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work, "--keys", str(work / "keys.json"))
    yield served.start(), {"X-API-Key": key}, work
    served.stop()


def files_bytes(work) -> bytes:
    """The gallery's SQLite files (the audit log beside them names subjects by design)."""
    kept = [work / f"g.db{suffix}" for suffix in ("", "-wal", "-shm")]
    return b"".join(p.read_bytes() for p in kept if p.exists())


def stored_face(work, face_id: str) -> bytes:
    with sqlite3.connect(work / "g.db") as db:  # closed at once: an open snapshot would hold the erasure back
        blob = db.execute("SELECT embedding FROM faces WHERE id = ?", (int(face_id),)).fetchone()[0]
    db.close()
    return blob


def test_one_bad_photo_is_listed_deleted_erased_and_audited(keyed, lfw_people):
    served, key, work = keyed
    person, photos = list(lfw_people.enrolled.items())[1]
    with served.client() as http:
        enrolled = http.post("/v1/subjects", data={"subject": person}, files=image_files(photos[:3]), headers=key)
        assert enrolled.status_code == 201
        listed = http.get(f"/v1/subjects/{person}/faces", headers=key).json()
        assert listed["subject"] == person and len(listed["faces"]) == 3
        ids = [face["face_id"] for face in listed["faces"]]
        assert all(isinstance(face["quality"], float) for face in listed["faces"])  # the service keeps the norm
        doomed = stored_face(work, ids[0])
        assert doomed in files_bytes(work)

        probe = image_files(photos[:1], "image")
        before = http.post("/v1/identify", files=probe, headers=key).json()["faces"][0]["candidates"][0]
        assert before["subject"] == person and before["score"] > 0.999  # its own face answers
        deleted = http.delete(f"/v1/subjects/{person}/faces/{ids[0]}", headers=key)
        assert deleted.status_code == 200
        assert deleted.json() == {
            "subject": person,
            "deleted_face": ids[0],
            "faces": 2,
            "subject_deleted": False,
            "erased": True,
            "erasure": "done",
        }
        assert doomed not in files_bytes(work)  # gone from the database files, WAL included
        after = http.post("/v1/identify", files=probe, headers=key).json()["faces"][0]["candidates"]
        assert all(c["score"] < 0.999 for c in after)  # gone from the search index
        assert [f["face_id"] for f in http.get(f"/v1/subjects/{person}/faces", headers=key).json()["faces"]] == ids[1:]
        assert http.get(f"/v1/subjects/{person}", headers=key).json()["faces"] == 2

        assert error_of(http.delete(f"/v1/subjects/{person}/faces/{ids[0]}", headers=key)) == (404, "unknown_face")
        assert error_of(http.delete(f"/v1/subjects/{person}/faces/not-a-face", headers=key)) == (404, "unknown_face")
        assert error_of(http.delete(f"/v1/subjects/nobody/faces/{ids[1]}", headers=key)) == (404, "unknown_subject")
        assert error_of(http.get("/v1/subjects/nobody/faces", headers=key)) == (404, "unknown_subject")

        for face in ids[1:]:  # the last face takes the subject with it
            last = http.delete(f"/v1/subjects/{person}/faces/{face}", headers=key).json()
        assert last["faces"] == 0 and last["subject_deleted"] is True and last["erased"] is True
        assert error_of(http.get(f"/v1/subjects/{person}", headers=key)) == (404, "unknown_subject")
        assert person.encode() not in files_bytes(work)  # the name is erased too

    audit = [json.loads(line) for line in (work / "g.db.audit.log").read_text().splitlines()]
    faces = [(r["action"], r["face"], r["subject_deleted"], r["who"]) for r in audit if r["action"] == "delete_face"]
    assert faces == [
        ("delete_face", ids[0], False, "key:desk"),
        ("delete_face", ids[1], False, "key:desk"),
        ("delete_face", ids[2], True, "key:desk"),
    ]


def test_the_face_routes_need_a_key_and_refuse_other_origins(keyed, lfw_people):
    served, key, _ = keyed
    person, photos = list(lfw_people.enrolled.items())[2]
    with served.client() as http:
        enrolled = http.post("/v1/subjects", data={"subject": person}, files=image_files(photos[:2]), headers=key)
        assert enrolled.is_success
        face = http.get(f"/v1/subjects/{person}/faces", headers=key).json()["faces"][0]["face_id"]
        path = f"/v1/subjects/{person}/faces/{face}"
        assert error_of(http.get(f"/v1/subjects/{person}/faces")) == (401, "missing_key")
        assert error_of(http.delete(path)) == (401, "missing_key")
        assert error_of(http.delete(path, headers={"X-API-Key": "fl_wrong"})) == (403, "wrong_key")
        other = {**key, "Origin": "http://evil.example"}
        assert error_of(http.delete(path, headers=other)) == (403, "cross_origin")
        assert http.get(f"/v1/subjects/{person}", headers=key).json()["faces"] == 2  # nothing was deleted
        schema = http.get("/openapi.json").json()["paths"]
        assert "/v1/subjects/{subject}/faces/{face_id}" in schema and "get" in schema["/v1/subjects/{subject}/faces"]


def test_the_cli_deletes_one_face_and_the_last_one_takes_the_subject(lfw_people, tmp_path, capsys):
    from facelearn.cli import main as facelearn
    from facelearn.deploy.gallery import open_gallery

    gallery = tmp_path / "cli.db"
    photos = list(lfw_people.enrolled.values())[3][:2]
    model = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    assert facelearn(["enroll", str(gallery), "cy", *map(str, photos), *model]) == 0
    opened = open_gallery(gallery, None, None)
    first, second = (face["face_id"] for face in opened.faces("cy"))
    opened.close()
    capsys.readouterr()
    assert facelearn(["gallery", "delete-face", str(gallery), "cy", first]) == 0
    assert capsys.readouterr().out.strip() == f"facelearn: deleted face {first} of 'cy' from {gallery}: 1 faces left"
    assert facelearn(["gallery", "delete-face", str(gallery), "cy", first]) == 2
    assert f"face {first} is not one of the faces of 'cy'" in capsys.readouterr().err
    assert facelearn(["gallery", "delete-face", str(gallery), "cy"]) == 2
    assert "needs the SUBJECT and the FACE_ID" in capsys.readouterr().err
    assert facelearn(["gallery", "delete-face", str(gallery), "cy", second, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["subject_deleted"] is True and answer["erased"] is True and answer["faces"] == 0
    assert facelearn(["gallery", "list", str(gallery), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    audit = [json.loads(line) for line in (tmp_path / "cli.db.audit.log").read_text().splitlines()]
    assert [(r["action"], r.get("face"), r["via"]) for r in audit] == [
        ("enroll", None, "cli"),
        ("delete_face", first, "cli"),
        ("delete_face", second, "cli"),
    ]
