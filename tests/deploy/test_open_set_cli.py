"""facelearn calibrate-gallery and identify --fpir on real LFW-a photos, end to end."""

from __future__ import annotations

import json
import sqlite3

import pytest
from helpers import lfw_strangers

from facelearn.cli import main as facelearn

pytestmark = pytest.mark.slow  # the LFW people model, and 120 photos detected and embedded


def run_json(capsys, arguments) -> object:
    capsys.readouterr()
    assert facelearn(arguments) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def largest(faces: list[dict]) -> dict:
    return max(faces, key=lambda face: (face["box"][2] - face["box"][0]) * (face["box"][3] - face["box"][1]))


def stored_calibration(gallery) -> str | None:
    with sqlite3.connect(gallery) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'identification_calibration'").fetchone()
    return row[0] if row else None


def test_calibrate_the_gallery_then_identify_at_an_fpir(lfw_people, tmp_path, capsys):
    options = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    gallery = str(tmp_path / "lfw.db")
    for person, photos in lfw_people.enrolled.items():
        run_json(capsys, ["enroll", gallery, person, *map(str, photos), *options, "--json"])
    newcomers = lfw_people.strangers[:2]
    taken = set(lfw_people.enrolled) | {p.parent.name for p in newcomers}
    strangers = str(lfw_strangers(tmp_path / "strangers", taken, 120))

    capsys.readouterr()
    assert facelearn(["calibrate-gallery", gallery, "--strangers", strangers, "--fpir", "1e-3", *options]) != 0
    error = capsys.readouterr().err.strip()
    assert "FPIR 0.001 needs at least 10,000 non-mated searches" in error and "\n" not in error
    assert stored_calibration(gallery) is None  # nothing written
    probe = str(next(iter(lfw_people.probes.values())))
    assert facelearn(["identify", gallery, probe, "--fpir", "0.1", *options]) != 0
    assert "no identification calibration" in capsys.readouterr().err

    calibration = run_json(
        capsys, ["calibrate-gallery", gallery, "--strangers", strangers, "--fpir", "0.1", *options, "--json"]
    )
    assert calibration["gallery_size"] == 5 and calibration["fusion"] == "mean"
    assert 100 <= calibration["num_searches"] <= 120 and calibration["points"][0]["fpir"] == 0.1
    answer = largest(run_json(capsys, ["identify", gallery, probe, "--fpir", "0.1", *options, "--json"])["faces"])
    assert (answer["fpir"], answer["fmr"], answer["gallery_size"], answer["calibrated_gallery_size"]) == (
        0.1,
        None,
        5,
        5,
    )
    assert answer["threshold"] == calibration["points"][0]["threshold"] and answer["warning"] is None

    for photo in newcomers:  # 7 subjects: past 1.25 × 5, so every answer warns until recalibrated
        run_json(capsys, ["enroll", gallery, photo.parent.name, str(photo), *options, "--json"])
    answer = largest(run_json(capsys, ["identify", gallery, probe, "--fpir", "0.1", *options, "--json"])["faces"])
    assert "calibrated for 5 subjects and the gallery now holds 7" in answer["warning"]
    capsys.readouterr()
    assert facelearn(["identify", gallery, probe, "--fpir", "0.1", *options]) == 0
    assert "warning: the identification threshold was calibrated for 5 subjects" in capsys.readouterr().out
    run_json(capsys, ["calibrate-gallery", gallery, "--strangers", strangers, "--fpir", "0.1", *options, "--json"])
    answer = largest(run_json(capsys, ["identify", gallery, probe, "--fpir", "0.1", *options, "--json"])["faces"])
    assert answer["warning"] is None and answer["calibrated_gallery_size"] == 7

    person, photos = next(iter(lfw_people.enrolled.items()))
    burst = [str(photos[0]), str(lfw_people.probes[person])]
    fused = ["identify", gallery, *burst, "--as-one-person", "--fpir", "0.1", *options, "--json"]
    (one,) = run_json(capsys, fused)["faces"]
    assert one["images"] == 2 and one["fusion"] == "mean"
    assert one["candidates"][0]["subject"] == person  # one of its two photos is enrolled: its template is first
    capsys.readouterr()
    assert facelearn(["identify", gallery, *burst, *options, "--json"]) == 0  # without it: each photo on its own
    assert [json.loads(line)["photo"] for line in capsys.readouterr().out.splitlines()] == burst
