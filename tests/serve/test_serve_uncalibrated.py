"""``facelearn serve --threshold`` for a model without calibration: every decision says it was taken at an
uncalibrated threshold (``fmr`` null, ``calibrated`` false); without it the service says how to calibrate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import error_of, need, shared_path
from helpers import untrained_model, wait_ready

from facelearn.data.images import encode_image

need("fastapi", "serve")

pytestmark = pytest.mark.slow  # loads a model in a service


def ready_client(tmp_path, threshold):
    from fastapi.testclient import TestClient

    from facelearn.serve.app import create_app
    from facelearn.serve.service import ServeSettings, Service

    model = untrained_model(tmp_path / "model.pt")
    weights = str(shared_path("weights", "retinaface"))
    settings = ServeSettings(str(model), str(tmp_path / "g.db"), weights=weights, backend="torch", threshold=threshold)
    return TestClient(create_app(Service(settings)), base_url="http://127.0.0.1")


@pytest.mark.parametrize("threshold", [0.25, None])
def test_an_uncalibrated_model_serves_only_with_a_threshold_it_names(tmp_path, threshold):
    faces = [np.random.default_rng(i).integers(0, 255, (48, 48, 3), np.uint8) for i in range(2)]
    names = ("image_a", "image_b")
    pair = {name: (f"{name}.png", encode_image(face, ".png")) for name, face in zip(names, faces, strict=True)}
    with ready_client(tmp_path, threshold) as http:
        wait_ready(http)
        answer = http.post("/v1/verify?aligned=true", files=pair)
    if threshold is None:
        assert error_of(answer) == (422, "invalid_request") and "no calibration" in answer.text
        return
    verdict = answer.json()
    assert verdict["threshold"] == threshold and verdict["fmr"] is None and verdict["calibrated"] is False
    assert verdict["same"] == (verdict["score"] > threshold)
