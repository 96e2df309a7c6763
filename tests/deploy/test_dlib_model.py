"""dlib's pretrained descriptor as a named model: Recognizer.load("dlib") with its own detector and chips, its
shipped LFW-a thresholds, the CLI's --model dlib and facelearn calibrate dlib, and the missing-extra error."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import need, shared_path

from facelearn.cli import main as facelearn
from facelearn.data.images import read_image
from facelearn.deploy.recognizer import Recognizer
from facelearn.errors import ConfigError

PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]
STRANGER = "Hugo_Chavez"


def photo(name: str, number: int):
    return shared_path("data", "lfw_a", "lfw", name, f"{name}_{number:04d}.jpg")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A FACELEARN_HOME of the test's own: no user calibration of dlib is found there."""
    monkeypatch.setenv("FACELEARN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_without_the_dlib_extra_the_error_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"needs dlib and its models: pip install 'facelearn\[dlib\]'"):
        Recognizer.load("dlib")
    a, b = str(photo(PEOPLE[0], 1)), str(photo(PEOPLE[0], 2))  # real photos: a bad path is said before the model
    assert facelearn(["verify", a, b, "--model", "dlib"]) == 2
    assert "pip install 'facelearn[dlib]'" in capsys.readouterr().err


def test_dlib_verifies_and_identifies_real_lfw_photos_through_a_sqlite_gallery(home, tmp_path):
    need("dlib", "dlib")
    recognizer = Recognizer.load("dlib", gallery=tmp_path / "people.db")
    assert recognizer.input_size == 150 and recognizer.embedder.embedding_size == 128
    assert "LFW-a" in recognizer.calibration.source and recognizer.threshold(1e-3) > recognizer.threshold(1e-2)
    for person in PEOPLE:
        assert recognizer.enroll(person, [read_image(photo(person, n)) for n in (1, 2)])["faces"] == 2
    named = [recognizer.identify(read_image(photo(person, 3)))[0]["subject"] for person in PEOPLE]
    assert sum(n == p for n, p in zip(named, PEOPLE, strict=True)) >= 3, named
    stranger = recognizer.identify(read_image(photo(STRANGER, 1)))
    assert len(stranger) == 1 and stranger[0]["subject"] is None and len(stranger[0]["box"]) == 4
    same = recognizer.verify(photo(PEOPLE[0], 1), photo(PEOPLE[0], 4))
    assert same["same"] and same["model"] == recognizer.model_id
    assert not recognizer.verify(photo(PEOPLE[0], 1), photo(STRANGER, 2))["same"]

    image = read_image(photo(PEOPLE[1], 3))
    chips, _ = recognizer.aligned_faces(image)  # dlib's own 150×150 chips, given back as aligned faces
    assert chips[0].shape == (150, 150, 3)
    assert float(recognizer.embed([chips[0]], aligned=True)[0] @ recognizer.embed([image])[0]) > 0.9999
    from facelearn.deploy.dlib_model import MODEL_FILE, file_digest, import_dlib

    assert recognizer.model_id == file_digest(import_dlib()[1] / MODEL_FILE)[:16]  # the model file's digest
    from facelearn.deploy.teachers import DlibTeacher

    taught = DlibTeacher().embed(image)  # the teacher runs the same code: the raw descriptor of the same face
    assert float(taught @ recognizer.embed([image])[0] / np.linalg.norm(taught)) > 0.9999


def test_the_cli_takes_model_dlib_and_calibrate_keeps_the_users_thresholds(home, tmp_path, capsys):
    need("dlib", "dlib")
    a, b = str(photo(PEOPLE[0], 1)), str(photo(PEOPLE[0], 5))
    assert facelearn(["verify", a, b, "--model", "dlib", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["same"] is True
    folder = tmp_path / "mine"
    for person in PEOPLE:
        (folder / person).mkdir(parents=True)
        for number in (6, 7, 8):
            (folder / person / f"{number}.jpg").symlink_to(photo(person, number))
    assert facelearn(["calibrate", "dlib", "--gallery", str(folder), "--fmr", "0.2"]) == 0
    stored = home / "models" / "dlib" / "calibration.json"
    assert str(stored) in capsys.readouterr().out
    assert str(folder) in json.loads(stored.read_text())["calibration"]["source"]
    assert str(folder) in Recognizer.load("dlib").calibration.source  # used from now on
    from_gallery = json.loads(stored.read_text())["calibration"]["points"]
    assert facelearn(["calibrate", "dlib", "--photos", str(folder), "--fmr", "0.2"]) == 0  # photos: the same pairs
    assert json.loads(stored.read_text())["calibration"]["points"] == from_gallery
    assert facelearn(["calibrate", "dlib", "--bin", "faces.bin"]) == 2
    assert "calibrate it on photos" in capsys.readouterr().err
