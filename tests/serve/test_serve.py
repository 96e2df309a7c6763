"""``facelearn serve`` as a real process on loopback, called over HTTP: every route, every bad input."""

from __future__ import annotations

import base64
import socket
import struct
import threading
import zlib

import numpy as np
import pytest
from conftest import error_of, need
from conftest import image_files as files

from facelearn.data.images import encode_image, read_image

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


@pytest.fixture(scope="module")
def server(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve")
    served = Served(lfw_people.model, work / "people.db", lfw_people.weights, work, "--max-request-mb", "4").start()
    yield served
    assert served.stop() in (0, -15)  # SIGTERM: uvicorn finishes, then re-raises the signal
    assert "Application shutdown complete" in served.log.read_text()


def two_faces(lfw_people) -> bytes:
    first, second = (read_image(p) for p in list(lfw_people.probes.values())[:2])
    return encode_image(np.concatenate([first, second], axis=1))


def huge_png(side: int = 20000) -> bytes:
    """A valid grayscale PNG of side×side black pixels: about a megabyte on disk, 400 MB decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, parts = zlib.compressobj(9), bytes(side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def test_enroll_identify_verify_delete_over_http(server, lfw_people):
    with server.client() as http:
        assert http.get("/v1/health").json() == {"status": "ok"}
        empty = http.post("/v1/identify", files=files([lfw_people.strangers[0]], "image")).json()
        assert empty["gallery_size"] == 0 and all(f["subject"] is None for f in empty["faces"])
        for person, photos in lfw_people.enrolled.items():
            answer = http.post("/v1/subjects", data={"subject": person}, files=files(photos))
            body = answer.json()
            assert answer.status_code == 201 and body["faces"] == 5 and body["no_face"] == [] == body["refused"]
            assert [e["photo"] for e in body["enrolled"]] == list(range(5))
            assert all(0 <= e["quality"] <= 1 for e in body["enrolled"])
        assert error_of(http.post("/v1/subjects", data={"subject": person}, files=files(photos))) == (
            409,
            "duplicate_subject",
        )
        ready = http.get("/v1/ready").json()
        assert ready["gallery_size"] == 5 and ready["model"]
        correct = 0
        for person, probe in lfw_people.probes.items():
            faces = http.post("/v1/identify", files=files([probe], "image"), data={"k": "3"}).json()["faces"]
            largest = faces[0]  # faces come largest first
            assert len(largest["candidates"]) == 3
            assert largest["subject"] in (person, None)  # at FMR 1e-3: its person or unknown
            assert largest["fmr"] == 1e-3 and largest["model"] == ready["model"] and largest["threshold"] > 0
            correct += largest["candidates"][0]["subject"] == person
        assert correct >= 3  # the two-minute LFW model (the CLI round trip asserts the same)
        person, probe = next(iter(lfw_people.probes.items()))
        same = http.post("/v1/verify", files=files([probe], "image_a"), data={"subject": person, "fmr": "0.01"}).json()
        assert same["fmr"] == 0.01 and same["subject"] == person and same["same"] == (same["score"] > same["threshold"])
        pair = files([probe], "image_a") + files([lfw_people.enrolled[person][0]], "image_b")
        verdict = http.post("/v1/verify", files=pair).json()
        keys = {"score", "same", "threshold", "fmr", "calibrated", "model", "subject", "boxes", "faces", "qualities"}
        assert set(verdict) == keys and verdict["calibrated"] is True
        assert [face["box"] for face in verdict["faces"]] == verdict["boxes"]
        assert [face["quality"] for face in verdict["faces"]] == verdict["qualities"]
        added = http.post(f"/v1/subjects/{person}/faces", files=files([probe])).json()
        assert {k: added[k] for k in ("subject", "faces", "no_face", "refused")} == {
            "subject": person,
            "faces": 6,
            "no_face": [],
            "refused": [],
        }
        entry = http.get(f"/v1/subjects/{person}").json()
        assert entry["faces"] == 6 and len(entry["qualities"]) == 6 and all(0 <= q <= 1 for q in entry["qualities"])
        assert [s["subject"] for s in http.get("/v1/subjects").json()["subjects"]] == sorted(lfw_people.enrolled)
        deleted = {"deleted": person, "faces": 6, "erased": True, "erasure": "done"}
        assert http.delete(f"/v1/subjects/{person}").json() == deleted
        assert error_of(http.get(f"/v1/subjects/{person}")) == (404, "unknown_subject")
        again = http.post("/v1/identify", files=files([probe], "image")).json()["faces"][0]
        assert again["subject"] is None and person not in [c["subject"] for c in again["candidates"]]


def test_json_with_base64_answers_as_multipart_does(server, lfw_people):
    photo = lfw_people.strangers[1]
    with server.client() as http:
        from_form = http.post("/v1/embed", files=files([photo], "image")).json()
        encoded = base64.b64encode(photo.read_bytes()).decode()
        from_json = http.post("/v1/embed", json={"image": encoded}).json()
        data_uri = http.post("/v1/embed", json={"image": "data:image/jpeg;base64," + encoded}).json()
    first = np.array(from_form["faces"][0]["embedding"])
    assert np.allclose(first, from_json["faces"][0]["embedding"], atol=1e-6)
    assert np.allclose(first, data_uri["faces"][0]["embedding"], atol=1e-6)
    assert abs(np.linalg.norm(first) - 1) < 1e-4 and from_form["faces"][0]["box"] is not None


def test_bad_input_gets_its_code(server, lfw_people, tmp_path):
    photo = lfw_people.strangers[2].read_bytes()
    blank = encode_image(np.zeros((200, 200, 3), np.uint8), ".png")
    cases = {
        "non-image": (
            {"files": [("image", ("a.jpg", b"hello, this is text", "image/jpeg"))]},
            415,
            "unsupported_format",
        ),
        "truncated jpeg": ({"files": [("image", ("a.jpg", photo[: len(photo) // 2], "image/jpeg"))]}, 400, "bad_image"),
        "20000x20000 png": ({"files": [("image", ("a.png", huge_png(), "image/png"))]}, 413, "image_too_large"),
        "wrong content type": (
            {"content": photo, "headers": {"content-type": "image/jpeg"}},
            415,
            "unsupported_media_type",
        ),
        "bad base64": ({"json": {"image": "this is not base64!"}}, 400, "bad_base64"),
        "path": ({"json": {"image": "/etc/passwd"}}, 400, "path_or_url"),
        "url": ({"json": {"image": "http://127.0.0.1:9/face.jpg"}}, 400, "path_or_url"),
        "path as a form field": (
            {"data": {"image": "/etc/passwd"}, "files": [("x", ("x", b"", "a/b"))]},
            400,
            "path_or_url",
        ),
        "no face": ({"files": [("image", ("b.png", blank, "image/png"))]}, 422, "no_face"),
        "no image": ({"json": {"k": 3}}, 422, "invalid_request"),
        "unknown field": ({"json": {"image": base64.b64encode(photo).decode(), "kk": 1}}, 422, "invalid_request"),
        "not json": ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "bad_request"),
    }
    with server.client() as http:
        for name, (request, status, code) in cases.items():
            assert error_of(http.post("/v1/identify", **request)) == (status, code), name
        several = {"image_a": ("a.jpg", two_faces(lfw_people)), "image_b": ("b.jpg", photo)}
        assert error_of(http.post("/v1/verify", files=several, data={"single": "true"})) == (422, "several_faces")
        assert http.post("/v1/verify", files=several).status_code == 200  # default: the largest face
        assert error_of(http.post("/v1/verify", files={"image_a": ("a.jpg", photo)}, data={"subject": "nobody"})) == (
            404, "unknown_subject",
        )  # fmt: skip
        assert error_of(http.delete("/v1/subjects/nobody")) == (404, "unknown_subject")
        assert error_of(http.post("/v1/subjects/nobody/faces", files=files([lfw_people.strangers[2]]))) == (
            404,
            "unknown_subject",
        )
        assert error_of(http.post("/v1/identify", files={"image": ("a", photo)}, data={"fmr": "1e-6"}))[0] == 422
        too_big = {"files": [("image", ("a.jpg", photo + bytes(5 * 1024 * 1024), "image/jpeg"))]}
        assert error_of(http.post("/v1/identify", **too_big)) == (413, "request_too_large")
        assert error_of(http.get("/v1/nothing")) == (404, "not_found")
    assert not uploads_on_disk(server.tmpdir)


def uploads_on_disk(folder) -> list:
    """Files under the server's TMPDIR that hold image bytes (a 5 MB upload above would spool there)."""
    signatures = (b"\xff\xd8\xff", b"\x89PNG")
    return [p for p in folder.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in signatures)]


def test_a_body_above_the_limit_is_refused_before_it_is_read(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = "POST /v1/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        head += "Content-Length: 1000000000\r\n\r\n"
        sock.sendall(head.encode() + b'{"image": "')  # 11 of the announced 10^9 bytes
        answer = b""
        while b"request_too_large" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "request_too_large" in answer  # answered; the rest never sent


def test_concurrent_enroll_and_delete_of_one_subject(server, lfw_people):
    photos = next(iter(lfw_people.enrolled.values()))
    statuses = []

    def hammer(action: str) -> None:
        with server.client() as http:
            for _ in range(6):
                if action == "enroll":
                    answer = http.post("/v1/subjects", data={"subject": "contested"}, files=files(photos))
                else:
                    answer = http.delete("/v1/subjects/contested")
                statuses.append((action, answer.status_code))

    threads = [threading.Thread(target=hammer, args=(a,)) for a in ("enroll", "enroll", "delete", "delete")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {s for a, s in statuses if a == "enroll"} <= {201, 409} and {s for a, s in statuses if a == "delete"} <= {
        200,
        404,
    }
    with server.client() as http:
        final = http.get("/v1/subjects/contested")
        assert final.status_code == 404 or final.json()["faces"] == 5  # never a half-written subject
        if final.status_code == 200:
            http.delete("/v1/subjects/contested")


def test_metrics_count_requests_and_batch_sizes(server):
    with server.client() as http:
        text = http.get("/metrics").text
    assert 'facelearn_requests_total{route="/v1/identify",status="200"}' in text
    assert "facelearn_batch_faces_count" in text and "facelearn_request_seconds_bucket" in text


def test_no_image_or_embedding_reaches_the_log(server, lfw_people):
    with server.client() as http:
        embedding = http.post("/v1/embed", files=files([lfw_people.strangers[3]], "image")).json()["faces"][0][
            "embedding"
        ]
    log = server.log.read_text()
    assert f"{embedding[0]:.6f}"[:8] not in log and "base64" not in log and "JFIF" not in log


def test_parameters_in_the_query_are_taken_as_documented(server, lfw_people):
    probe = next(iter(lfw_people.probes.values()))
    person, photos = next(iter(lfw_people.enrolled.items()))
    with server.client() as http:  # someone to be a candidate, whichever tests ran before
        http.post("/v1/subjects", data={"subject": f"{person}_query"}, files=files(photos[:1]))
        documented = http.get("/openapi.json").json()["paths"]["/v1/identify"]["post"]["parameters"]
        assert {p["name"] for p in documented if p["in"] == "query"} == {"aligned", "k", "fmr", "fpir"}
        faces = http.post("/v1/identify?k=1&fmr=0.01", files=files([probe], "image")).json()["faces"]
        assert len(faces[0]["candidates"]) == 1 and faces[0]["fmr"] == 0.01  # once silently ignored: 5, 1e-3
        twice = http.post("/v1/identify?k=1", files=files([probe], "image"), data={"k": "2"})
        assert error_of(twice) == (422, "invalid_request") and "given twice" in twice.text
        unknown = http.post("/v1/identify?kk=1", files=files([probe], "image"))
        assert error_of(unknown) == (422, "invalid_request") and "kk" in unknown.text
        assert error_of(http.post("/v1/identify?image=/etc/passwd", files=files([probe], "image")))[1] == "path_or_url"


def test_every_face_answer_carries_box_landmarks_detection_score_and_quality(server, lfw_people):
    probe = next(iter(lfw_people.probes.values()))
    with server.client() as http:
        identified = http.post("/v1/identify", files=files([probe], "image")).json()["faces"]
        embedded = http.post("/v1/embed", files=files([probe], "image")).json()["faces"]
    for face in (identified[0], embedded[0]):
        x1, y1, x2, y2 = face["box"]
        assert len(face["landmarks"]) == 5 and all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face["landmarks"])
        assert 0.5 < face["detection_score"] <= 1 and 0 <= face["quality"] <= 1
    assert identified[0]["box"] == embedded[0]["box"]


def test_the_services_quality_is_the_recognizers(server, lfw_people):
    """The service embeds the quality estimate's perturbed views in the batcher's model calls, beside the
    faces: the score it answers is the one the Recognizer computes alone, for photos and aligned faces."""
    from facelearn import Recognizer

    recognizer = Recognizer.load(lfw_people.model, weights=str(lfw_people.weights))
    photos = list(lfw_people.probes.values())[:2]
    _, expected = recognizer.embed_with_quality(photos)
    aligned = recognizer.aligned_faces(read_image(photos[0]))[0][0]
    _, (expected_aligned,) = recognizer.embed_with_quality([aligned], aligned=True)
    with server.client() as http:
        answers = [http.post("/v1/embed", files=files([p], "image")).json()["faces"][0] for p in photos]
        sent = {"image": ("face.png", encode_image(aligned, ".png"), "image/png")}
        aligned_answer = http.post("/v1/embed?aligned=true", files=sent).json()["faces"][0]
    for answer, quality in zip(answers, expected, strict=True):
        assert answer["quality"] == pytest.approx(quality.quality, abs=0.01)
    assert aligned_answer["quality"] == pytest.approx(expected_aligned.quality, abs=0.01)
    assert len({round(a["quality"], 3) for a in answers}) == 2  # two photos, two different scores


def test_several_images_are_embedded_in_one_request(server, lfw_people):
    """``images``: every face of every upload in one model call, each saying which upload it is in; a photo
    without a face is listed, not an error; the embeddings are those of one upload a request."""
    photos = list(lfw_people.probes.values())[:2]
    blank = ("images", ("blank.png", encode_image(np.zeros((120, 120, 3), np.uint8), ".png"), "image/png"))
    with server.client() as http:
        alone = [http.post("/v1/embed", files=files([p], "image")).json()["faces"][0] for p in photos]
        together = http.post("/v1/embed", files=[*files(photos[:1]), blank, *files(photos[1:])]).json()
        both = http.post("/v1/embed", files=[*files(photos[:1], "image"), *files(photos[1:])])
        neither = http.post("/v1/embed", files={"aligned": (None, "false")})
    images = [f["image"] for f in together["faces"]]
    assert together["no_face"] == [1] and set(images) == {0, 2} and images == sorted(images)
    largest = [together["faces"][images.index(i)] for i in (0, 2)]  # each upload's faces, largest first
    for single, face in zip(alone, largest, strict=True):
        assert single["image"] == 0 and single["box"] == face["box"]
        assert np.dot(single["embedding"], face["embedding"]) > 0.999
        assert face["quality"] == pytest.approx(single["quality"], abs=0.01)
    assert error_of(both) == (422, "invalid_request") and "exactly one" in both.text
    assert error_of(neither) == (422, "invalid_request")


def test_a_photo_without_a_face_is_an_error_in_python_as_over_rest(server, lfw_people, tmp_path):
    from facelearn import Recognizer
    from facelearn.deploy.recognizer import NoFaceFound

    blank = encode_image(np.zeros((200, 200, 3), np.uint8), ".png")
    with server.client() as http:
        assert error_of(http.post("/v1/identify", files={"image": ("b.png", blank)})) == (422, "no_face")
    recognizer = Recognizer.load(lfw_people.model, gallery=tmp_path / "g.db", weights=str(lfw_people.weights))
    with pytest.raises(NoFaceFound, match="no face found"):
        recognizer.identify(blank)
    with pytest.raises(NoFaceFound, match="no face found in the second image"):
        recognizer.verify(lfw_people.strangers[0], blank)


def test_the_docs_page_needs_no_network(server):
    with server.client() as http:
        page = http.get("/docs")
        assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # no CDN: every asset from here
        script = http.get("/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 500_000 and b"SwaggerUIBundle" in script.content
        assert http.get("/docs/assets/swagger-ui.css").status_code == 200
        assert "/openapi.json" in http.get("/docs/start.js").text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert http.get("/redoc").status_code == 404  # ReDoc would need a CDN: /openapi.json serves other viewers


def test_quality_and_refusals_in_the_answers(server, lfw_people):
    """Every face carries its quality; a face below the gate is refused with its reasons (too small here: a
    photo shrunk into a canvas), the rest enrolled; all refused is a 422 naming every image's reasons."""
    import cv2

    photo = lfw_people.enrolled[next(iter(lfw_people.enrolled))][0]
    canvas = np.full((250, 250, 3), 128, np.uint8)
    canvas[80:170, 80:170] = cv2.resize(read_image(photo), (90, 90), interpolation=cv2.INTER_AREA)
    tiny = ("images", ("tiny.png", encode_image(canvas, ".png"), "image/png"))
    with server.client() as http:
        embedded = http.post("/v1/embed", files=files([photo], "image")).json()["faces"]
        assert all(0 <= face["quality"] <= 1 for face in embedded)
        identified = http.post("/v1/identify", files=files([photo], "image")).json()["faces"]
        assert all(0 <= face["quality"] <= 1 for face in identified)
        answer = http.post("/v1/subjects", data={"subject": "gated"}, files=[*files([photo]), tiny])
        body = answer.json()
        assert answer.status_code == 201 and body["faces"] == 1 and body["no_face"] == []
        assert body["enrolled"][0]["photo"] == 0 and 0 <= body["enrolled"][0]["quality"] <= 1
        (refused,) = body["refused"]
        assert refused["photo"] == 1 and refused["reasons"][0].startswith("too small: ")
        assert 0 <= refused["quality"] <= 1
        assert http.get("/v1/subjects/gated").json()["qualities"] == [body["enrolled"][0]["quality"]]
        nothing = http.post("/v1/subjects", data={"subject": "refused"}, files=[tiny, tiny])
        assert error_of(nothing) == (422, "refused")
        message = nothing.json()["error"]["message"]
        assert "nothing enrolled" in message and "images[0]: too small" in message and "images[1]: too small" in message
        assert error_of(http.get("/v1/subjects/refused")) == (404, "unknown_subject")
        http.delete("/v1/subjects/gated")
