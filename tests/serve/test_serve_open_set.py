"""POST /v1/identify at an FPIR: the answer names the rate and the gallery sizes, and warns when stale."""

from __future__ import annotations

import pytest
from conftest import error_of, need
from conftest import image_files as files
from helpers import lfw_strangers

from facelearn.cli import main as facelearn

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # the LFW people model, a server process, 120 photos embedded


def test_identify_at_the_gallery_s_fpir_over_http(lfw_people, tmp_path):
    gallery = tmp_path / "people.db"
    served = Served(lfw_people.model, gallery, lfw_people.weights, tmp_path).start()
    try:
        with served.client() as http:
            for person, photos in lfw_people.enrolled.items():
                assert http.post("/v1/subjects", data={"subject": person}, files=files(photos)).status_code == 201
            person, probe = next(iter(lfw_people.probes.items()))
            status, code = error_of(http.post("/v1/identify", files=files([probe], "image"), data={"fpir": "0.1"}))
            assert (status, code) == (422, "invalid_request")
            both = http.post("/v1/identify", files=files([probe], "image"), data={"fpir": "0.1", "fmr": "0.001"})
            assert error_of(both) == (422, "invalid_request") and "not both" in both.text

            newcomers = lfw_people.strangers[:2]
            taken = set(lfw_people.enrolled) | {p.parent.name for p in newcomers}
            strangers = lfw_strangers(tmp_path / "strangers", taken, 120)
            options = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
            assert (
                facelearn(["calibrate-gallery", str(gallery), "--strangers", str(strangers), "--fpir", "0.1", *options])
                == 0
            )

            answer = http.post("/v1/identify", files=files([probe], "image"), data={"fpir": "0.1"}).json()
            assert (answer["fpir"], answer["fmr"], answer["fusion"]) == (0.1, None, "mean")
            assert answer["gallery_size"] == answer["calibrated_gallery_size"] == 5 and answer["warning"] is None
            face = answer["faces"][0]
            assert (face["fpir"], face["gallery_size"], face["calibrated_gallery_size"]) == (0.1, 5, 5)

            plain = http.post("/v1/identify", files=files([probe], "image")).json()  # the 1:1 FMR, as before
            assert (plain["fmr"], plain["fpir"], plain["fusion"], plain["calibrated_gallery_size"]) == (
                1e-3,
                None,
                "best",
                None,
            )

            for photo in newcomers:
                assert (
                    http.post("/v1/subjects", data={"subject": photo.parent.name}, files=files([photo])).status_code
                    == 201
                )
            stale = http.post("/v1/identify", files=files([probe], "image"), data={"fpir": "0.1"}).json()
            assert stale["gallery_size"] == 7 and stale["calibrated_gallery_size"] == 5
            assert "calibrated for 5 subjects" in stale["warning"]
            assert all("calibrated for 5 subjects" in f["warning"] for f in stale["faces"])
    finally:
        served.stop()
