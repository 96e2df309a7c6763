"""Identification thresholds at a named FPIR for the gallery's size: measured, stored with it, flagged stale."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from facelearn.deploy.calibration import wilson_interval
from facelearn.deploy.fusion import fuse
from facelearn.deploy.gallery import open_gallery
from facelearn.deploy.open_set import UnsupportedFPIR, calibrate_open_set
from facelearn.deploy.recognizer import Recognizer
from facelearn.errors import ConfigError, DataError

DIM = 16


def unit_rows(count, seed=0):
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class PixelEmbedder:
    """An aligned 4×4 face's first 16 values, centred and scaled to unit length: a model whose embedding of a
    face is known exactly."""

    model_digest, embedding_size, input_size = "pixels" * 4, DIM, 4

    def embed(self, faces):
        rows = faces.reshape(len(faces), -1)[:, :DIM].astype(np.float32) - 127.5
        return rows / np.linalg.norm(rows, axis=1, keepdims=True), np.ones(len(faces), np.float32)


@pytest.fixture
def recognizer(tmp_path):
    recognizer = Recognizer(PixelEmbedder())
    recognizer.open_gallery(tmp_path / "people.db")
    for number, faces in enumerate(np.split(unit_rows(40, seed=1), 20)):
        recognizer.add(f"person{number:02d}", faces)
    return recognizer


def test_the_threshold_lets_through_at_most_fpir_of_the_non_mated_searches():
    best = np.random.default_rng(0).uniform(0.1, 0.9, 1000)
    calibration = calibrate_open_set(best, (1e-2, 1e-1), gallery_size=252, model="m", fusion="mean")
    ordered = np.sort(best)[::-1]
    for point, alarms in zip(calibration.points, (10, 100), strict=True):
        assert point["threshold"] == ordered[alarms]  # the (k+1)-th best: exactly k = FPIR·n searches above
        assert point["realised_fpir"] == alarms / 1000
        assert point["fpir_interval"] == wilson_interval(alarms, 1000)
    assert calibration.gallery_size == 252 and calibration.num_searches == 1000


def test_an_fpir_the_searches_cannot_support_names_what_it_needs_and_stores_nothing(recognizer):
    with pytest.raises(UnsupportedFPIR, match=r"FPIR 0.001 needs at least 10,000 non-mated searches.* gave 1,000"):
        recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (1e-2, 1e-3))
    assert recognizer.gallery.identification_calibration() is None
    recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (1e-2,))
    kept = recognizer.gallery.identification_calibration()
    with pytest.raises(UnsupportedFPIR, match="needs at least 1,000 non-mated searches"):
        recognizer.calibrate_identification_embeddings(unit_rows(999, seed=3), 500, (1e-2,))
    assert recognizer.gallery.identification_calibration() == kept  # the working calibration is untouched
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (0.0,))
    with pytest.raises(UnsupportedFPIR, match="needs at least 1,000"):  # refused before a photo is embedded
        recognizer.calibrate_identification({"stranger": ["no-such-photo.jpg"] * 10}, (1e-2,))


def test_every_answer_says_what_its_threshold_holds_for_and_warns_when_the_gallery_outgrows_it(recognizer):
    calibration = recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (1e-2,))
    query = unit_rows(3, seed=4)
    answers, size = recognizer.search(query, 2, fpir=1e-2)
    for answer in answers:
        assert answer["threshold"] == calibration.threshold(1e-2)
        assert (answer["fpir"], answer["fmr"], answer["fusion"]) == (1e-2, None, "mean")
        assert answer["gallery_size"] == answer["calibrated_gallery_size"] == size == 20
        assert answer["warning"] is None
    extra = unit_rows(6, seed=5)
    for number in range(5):  # 25 subjects: 1.25 × 20, still within what the threshold holds for
        recognizer.add(f"newcomer{number}", extra[number : number + 1])
    assert all(a["warning"] is None for a in recognizer.search(query, 2, fpir=1e-2)[0])
    recognizer.add("newcomer5", extra[5:6])
    answers, _ = recognizer.search(query, 2, fpir=1e-2)
    assert all("calibrated for 20 subjects and the gallery now holds 26" in a["warning"] for a in answers)
    recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (1e-2,))
    answers, _ = recognizer.search(query, 2, fpir=1e-2)
    assert all(a["warning"] is None and a["calibrated_gallery_size"] == 26 for a in answers)


def test_identification_at_an_fpir_needs_the_gallery_s_calibration_and_its_fusion(recognizer):
    with pytest.raises(DataError, match="no identification calibration.*facelearn calibrate-gallery"):
        recognizer.search(unit_rows(1), fpir=1e-2)
    recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (1e-2,), fusion="best")
    with pytest.raises(DataError, match="FPIR 0.001 was not calibrated for this gallery"):
        recognizer.search(unit_rows(1), fpir=1e-3)
    with pytest.raises(DataError, match="calibrated with fusion 'best'"):
        recognizer.search(unit_rows(1), fpir=1e-2, fusion="mean")
    with pytest.raises(DataError, match="no 1:1 \\(FMR\\) threshold"):
        recognizer.search(unit_rows(1), fmr=1e-3, fusion="mean")
    assert recognizer.search(unit_rows(1), fpir=1e-2)[0][0]["fusion"] == "best"


def test_a_burst_of_one_person_is_one_fused_probe(recognizer):
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(3)]
    embeddings = recognizer.embed(frames, aligned=True)
    recognizer.add("burst", embeddings[:1])
    recognizer.calibrate_identification_embeddings(unit_rows(1000, seed=2), 500, (1e-2,))
    (answer,) = recognizer.identify(frames, k=1, fpir=1e-2, aligned=True, as_one_person=True)
    template = embeddings[0]  # one enrolled face: its template is itself
    assert answer["images"] == 3 and answer["no_face"] == []
    assert answer["candidates"][0]["score"] == pytest.approx(float(fuse(embeddings) @ template), abs=1e-5)
    with pytest.raises(DataError, match="a list of images of one person"):
        recognizer.identify(frames[0], fpir=1e-2, aligned=True, as_one_person=True)


@pytest.mark.parametrize("store", ["sqlite", "milvus"])
def test_the_calibration_is_kept_in_the_gallery_itself(tmp_path, store):
    if store == "milvus":
        need("milvus_lite", "milvus")
    path = tmp_path / "people.db"
    gallery = open_gallery(path, "m", DIM, store)
    gallery.enroll("ada", unit_rows(1))
    calibration = calibrate_open_set(np.linspace(0, 1, 100), (0.1,), 1, "m", "mean", "test")
    gallery.store_identification_calibration(calibration.to_dict())
    gallery.close()
    reopened = open_gallery(path, "m", DIM, store)
    assert reopened.identification_calibration()["points"][0]["threshold"] == calibration.points[0]["threshold"]
    reopened.close()


def test_the_held_out_interval_covers_new_strangers_as_often_as_it_says():
    """Simulated strangers: a threshold set on 1,000 searches at FPIR 1e-2, then 700 new searches. The
    held-out FPIR falls in the predicted 95 % interval about 95 % of the time (the interval is discrete,
    so a little more); the calibration's own Wilson interval, which ignores the new sample's noise, less."""
    from facelearn.deploy.open_set import held_out_interval

    rng, trials, inside, inside_wilson = np.random.default_rng(0), 400, 0, 0
    low, high = held_out_interval(10, 1000, 700)
    wilson_low, wilson_high = wilson_interval(10, 1000)
    for _ in range(trials):
        threshold = np.sort(rng.normal(size=1000))[::-1][10]
        realised = np.mean(rng.normal(size=700) > threshold)
        inside += low <= realised <= high
        inside_wilson += wilson_low <= realised <= wilson_high
    assert 0.92 <= inside / trials <= 0.995
    assert inside_wilson < inside
