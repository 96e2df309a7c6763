"""The hostile trial of ``facelearn serve`` (issue 24), each case against a real served process on
loopback: header-lying JPEGs and memory, cross-site writes (in Chromium) and DNS rebinding, revoked
keys, slow-loris, misconfiguration, malformed requests, the CLI's edges and the audit log."""

from __future__ import annotations

import base64
import json
import socket
import time

import numpy as np
import pytest
from conftest import error_of, header_lying_jpeg, image_files, memory_mb, need, reset_peak_memory

from facelearn.data.images import encode_image

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work).start()
    yield served
    served.stop()


def log_size(served: Served) -> int:
    return served.log.stat().st_size


# ---------------------------------------------------------------- 1. header-lying JPEGs, pixels, image count
def test_sixteen_header_lying_jpegs_are_refused_and_memory_stays_flat(server, lfw_people):
    photo = lfw_people.strangers[0]
    lying = header_lying_jpeg(photo)  # 6 KB saying 9000×4000: 108 MB of grey each when decoded
    with server.client() as http:
        assert http.post("/v1/embed", files=image_files([photo], "image")).status_code == 200  # warm
        idle = memory_mb(server.process.pid)["VmRSS"]
        reset_peak_memory(server.process.pid)
        parts = [("images", (f"{i}.jpg", lying, "image/jpeg")) for i in range(16)]
        answer = http.post("/v1/subjects", data={"subject": "liar"}, files=parts)
        assert error_of(answer) == (400, "bad_image") and "ends early" in answer.json()["error"]["message"]
        one = http.post("/v1/identify", files={"image": ("a.jpg", lying, "image/jpeg")})
        assert error_of(one) == (400, "bad_image")
        encoded = base64.b64encode(lying).decode()
        assert error_of(http.post("/v1/embed", json={"image": encoded})) == (400, "bad_image")
        peak = memory_mb(server.process.pid)["VmHWM"]
        assert error_of(http.get("/v1/subjects/liar")) == (404, "unknown_subject")
    print(f"server RSS: idle {idle:.0f} MB, peak during 16 header-lying JPEGs {peak:.0f} MB")
    assert peak - idle < 200, (idle, peak)


def test_a_request_holds_a_bounded_count_and_pixels_of_images(server, lfw_people):
    photo = lfw_people.strangers[1].read_bytes()
    large = encode_image(np.full((6000, 6000, 3), 90, np.uint8))  # honest, complete: 36 M pixels in 0.4 MB
    with server.client() as http:
        many = [base64.b64encode(photo).decode()] * 300  # JSON had no limit: 300 were accepted
        assert error_of(http.post("/v1/subjects", json={"subject": "many", "images": many})) == (
            413,
            "too_many_images",
        )
        parts = [("images", (f"{i}.jpg", photo, "image/jpeg")) for i in range(33)]
        assert error_of(http.post("/v1/subjects", data={"subject": "many"}, files=parts)) == (413, "too_many_images")
        three = [("images", (f"{i}.jpg", large, "image/jpeg")) for i in range(3)]  # 108 M > 100 M pixels
        assert error_of(http.post("/v1/subjects", data={"subject": "large"}, files=three)) == (413, "too_many_pixels")
        assert error_of(http.get("/v1/subjects/many")) == (404, "unknown_subject")
