"""Face quality on real LFW-a faces, the enroll gate's reasons, nothing enrolled when all is refused, the errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import need

from facelearn.cli import main as facelearn
from facelearn.data.images import encode_image, read_image
from facelearn.deploy.quality import FaceQuality, NormQuality, QualityGate, QualityRefused, yaw
from facelearn.deploy.recognizer import Recognizer
from facelearn.errors import ConfigError, DataError

pytestmark = pytest.mark.slow  # the two-minute LFW model (reused where FACELEARN_TEST_LFW_PEOPLE is set)


def blurred(photo: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(photo, (0, 0), 2.5)


def downscaled(photo: np.ndarray) -> np.ndarray:
    """A quarter of the resolution, enlarged back: the same face, its detail gone."""
    small = cv2.resize(photo, (photo.shape[1] // 4, photo.shape[0] // 4), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, photo.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def small_face(photo: np.ndarray, side: int = 90) -> np.ndarray:
    """The photo shrunk to ``side`` pixels in the middle of a grey 250×250 canvas: a face ~16 px between the eyes."""
    canvas = np.full((250, 250, 3), 128, np.uint8)
    start = (250 - side) // 2
    canvas[start : start + side, start : start + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return canvas


@pytest.fixture(scope="module")
def recognizer(lfw_people):
    return Recognizer.load(lfw_people.model, weights=str(lfw_people.weights), backend="torch")


@pytest.mark.parametrize("model", ["lfw_people", "dlib"])
def test_a_blurred_or_downscaled_lfw_face_scores_lower_than_the_original(model, lfw_people, recognizer):
    if model == "dlib":
        need("dlib", "dlib")
        recognizer = Recognizer.load("dlib")
    assert recognizer.quality.method == "estimate"  # neither model's norm is a quality
    for path in lfw_people.strangers[:4]:  # people the LFW model never saw
        photo = read_image(path)
        _, (original, blur, down) = recognizer.embed_with_quality([photo, blurred(photo), downscaled(photo)])
        assert 0 <= blur.quality < original.quality <= 1, (path.name, original, blur)
        assert 0 <= down.quality < original.quality, (path.name, original, down)
        assert blur.blur > original.blur and down.blur > original.blur


def test_an_aligned_face_is_scored_too(lfw_people, recognizer):
    photo = read_image(lfw_people.strangers[0])
    faces, _ = recognizer.aligned_faces(photo)
    _, (sharp, soft) = recognizer.embed_with_quality([faces[0], blurred(faces[0])], aligned=True)
    assert sharp.eye_distance is None and sharp.yaw is None  # no photo: size and pose are unknown
    assert soft.quality < sharp.quality


def test_the_gate_says_why_in_words():
    gate = QualityGate(min_quality=0.3, min_eye_distance=24)
    assert gate.reasons(FaceQuality(0.8, 0.3, 0.1, 60.0)) == []
    assert gate.reasons(FaceQuality(0.8, 0.3, 0.1, 17.6)) == ["too small: 18 px between the eyes"]
    assert gate.reasons(FaceQuality(0.1, 0.8, 0.1, 60.0)) == ["blurred"]
    assert gate.reasons(FaceQuality(0.1, 0.3, 0.95, 60.0)) == ["profile"]
    everything = ["too small: 20 px between the eyes", "blurred", "profile"]
    assert gate.reasons(FaceQuality(0.1, 0.8, 0.95, 20.0)) == everything
    assert gate.reasons(FaceQuality(0.21, 0.3, 0.1, 60.0)) == ["low quality: 0.21 < 0.30"]
    assert gate.reasons(FaceQuality(0.1, 0.3, None, None)) == ["low quality: 0.10 < 0.30"]  # an aligned face
    with pytest.raises(ConfigError, match="min_quality"):
        QualityGate(min_quality=1.5)


def test_yaw_from_five_points():
    frontal = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]])  # ArcFace template
    assert yaw(frontal) < 0.05
    turned = frontal.copy()
    turned[2, 0] = 75.0  # the nose beyond an eye: a profile
    assert yaw(turned) == 1.0


def test_a_small_face_is_refused_and_the_rest_enrolled(lfw_people, tmp_path):
    recognizer = Recognizer.load(
        lfw_people.model, gallery=tmp_path / "g.db", weights=str(lfw_people.weights), backend="torch"
    )
    recognizer.gate = QualityGate(min_quality=0.0)  # the size alone
    photos = [read_image(p) for p in lfw_people.strangers[:2]]
    answer = recognizer.enroll("someone", [photos[0], small_face(photos[1])])
    assert answer["faces"] == 1 and answer["no_face"] == []
    assert [e["photo"] for e in answer["enrolled"]] == [0] and 0 <= answer["enrolled"][0]["quality"] <= 1
    (refused,) = answer["refused"]
    assert refused["photo"] == 1 and refused["reasons"][0].startswith("too small: ")
    assert int(refused["reasons"][0].split()[2]) < 24  # "too small: 16 px between the eyes"
    (listed,) = recognizer.subjects()
    assert listed["qualities"] == [pytest.approx(answer["enrolled"][0]["quality"])]  # stored with the face


def test_nothing_is_enrolled_when_every_face_is_refused(lfw_people, tmp_path):
    recognizer = Recognizer.load(
        lfw_people.model, gallery=tmp_path / "g.db", weights=str(lfw_people.weights), backend="torch"
    )
    recognizer.gate = QualityGate(min_quality=0.9)  # above anything this model's faces reach
    photos = [read_image(p) for p in lfw_people.strangers[:2]]
    blank = np.full((120, 120, 3), 90, np.uint8)
    with pytest.raises(QualityRefused) as refusal:
        recognizer.enroll("nobody", [small_face(photos[0]), blurred(photos[1]), blank])
    message = str(refusal.value)
    assert "nothing enrolled" in message and "image 0: too small: " in message and "image 2: no face found" in message
    assert [r["photo"] for r in refusal.value.refused] == [0, 1] and refusal.value.no_face == [2]
    assert all(r["reasons"] for r in refusal.value.refused)
    assert recognizer.subjects() == []


def test_a_quality_the_model_cannot_give_is_a_clear_error(lfw_people, tmp_path):
    with pytest.raises(ConfigError, match="norm is not a quality score"):
        Recognizer.load(lfw_people.model, detector=None, quality="norm", backend="torch")
    with pytest.raises(ConfigError, match="valid: auto, norm, estimate, none"):
        Recognizer.load(lfw_people.model, detector=None, quality="sharpest", backend="torch")
    unscored = Recognizer.load(
        lfw_people.model, gallery=tmp_path / "g.db", weights=str(lfw_people.weights), quality=None, backend="torch"
    )
    with pytest.raises(DataError, match="the enroll gate needs a quality score"):
        unscored.enroll("x", [read_image(lfw_people.strangers[0])])
    assert unscored.enroll("x", [read_image(lfw_people.strangers[0])], gate=False)["enrolled"][0]["quality"] is None


def test_magface_and_adaface_norms_map_onto_their_own_ranges():
    magface = NormQuality.from_head({"name": "magface", "l_a": 10, "u_a": 110})
    assert magface(np.array([5.0, 10.0, 60.0, 110.0, 200.0])).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    adaface = NormQuality.from_head({"name": "adaface", "h": 0.333}, {"head.batch_mean": 20.0, "head.batch_std": 3.33})
    assert adaface(np.array([20.0]))[0] == pytest.approx(0.5)  # the running mean: AdaFace's ‖ẑ‖ = 0
    assert adaface(np.array([30.0]))[0] == pytest.approx(1.0)  # a std/h above it: ‖ẑ‖ = 1
    assert NormQuality.from_head({"name": "arcface"}) is None


def test_the_cli_lists_refusals_and_gallery_list_shows_quality(lfw_people, tmp_path, capsys):
    good, other = lfw_people.strangers[:2]
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(encode_image(small_face(read_image(other)), ".png"))
    gallery = str(tmp_path / "g.db")
    options = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights), "--min-quality", "0"]
    capsys.readouterr()
    assert facelearn(["enroll", gallery, "someone", str(good), str(tiny), *options, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["enrolled"][0]["photo"] == str(good) and 0 <= answer["enrolled"][0]["quality"] <= 1
    assert answer["refused"][0]["photo"] == str(tiny) and answer["refused"][0]["reasons"][0].startswith("too small")
    assert facelearn(["enroll", gallery, "another", str(good), str(tiny), *options]) == 0
    printed = capsys.readouterr().out
    assert f"{tiny}: refused: too small: " in printed and f"{good}: enrolled (quality 0." in printed
    assert facelearn(["enroll", gallery, "nobody", str(tiny), *options]) == 2
    assert f"{tiny}: too small: " in capsys.readouterr().err  # nothing enrolled, the reason named
    assert facelearn(["gallery", "list", gallery]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("another\t1 faces\tquality 0.") and len(lines) == 2
