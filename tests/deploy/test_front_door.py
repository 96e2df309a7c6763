"""The commands as a person uses them, on an untrained model and synthetic faces (seconds): bad paths said
before a model loads, an uncalibrated threshold said in every answer, one subject listed, the backend
choice remembered per model and machine."""

from __future__ import annotations

import contextlib
import json
import os
import threading

import numpy as np
import pytest
from helpers import synthetic_people, untrained_model

from facelearn.cli import main as facelearn
from facelearn.data.synthetic import UNSEEN_IDENTITY_OFFSET

pytestmark = pytest.mark.slow  # each command loads a model (seconds on 2 shared cores)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return untrained_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELEARN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def faces(folder, people: int, photos: int):
    return synthetic_people(folder, range(people), photos, 48, seed=3, first_identity=UNSEEN_IDENTITY_OFFSET + 9000)


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def release(fifo) -> None:
    with contextlib.suppress(OSError):  # nobody reading: nothing hangs
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a blocked reader gets end-of-file


def test_bad_paths_are_said_before_the_model_loads(model, tmp_path, capsys):
    photos = faces(tmp_path / "faces", 1, 2)
    good = str(photos / "p0" / "0.png")
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    options = ["--model", str(model), "--backend", "torch", "--aligned", "--threshold", "0.3"]
    cases = {
        "missing": (str(tmp_path / "missing.jpg"), "missing.jpg does not exist"),
        "folder": (str(photos), ("is a folder where a photo is expected", "of subject folders is enrolled without")),
        "fifo": (str(fifo), "is not a regular file"),
        "not an image": (str(text), ("1 of 1 photos had no answer", "not a decodable image")),
    }
    unblock = threading.Timer(60, release, (fifo,))  # a read that hangs ends (and the message differs)
    unblock.daemon = True
    unblock.start()
    for name, (path, message) in cases.items():
        for command in (["verify", good, path, *options], ["enroll", str(tmp_path / "g.db"), "x", path, *options[:5]]):
            assert facelearn(command) == 2, name
            said = message[command[0] == "enroll"] if isinstance(message, tuple) else message
            out, err = capsys.readouterr()
            assert said in err.strip().splitlines()[-1] and "Traceback" not in err, (name, command[0])
            if name == "not an image" and command[0] == "verify":  # the others answered, this one said why
                assert "notes.jpg: not a decodable image" in out
    unblock.cancel()
    assert not (tmp_path / "g.db").exists()  # refused before the gallery was made


def test_an_uncalibrated_threshold_is_said_in_every_answer(model, tmp_path, capsys):
    photos = faces(tmp_path / "faces", 2, 2)
    pair = [str(photos / "p0" / "0.png"), str(photos / "p0" / "1.png"), str(photos / "p1" / "0.png")]
    assert facelearn(["verify", *pair, "--model", str(model), "--backend", "torch", "--aligned"]) == 2
    refused = error_of(capsys)
    assert "no calibration" in refused and "--threshold" in refused and "--photos DIR" in refused
    assert (
        facelearn(
            ["verify", *pair, "--model", str(model), "--backend", "torch", "--aligned", "--threshold", "0.5", "--json"]
        )
        == 0
    )
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(answers) == 2 and [a["photo_b"] for a in answers] == pair[1:]  # each against the first, one load
    assert all(a["fmr"] is None and a["calibrated"] is False and a["threshold"] == 0.5 for a in answers)
    assert (
        facelearn(["verify", *pair[:2], "--model", str(model), "--backend", "torch", "--aligned", "--threshold", "0.5"])
        == 0
    )
    assert "uncalibrated threshold 0.5000" in capsys.readouterr().out
    gallery = str(tmp_path / "g.db")
    assert (
        facelearn(
            ["enroll", gallery, "p1", str(photos / "p1"), "--model", str(model), "--backend", "torch", "--aligned"]
        )
        == 0
    )
    capsys.readouterr()
    options = ["--model", str(model), "--backend", "torch", "--aligned", "--threshold", "0.5", "--json"]
    assert facelearn(["identify", gallery, *pair, *options]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["photo"] for line in lines] == pair
    assert all(face["fmr"] is None and face["calibrated"] is False for line in lines for face in line["faces"])
    assert all(face["box"] is None and 0 <= face["quality"] <= 1 for line in lines for face in line["faces"])
    assert (
        facelearn(["verify", *pair, "--model", str(model), "--backend", "torch", "--aligned", "--threshold", "1.5"])
        == 2
    )
    assert "between -1 and 1" in error_of(capsys)


def test_a_calibrated_model_refuses_a_bare_threshold(model, tmp_path, capsys):
    from facelearn.deploy.calibration import Calibration
    from facelearn.deploy.stored_calibration import store_calibration

    calibrated = tmp_path / "calibrated.pt"
    calibrated.write_bytes(model.read_bytes())
    point = {"fmr": 1e-3, "impostors_needed": 10_000, "threshold": 0.4}
    store_calibration(calibrated, Calibration("test", 10, 10_000, [point]))
    photos = faces(tmp_path / "faces", 1, 2)
    pair = [str(photos / "p0" / "0.png"), str(photos / "p0" / "1.png")]
    assert (
        facelearn(
            ["verify", *pair, "--model", str(calibrated), "--backend", "torch", "--aligned", "--threshold", "0.3"]
        )
        == 2
    )
    assert "this model is calibrated: choose a false-match rate" in error_of(capsys)


def test_enroll_a_tree_and_list_one_subjects_faces(model, tmp_path, capsys):
    tree = faces(tmp_path / "people", 3, 3)
    (tree / "p1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tree / "p2" / "notes.txt").write_text("not a photo")
    gallery = str(tmp_path / "g.db")
    options = ["--model", str(model), "--backend", "torch", "--aligned", "--json"]
    assert facelearn(["enroll", gallery, str(tree), *options]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [s["subject"] for s in answer["subjects"]] == ["p0", "p1", "p2"]  # one command, three people
    assert [s["faces"] for s in answer["subjects"]] == [3, 3, 3]
    assert [u["photo"] for u in answer["subjects"][1]["unreadable"]] == [str(tree / "p1" / "broken.png")]
    assert facelearn(["enroll", gallery, str(tree), *options]) == 0  # a rerun enrolls nobody twice
    again = json.loads(capsys.readouterr().out)["subjects"]
    assert all("already enrolled" in s["skipped"] and s["faces"] == 0 for s in again)
    assert facelearn(["gallery", "list", gallery, "p1", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["subject"] == "p1" and [f["source"] for f in listed["faces"]] == [f"{i}.png" for i in range(3)]
    assert all(0 <= f["quality"] <= 1 for f in listed["faces"])  # each face's quality, kept at enroll
    assert facelearn(["gallery", "list", gallery, "p1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "p1: 3 faces"
    assert facelearn(["gallery", "list", gallery, "nobody"]) == 2
    assert "'nobody' is not enrolled" in error_of(capsys)
    assert facelearn(["enroll", gallery, "p9", str(tree / "p0"), *options]) == 0  # one folder, one subject
    assert json.loads(capsys.readouterr().out)["faces"] == 3
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes((tree / "p0" / "0.png").read_bytes())
    assert facelearn(["enroll", gallery, str(flat), *options]) == 2
    assert "to enroll them as one subject, name it" in error_of(capsys)


def test_the_backend_choice_is_measured_once_per_model_and_machine(model, home, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    from facelearn.deploy import backends
    from facelearn.deploy.backend_choice import cache_path
    from facelearn.deploy.recognizer import Recognizer

    timed = []
    measure = backends.faces_per_second
    monkeypatch.setattr(backends, "faces_per_second", lambda e: timed.append(e.name) or measure(e))
    first = Recognizer.load(model, detector=None)
    assert sorted(timed) == ["onnx", "torch"]
    choice = json.loads(cache_path().read_text())
    (entry,) = choice.values()
    assert entry["backend"] == first.embedder.name and set(entry["faces_per_second"]) == {"onnx", "torch"}
    second = Recognizer.load(model, detector=None)
    assert len(timed) == 2 and second.embedder.name == first.embedder.name  # remembered: not measured again
    faces_in = np.random.default_rng(0).integers(0, 255, (2, 48, 48, 3), np.uint8)
    assert np.allclose(first.embed(faces_in, aligned=True), second.embed(faces_in, aligned=True), atol=1e-4)
    cache_path().write_text("{damaged")
    Recognizer.load(model, detector=None)
    assert len(timed) == 4 and "measured again" in caplog.text  # a damaged file: measured again, never an error
    exports = list((home / "exports").glob("*.onnx"))
    assert len(exports) == 1
    exports[0].write_bytes(b"not an onnx file")
    chosen = json.loads(cache_path().read_text())
    next(iter(chosen.values()))["backend"] = "onnx"
    cache_path().write_text(json.dumps(chosen))
    rebuilt = Recognizer.load(model, detector=None)
    assert rebuilt.embedder.name == "onnx" and rebuilt.model_id == first.model_id  # a bad export is made again
    fp32 = Recognizer.load(model, detector=None, backend="torch", precision="float32")  # bf16 on some CPUs
    assert np.allclose(rebuilt.embed(faces_in, aligned=True), fp32.embed(faces_in, aligned=True), atol=1e-4)
