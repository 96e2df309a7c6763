"""Calibrating where the pairs cannot support an FMR is an error, and the model's calibration stays as it was.

Issue 24, case 3: ``facelearn calibrate`` on two people, or at ``--fmr 1e-6``, used to replace a
working calibration with thresholds of None and exit 0; ``--fmr 0`` and ``--fmr 1.5`` ended in
tracebacks. Each is now one ``facelearn: error:`` line, exit 2, and the model file (and the .onnx's
``.sha256``) is byte for byte the same.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import need
from helpers import synthetic_people

from facelearn.cli import main as facelearn
from facelearn.cli import recipe_path
from facelearn.data.synthetic import UNSEEN_IDENTITY_OFFSET
from facelearn.deploy.calibration import Calibration, UnsupportedFMR, calibrate
from facelearn.deploy.stored_calibration import store_calibration
from facelearn.errors import ConfigError

SMALL = [  # a few seconds of training: the model only has to embed, not to be good
    "model.name=mobilefacenet",
    "model.width=1",
    "model.blocks=[1,1,1,1]",
    "model.embedding_size=32",
    "data.num_identities=6",
    "data.images_per_identity=4",
    "data.image_size=32",
    "data.num_workers=0",
    "train.batch_size=8",
    "train.steps=3",
    "train.checkpoint_every=3",
    "schedule.warmup_steps=1",
    "eval.sets=[]",
]


def photo_folder(folder, people, photos):
    return synthetic_people(folder, range(people), photos, 32, seed=5, first_identity=UNSEEN_IDENTITY_OFFSET + 700_000)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    work = tmp_path_factory.mktemp("calibrate_safety")
    assert facelearn(["train", str(recipe_path("demo")), *SMALL, f"train.output_dir={work / 'run'}"]) == 0
    many = photo_folder(work / "many", 50, 3)  # 150 images: 11,025 impostor pairs, enough for 1e-2 and 1e-3
    two = photo_folder(work / "two", 2, 3)  # 2 people: 9 impostor pairs
    return work, many, two


def digest(*paths) -> list[str]:
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]


def refused(capsys, arguments, *messages) -> str:
    capsys.readouterr()
    assert facelearn(arguments) == 2, arguments
    err = capsys.readouterr().err
    assert err.startswith("facelearn: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for message in messages:
        assert message in err, err
    return err


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_an_unsupported_fmr_is_an_error_and_the_calibration_stays(setting, kind, tmp_path, capsys):
    work, many, two = setting
    model = tmp_path / f"model.{kind}"
    if kind == "pt":
        model.write_bytes((work / "run" / "step_0000003.pt").read_bytes())
        kept = [model]
    else:
        need("onnxruntime", "deploy")
        assert facelearn(["export", str(work / "run" / "step_0000003.pt"), str(model)]) == 0
        kept = [model, tmp_path / "model.onnx.sha256"]
    assert facelearn(["calibrate", str(model), "--gallery", str(many)]) == 0  # a working calibration
    before = digest(*kept)

    refused(capsys, ["calibrate", str(model), "--gallery", str(two)], "FMR 0.01 needs at least 1,000", "gave 9")
    assert digest(*kept) == before
    err = refused(capsys, ["calibrate", str(model), "--gallery", str(many), "--fmr", "1e-2", "1e-6"])
    assert "FMR 1e-06 needs at least 10,000,000 impostor pairs (10/FMR" in err and "gave 11,025" in err
    assert "FMR 0.01" not in err  # only the FMR that is not supported is named
    assert digest(*kept) == before
    for rate in ("0", "1.5", "1", "-0.1", "nan"):
        refused(capsys, ["calibrate", str(model), "--gallery", str(many), "--fmr", rate], "strictly between 0 and 1")
    # before any work: a missing model is not even opened
    refused(capsys, ["calibrate", str(tmp_path / "missing.pt"), "--gallery", str(many), "--fmr", "0"], "got 0")
    assert digest(*kept) == before


def test_the_python_api_writes_no_calibration_with_an_unsupported_fmr(setting, tmp_path):
    work, _, _ = setting
    model = tmp_path / "model.pt"
    model.write_bytes((work / "run" / "step_0000003.pt").read_bytes())
    rng = np.random.default_rng(0)
    scores, issame = np.r_[rng.normal(0.7, 0.1, 50), rng.normal(0, 0.1, 2_000)], np.r_[[True] * 50, [False] * 2_000]
    with pytest.raises(UnsupportedFMR, match="FMR 1e-06 needs at least 10,000,000 impostor pairs.*gave 2,000"):
        calibrate(scores, issame, fmrs=[1e-2, 1e-6], source="test pairs")
    with pytest.raises(UnsupportedFMR, match="FMR 0.001 needs at least 10,000"):
        calibrate(scores, issame, source="test pairs")  # the default FMR 1e-3 is not optional
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        calibrate(scores, issame, fmrs=[0])
    assert calibrate(scores, issame, fmrs=[1e-2]).threshold(1e-2) is not None
    before = digest(model)
    for points in ([{"fmr": 1e-3, "impostors_needed": 10_000, "threshold": None}], []):
        with pytest.raises(UnsupportedFMR):
            store_calibration(model, Calibration("hand-made", 50, 2_000, points))
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        store_calibration(model, Calibration("hand-made", 50, 2_000, [{"fmr": 0.0, "threshold": 0.5}]))
    assert digest(model) == before
