"""``facelearn eval --pairs --root`` on LFW's whole 250×250 photos: detected and aligned as they are read (once
resized whole, which scores a face model on faces it never sees), with a bar of the images read."""

from __future__ import annotations

import json

import pytest
from conftest import shared_path

from facelearn.cli import main as facelearn

pytestmark = pytest.mark.slow  # detects 80 real photos, with the two-minute LFW model


def test_eval_detects_and_aligns_whole_photos(lfw_people, tmp_path, capsys, caplog):
    lfw = shared_path("data", "lfw_a")
    lines = (lfw / "pairs.txt").read_text().splitlines()
    folder = tmp_path / "lfw20"
    folder.mkdir()
    (folder / "pairs.txt").write_text("\n".join(["1\t20", *lines[1:21], *lines[301:321]]) + "\n")  # 20 same, 20 not
    common = ["eval", str(lfw_people.model), "--pairs", str(folder / "pairs.txt"), "--root", str(lfw / "lfw")]
    common += ["--folds", "2", "--stratify", "--weights", str(lfw_people.weights)]
    results = {}
    for name, extra in (("detected", []), ("resized", ["--no-detect"])):
        assert facelearn([*common, "--output", str(tmp_path / name), *extra]) == 0, capsys.readouterr().err
        results[name] = json.loads((tmp_path / name / "metrics.json").read_text())["lfw20"]
    assert "holds whole photos (250×250)" in caplog.text and "detected (retinaface)" in caplog.text
    detected, resized = results["detected"], results["resized"]
    assert detected["auc"] > 0.9 and detected["auc"] > resized["auc"] + 0.1, (detected["auc"], resized["auc"])
